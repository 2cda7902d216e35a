"""`ads devnet --exit-after-walkthrough`: the newcomer's demo runs end to end with real processes
(validators, the charge point's agent) and every step shows what it should (README, issue 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_devnet_walkthrough_end_to_end(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", "devnet", "--exit-after-walkthrough", "--json",
                        "--dir", str(tmp_path / "dn")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    w = json.loads(p.stdout.strip().splitlines()[-1])["walkthrough"]
    assert w["plan"] == "ok" and w["charger_limit_w"] == 7400
    assert w["over_limit"] == "limits" and w["out_of_scope"] == "scope"
    assert w["after_revoke"] == "no_grant" and w["revoke_to_refusal_s"] < 1.0
    log = (tmp_path / "dn" / "chargepoint" / "agent.log").read_text()
    assert "Traceback" not in log


def test_devnet_walkthrough_over_ocpp(tmp_path: Path) -> None:
    """`ads devnet --ocpp`: the same walkthrough with an OCPP 2.0.1 station process behind the
    agent; the station itself received the 7.4 kW plan, and was told to clear it on revoke."""
    p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", "devnet", "--ocpp", "--exit-after-walkthrough",
                        "--json", "--dir", str(tmp_path / "dn")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    w = json.loads(p.stdout.strip().splitlines()[-1])["walkthrough"]
    assert w["plan"] == "ok" and w["charger_limit_w"] == 7400
    assert w["over_limit"] == "limits" and w["out_of_scope"] == "scope" and w["after_revoke"] == "no_grant"
    assert w["station_cleared_s"] < 2.0
