"""Flexibility end to end: an aggregator holding the exclusive `flex` grant arms a local
frequency response through the agent; when the (simulated) grid frequency dips below the armed
threshold the charger caps itself at once, with no signal on the command path (DESIGN §7)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing.devnet import Network, agent_get
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet.commands import check_receipt, post_command, sign_command


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "flex", agent=True) as n:
        yield n


def frequency(net: Network, mhz: int) -> dict[str, Any]:
    req = urllib.request.Request(net.agent_api + "/sim/frequency", data=json.dumps({"mhz": mhz}).encode(),
                                 method="POST", headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_armed_frequency_response(net: Network) -> None:
    import subprocess
    import sys

    chain = net.info["chain_id"]
    cp = bytes.fromhex(json.loads((net.agent_home / "device_key.json").read_text())["pub"])
    owner, aggregator = SigningKey.generate(), SigningKey.generate()
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "propose-owner", "--home", str(net.agent_home),
                        "--owner", owner.pub.hex(), "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    grant = {"cp": cp, "grantee": aggregator.pub, "scopes": ["flex"], "not_before": now - 60_000,
             "not_after": now + 3_600_000, "limits": {"max_power_w": 11_000}, "exclusive": True, "priority": 50,
             "redelegate": 0, "parent": None}  # fmt: skip
    with net.client(0) as c:
        # flex is reserved for aggregators, DSOs and TSOs (gov/params.scope_roles): register it
        m0, m1 = (load_key(Path(p)) for p in net.info["gov"][:2])
        reg = {"cap_w": None, "name": "aggregator", "pub": aggregator.pub, "roles": ["aggregator"]}
        r = c.submit_tx(make_envelope(chain, "gov", m0, 1, {"action": "providers.set", "args": reg}, [m1]),
                        wait_commit=True)  # fmt: skip
        assert r["ok"], r
        att = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        r = None
        for n, (t, b) in enumerate([("attest", att), ("cp.accept", {"cp": cp}), ("grant", grant)], start=1):
            r = c.submit_tx(make_envelope(chain, t, owner, n, b), wait_commit=True)
            assert r["ok"], r
    gid = bytes.fromhex(r["txid"])[:16]  # type: ignore[index]
    deadline = time.monotonic() + 15
    while not agent_get(net.agent_api, "/status")["grants"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t = int(time.time() * 1000)
    arm = {"below_mhz": 49_800, "limit_w": 2_000, "hold_s": 30, "until": t + 600_000}
    env = sign_command(aggregator, chain, cp=cp, action="flex.arm", params=arm, seq=1, issued_at=t,
                       expires_at=t + 60_000, grant=gid)  # fmt: skip
    assert check_receipt(cp, chain, env, post_command(net.agent_api, env))["code"] == "ok"
    over = {**arm, "limit_w": 12_000}  # the grant caps flex limits too
    env = sign_command(aggregator, chain, cp=cp, action="flex.arm", params=over, seq=2, issued_at=t,
                       expires_at=t + 60_000, grant=gid)  # fmt: skip
    assert check_receipt(cp, chain, env, post_command(net.agent_api, env))["code"] == "limits"
    assert frequency(net, 50_000)["limit_w"] == 22_000  # nominal: no response
    assert frequency(net, 49_700)["limit_w"] == 2_000  # below 49.8 Hz: capped within the same call
