"""The device side of ownership through `chargepoint-agent` on a live devnet (DESIGN §8):
init with the testnet's TEST manufacturer, propose-owner then the owner's cp.accept, and
sign-ownership for the one-transaction cp.claim of a second charge point."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "agentcli") as n:
        yield n


def agent(*args: str) -> tuple[int, dict[str, Any]]:
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", *args, "--json"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})  # fmt: skip
    return p.returncode, json.loads(p.stdout)


def test_init_propose_accept_and_claim(net: Network, tmp_path: Path) -> None:
    api, chain = net.apis[0], net.info["chain_id"]
    rc, out = agent("init", "--home", str(tmp_path / "cp1"), "--node", api, "--node", net.apis[1],
                    "--test-manufacturer", net.info["device_ca"])  # fmt: skip
    assert rc == 0, out
    assert out["chain_id"] == chain and out["trust_height"] == 1 and out["device_key_created"]
    assert any("trust root" in w for w in out["warnings"]) and any("TEST-ONLY" in w for w in out["warnings"])
    key_file = tmp_path / "cp1" / "device_key.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cp = bytes.fromhex(out["cp"])
    rc, again = agent("init", "--home", str(tmp_path / "cp1"), "--node", api)
    assert rc == 1 and again["error"]["code"] == "exists"  # a home is never overwritten

    owner = SigningKey.generate()
    rc, prop = agent("propose-owner", "--home", str(tmp_path / "cp1"), "--owner", owner.pub.hex())
    assert rc == 0 and prop["height"] > 0, prop
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    with net.client(0) as c:
        att = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        assert c.submit_tx(make_envelope(chain, "attest", owner, 1, att), wait_commit=True)["ok"]
        assert c.submit_tx(make_envelope(chain, "cp.accept", owner, 2, {"cp": cp}), wait_commit=True)["ok"]
        rec = codec.decode(bytes.fromhex(c.chargepoint(cp)["value"]))
    assert rec["owner"] == owner.pub and rec["device"]["model"] == "ADS-SIM-22"  # type: ignore[index]
    rc, owned = agent("sign-ownership", "--home", str(tmp_path / "cp1"), "--owner", owner.pub.hex())
    assert rc == 1 and owned["error"]["code"] == "cp_owned"

    # a second charge point, claimed by the owner in one tx with the device's signature
    rc, out2 = agent("init", "--home", str(tmp_path / "cp2"), "--node", api, "--test-manufacturer",
                     net.info["device_ca"])  # fmt: skip
    assert rc == 0
    cp2 = bytes.fromhex(out2["cp"])
    rc, sig = agent("sign-ownership", "--home", str(tmp_path / "cp2"), "--owner", owner.pub.hex())
    assert rc == 0 and sig["epoch"] == 0 and sig["device"], sig
    body = {"cp": cp2, "device_sig": bytes.fromhex(sig["device_sig"]), "device": codec.decode(bytes.fromhex(sig["device"]))}
    with net.client(0) as c:
        r = c.submit_tx(make_envelope(chain, "cp.claim", owner, 3, body), wait_commit=True)
    assert r["ok"], r
    rc, st = agent("status", "--home", str(tmp_path / "cp2"))
    assert rc == 0 and st["cp"] == cp2.hex() and st["acl_height"] is None  # `run` has not synced yet


def test_bad_arguments_get_typed_errors(tmp_path: Path) -> None:
    rc, out = agent("propose-owner", "--home", str(tmp_path / "nowhere"), "--owner", "zz")
    assert rc == 1 and out["error"]["code"] == "bad_argument"
    rc, out = agent("status", "--home", str(tmp_path / "nowhere"))
    assert rc == 1 and out["error"]["code"] == "config" and "chargepoint-agent init" in out["error"]["message"]
