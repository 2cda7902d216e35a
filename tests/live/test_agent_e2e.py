"""The charge-point agent end to end on a real devnet (DESIGN §7, §8): a real agent process
syncing as a light client, real signed commands over HTTP, every receipt code from a real case,
a replay refused after `kill -9` and restart, revocation seen within seconds, and owner commands
still served when the ledger is gone (stale access list)."""

from __future__ import annotations

import json
import os
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
from ads_ledger.testing.agentproc import AgentProcess
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.testnet import free_port
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet.commands import check_receipt, sign_command

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "agent") as n:
        yield n


def cli(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", *args, "--json"], capture_output=True,
                       text=True, timeout=120, env=ENV)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def test_agent_end_to_end(net: Network, tmp_path: Path) -> None:
    chain, api = net.info["chain_id"], net.apis[0]
    home = tmp_path / "cp"
    out = cli("init", "--home", str(home), "--node", api, "--node", net.apis[1], "--node", net.apis[2],
              "--test-manufacturer", net.info["device_ca"], "--listen", f"127.0.0.1:{free_port()}")  # fmt: skip
    cp = bytes.fromhex(out["cp"])
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("poll_ms = 10000", "poll_ms = 2000")
                   .replace("staleness_limit_ms = 0", "staleness_limit_ms = 8000"))
    owner, prov, other = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    cli("propose-owner", "--home", str(home), "--owner", owner.pub.hex())
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    nonce = {"owner": 0}

    def tx(ttype: str, body: dict[str, Any]) -> dict[str, Any]:
        nonce["owner"] += 1
        with net.client(0) as c:
            r = c.submit_tx(make_envelope(chain, ttype, owner, nonce["owner"], body), wait_commit=True)
        assert r["ok"], r
        return r

    tx("attest", issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000))
    tx("cp.accept", {"cp": cp})
    agent = AgentProcess(home)
    try:
        agent.start()
        agent.wait(lambda s: s["owner"] == owner.pub.hex())
        base = {"cp": cp, "grantee": prov.pub, "scopes": ["charging.profile", "meter.read"], "not_before": now - 60_000,
                "not_after": now + 3_600_000, "limits": {"max_power_w": 11_000}, "exclusive": False,
                "priority": 10, "redelegate": 0, "parent": None}  # fmt: skip
        gid = bytes.fromhex(tx("grant", base)["txid"])[:16]
        later = bytes.fromhex(tx("grant", {**base, "not_before": now + 600_000})["txid"])[:16]
        short_end = int(time.time() * 1000) + 4000
        short = bytes.fromhex(tx("grant", {**base, "not_after": short_end})["txid"])[:16]
        agent.wait(lambda s: len(s["grants"]) == 3)
        with net.client(0) as c:  # the provider's index: what may I control?
            listed = c.grants(prov.pub)
        assert {(x["cp"], x["grant"]["id"]) for x in listed["grants"]} == {(cp.hex(), g.hex()) for g in (gid, later, short)}
        seq = {"n": 0}

        def command(key: SigningKey = prov, *, action: str = "charging.profile.set", params: Any = None,
                    grant: bytes | None = gid, ttl: int = 60_000, at: int | None = None, to: bytes = cp) -> bytes:  # fmt: skip
            seq["n"] += 1
            t = int(time.time() * 1000) if at is None else at
            p = params if params is not None else {"profile": {"id": 1, "valid_from": t - 1000, "valid_to": t + 7_200_000,
                                                              "periods": [[0, 7400]]}}  # fmt: skip
            return sign_command(key, chain, cp=to, action=action, params=p, seq=seq["n"], issued_at=t,
                                expires_at=t + ttl, grant=grant)  # fmt: skip

        def code(raw: bytes, want_status: int = 200) -> str:
            st, ans = agent.send(raw)
            assert st == want_status, (st, ans)
            r = check_receipt(cp, chain, raw, ans) if want_status == 200 else ans["receipt"]
            return r["code"]  # type: ignore[no-any-return]

        plan = command()
        assert code(plan) == "ok"
        read = command(owner, action="status.read", params={}, grant=None)
        st, ans = agent.send(read)
        assert check_receipt(cp, chain, read, ans)["data"]["limit_w"] == 7400, ans  # in force in the charger
        assert code(plan) == "replay"
        big = {"profile": {"id": 2, "valid_from": now, "valid_to": now + 7_200_000, "periods": [[0, 22_000]]}}
        assert code(command(params=big)) == "limits"
        assert code(command(action="charging.start", params={})) == "scope"
        assert code(command(other)) == "no_grant"  # the wrong key naming the provider's grant
        assert code(command(grant=later)) == "not_yet_valid"
        assert code(command(to=other.pub)) == "wrong_cp"
        assert code(command(at=int(time.time() * 1000) - 600_000)) == "expired"
        forged = codec.decode(command())
        forged["sig"] = bytes(64)
        assert code(codec.encode(forged)) == "bad_signature"
        assert code(b"\x81\xa1x\x01", 400) == "malformed"
        assert code(command(owner, action="charging.stop", params={"connector": 1}, grant=None)) == "driver_error"
        time.sleep(max(0.0, (short_end - int(time.time() * 1000)) / 1000) + 0.2)
        assert code(command(grant=short)) == "grant_expired"
        # the audit log: the owner reads every entry, the provider (meter.read) only its own
        read_all = command(owner, action="audit.read", params={"limit": 100}, grant=None)
        st, ans = agent.send(read_all)
        everyone = check_receipt(cp, chain, read_all, ans)["data"]["entries"]
        assert {e["issuer"] for e in everyone} >= {owner.pub, prov.pub, other.pub}
        assert {e["code"] for e in everyone} >= {"ok", "limits", "scope", "replay", "driver_error", "no_grant"}
        mine = command(action="audit.read", params={"limit": 100})
        st, ans = agent.send(mine)
        own = check_receipt(cp, chain, mine, ans)["data"]["entries"]
        assert own and {e["issuer"] for e in own} == {prov.pub}
        ok_entry = next(e for e in own if e["code"] == "ok")
        assert ok_entry["receipt"]["receipt"]["cmd"] == ok_entry["cmd"]  # the signed receipt is kept
        # kill -9 and restart: an accepted command is still refused as a replay, offline state reloaded
        agent.kill9()
        agent.start()
        assert agent.status()["acl_height"] is not None  # from disk, before any network round
        assert code(plan) == "replay"
        # revocation reaches the agent: the provider is refused
        t0 = time.monotonic()
        tx("revoke", {"cp": cp, "grant": gid})
        while code(command()) != "no_grant":
            assert time.monotonic() - t0 < 10, "the revocation did not reach the agent"
            time.sleep(0.05)
        with net.client(0) as c:
            assert gid.hex() not in {x["grant"]["id"] for x in c.grants(prov.pub)["grants"]}
        # the ledger goes away: delegates get stale_acl once the limit passes, the owner is served
        limit = 8_000  # the agent's [ledger] staleness_limit_ms override, set above
        for i in list(net.procs):
            net.kill(i)
        st = agent.status()
        wait_s = (limit - st["staleness_ms"]) / 1000 + 1
        assert wait_s < 12
        time.sleep(max(0.0, wait_s))
        assert code(command(grant=later)) == "stale_acl"
        assert code(command(owner, action="meter.read", params={}, grant=None)) == "ok"
    finally:
        agent.stop()
