"""Suspension at scale on a real devnet (issue: regulator levers): an aggregator holding 1,000
grants on 21 charge points — one of them a real agent's — is suspended by governance; the sweep
revokes every grant over the following blocks, no block revoking more than `suspension_batch`
(read from the provider's proven live_w at each height), and the agent then answers the
provider `no_grant`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.client.http import NodeClient
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing import propose_tx
from ads_ledger.testing.devnet import Network, agent_get
from ads_ledger.testing.trustlist import issue_attestation, load_device_ca, load_trust_list
from ads_ledger.wallet import Ledger
from ads_ledger.wallet.commands import check_receipt, post_command, sign_command

BATCH = 100  # suspension_batch: grants revoked (each a cp/ record rewrite) per block: 1,001 take ≥ 11 blocks
PER_CP = 50  # 20 × 50 grants, plus one on the agent's charge point: 1,001


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "suspend", agent=True, params={"suspension_batch": BATCH}) as n:
        yield n


@pytest.mark.slow
def test_suspension_sweeps_a_thousand_grants_in_bounded_blocks(net: Network) -> None:
    chain = net.info["chain_id"]
    members = [load_key(Path(p)) for p in net.info["gov"]]
    tl, ca = load_trust_list(Path(net.info["eid"])), load_device_ca(Path(net.info["device_ca"]))
    now = int(time.time() * 1000)
    agg = SigningKey.generate()
    owners = [SigningKey.generate() for _ in range(21)]
    devices = [SigningKey.generate() for _ in range(20)]
    agent_cp = bytes.fromhex(json.loads((net.agent_home / "device_key.json").read_text())["pub"])
    ledger = Ledger(net.apis, commit_timeout_s=60)

    def gov(action: str, args: dict[str, Any]) -> None:
        n = ledger.nonce(members[0].pub) + 1
        ledger.submit_raw(make_envelope(chain, "gov", members[0], n, {"action": action, "args": args}, [members[1]]))

    def grant(owner: SigningKey, nonce: int, cp: bytes) -> bytes:
        body = {"cp": cp, "grantee": agg.pub, "scopes": ["charging.profile"], "not_before": now - 60_000,
                "not_after": now + 3_600_000, "limits": {"max_power_w": 1000}, "exclusive": False,
                "priority": 5, "redelegate": 0, "parent": None}  # fmt: skip
        return make_envelope(chain, "grant", owner, nonce, body)

    gov("providers.set", {"pub": agg.pub, "name": "Big Agg", "roles": ["aggregator"], "cap_w": None})
    # owners: attested, each with one charge point (the last owns the agent's)
    setup = []
    for i, o in enumerate(owners):
        att = issue_attestation(tl, chain, o.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        setup.append(make_envelope(chain, "attest", o, 1, att))
        setup += [propose_tx(chain, devices[i], o.pub, ca=ca)] if i < 20 else []
    with NodeClient(net.apis[0], timeout_s=60) as c:
        for raw in setup:
            c.submit_tx(raw)
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "propose-owner", "--home", str(net.agent_home),
                        "--owner", owners[20].pub.hex(), "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    cps = [d.pub for d in devices] + [agent_cp]
    for o, cp in zip(owners, cps):
        ledger.submit(o, "cp.accept", {"cp": cp})
    # 1,001 grants: each owner streams its grants (nonces in sequence, no waiting per tx)
    last: list[bytes] = []
    with NodeClient(net.apis[1], timeout_s=60) as c:
        for k, (o, cp) in enumerate(zip(owners, cps)):
            n = ledger.nonce(o.pub)
            raws = [grant(o, n + 1 + j, cp) for j in range(PER_CP if k < 20 else 1)]
            for raw in raws:
                c.submit_tx(raw)
            last.append(raws[-1])
    with Ledger([net.apis[1]], commit_timeout_s=60) as same_node:  # it holds them: a re-POST is a duplicate
        for raw in last:
            same_node.submit_raw(raw)  # waits for its commit (the owner's earlier ones are in by then)
        # read where the commits were confirmed: another node may not have stored that block yet
        rec = same_node.state(b"prov/" + agg.pub)
        top = same_node.height()
    assert rec["live_w"] == 1001 * 1000, rec
    net.wait_height(top, timeout=30)  # every later read, through any node, sees those grants

    # the provider commands the agent's charge point under its grant
    gid = next(g["id"] for g in ledger.record(agent_cp)["grants"] if g["grantee"] == agg.pub)
    seq = iter(range(1, 10_000))

    def command() -> str:
        t = int(time.time() * 1000)
        plan = {"profile": {"id": 1, "valid_from": t - 1000, "valid_to": t + 600_000, "periods": [[0, 1000]]}}
        env = sign_command(agg, chain, cp=agent_cp, action="charging.profile.set", params=plan, seq=next(seq),
                           issued_at=t, expires_at=t + 60_000, grant=gid)  # fmt: skip
        return str(check_receipt(agent_cp, chain, env, post_command(net.agent_api, env))["code"])

    deadline = time.monotonic() + 20
    while not agent_get(net.agent_api, "/status")["grants"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert command() == "ok"

    h0 = ledger.height()
    gov("providers.suspend", {"pub": agg.pub, "suspended": True})
    deadline = time.monotonic() + 90
    while ledger.state(b"prov/" + agg.pub)["live_w"] > 0:
        assert time.monotonic() < deadline, "the sweep did not finish within 90 s"
        time.sleep(0.5)
    h1 = ledger.height()
    assert not any(g["grantee"] == agg.pub for cp in cps for g in ledger.record(cp)["grants"])
    # grants revoked per block, from the provider's live_w at each height (1,000 W per grant)
    with NodeClient(net.apis[2], timeout_s=30) as c:
        live = [codec.decode(c.state(b"prov/" + agg.pub, h)[1])["live_w"] for h in range(h0, h1 + 1)]  # type: ignore[index, arg-type]
    per_block = [(a - b) // 1000 for a, b in zip(live, live[1:])]
    assert live[0] == 1_001_000 and live[-1] == 0 and sum(per_block) == 1001, live
    assert max(per_block) <= BATCH and sum(1 for n in per_block if n) >= 1001 // BATCH, per_block

    # the agent, once its record is refreshed, refuses the suspended provider
    deadline = time.monotonic() + 20
    while (code := command()) == "ok":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert code == "no_grant"
    ledger.close()
