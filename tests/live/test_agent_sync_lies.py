"""The agent's access-list sync against lying nodes: a real devnet behind a tampering HTTP
proxy. A forged header, a forged proof and an old record are each caught, and the agent keeps
its last verified access list; a witness serving a forged header is reported and dropped; a
witness serving a *validly signed* conflicting header (a fork) halts trust with both headers
kept as evidence."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.client import jsonenc
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, Commit, Vote
from ads_ledger.light.errors import LightError
from ads_ledger.light.trust import TrustOptions
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.records import cp_key
from ads_ledger.testing import propose_tx
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.trustlist import issue_attestation, load_device_ca, load_trust_list
from chargepoint_agent.store import AgentStore
from chargepoint_agent.sync import AclSync, SyncError

Tamper = Callable[[str, dict[str, Any]], dict[str, Any]]


class Proxy:
    """Forwards GETs to a real node's API; `tamper(path, value)` may rewrite the answer (JSON,
    or the decoded msgpack of GET /light/{cp}); `no_light` plays a node without /light."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tamper: Tamper | None = None
        self.no_light = False
        proxy = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                ctype = "application/json"
                if proxy.no_light and self.path.startswith("/light/"):
                    status, body = 404, b'{"error": {"code": "not_found", "message": "no such route"}}'
                else:
                    req = urllib.request.Request(proxy.upstream + self.path, headers={"accept": self.headers["accept"] or "*/*"})
                    with urllib.request.urlopen(req, timeout=10) as r:
                        body, status, ctype = r.read(), r.status, r.headers["content-type"]
                    if proxy.tamper is not None and status == 200:
                        if ctype.startswith("application/msgpack"):
                            body = codec.encode(proxy.tamper(self.path, codec.decode(body)))  # type: ignore[arg-type]
                        else:
                            body = json.dumps(proxy.tamper(self.path, json.loads(body))).encode()
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "lies") as n:
        yield n


def _owned_cp(net: Network) -> tuple[bytes, SigningKey, SigningKey]:
    """A charge point owned by an attested owner; returns (cp, owner, provider)."""
    chain = net.info["chain_id"]
    dev, owner, prov = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    with net.client(0) as c:
        assert c.submit_tx(propose_tx(chain, dev, owner.pub, ca=load_device_ca(Path(net.info["device_ca"]))),
                           wait_commit=True)["ok"]  # fmt: skip
        att = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        assert c.submit_tx(make_envelope(chain, "attest", owner, 1, att), wait_commit=True)["ok"]
        assert c.submit_tx(make_envelope(chain, "cp.accept", owner, 2, {"cp": dev.pub}), wait_commit=True)["ok"]
    return dev.pub, owner, prov


def _grant(net: Network, cp: bytes, owner: SigningKey, prov: SigningKey, nonce: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    body = {"cp": cp, "grantee": prov.pub, "scopes": ["meter.read"], "not_before": now - 1000,
            "not_after": now + 3_600_000, "limits": {}, "exclusive": False, "priority": 1,
            "redelegate": 0, "parent": None}  # fmt: skip
    with net.client(0) as c:
        r = c.submit_tx(make_envelope(net.info["chain_id"], "grant", owner, nonce, body), wait_commit=True)
    assert r["ok"], r
    return r


def _sync(tmp: Path, net: Network, cp: bytes, nodes: list[str]) -> AclSync:
    with net.client(0) as c:
        h1, _ = c.commit(1)
    return AclSync(cp=cp, chain_id=net.info["chain_id"], nodes=nodes, store=AgentStore(tmp / "state"),
                   opts=TrustOptions(trusting_period_ms=86_400_000), trust_height=1,
                   trust_hash=h1.block_id())  # fmt: skip


def _wait_new_block(net: Network) -> None:
    with net.client(0) as c:
        h = c.status()["latest_height"]
    net.wait_height(h + 1, nodes=[0], timeout=30)


@pytest.mark.parametrize("one_round_trip", [True, False], ids=["GET /light", "one request per part"])
def test_forged_header_proof_and_old_record_are_caught(net: Network, tmp_path: Path, one_round_trip: bool) -> None:
    cp, owner, prov = _owned_cp(net)
    proxy = Proxy(net.apis[0])
    proxy.no_light = not one_round_trip
    sync = _sync(tmp_path, net, cp, [proxy.url])
    try:
        sync.refresh(int(time.time() * 1000))
        good = sync.acl
        assert good is not None and good.owner == owner.pub and good.grants == ()
        before_grant = good.height

        # 1. a forged header: another state root under the validators' commit
        def forge_header(path: str, v: dict[str, Any]) -> dict[str, Any]:
            if path.startswith("/commits/"):
                v["header"]["state_root"] = "11" * 32
            if path.startswith("/light/"):
                v["header"]["state_root"] = b"\x11" * 32
            return v

        proxy.tamper = forge_header
        _wait_new_block(net)
        with pytest.raises(LightError):
            sync.refresh(int(time.time() * 1000))
        assert sync.acl == good

        # 2. a forged proof: the record with a grant that was never made
        fake_rec = {"device": {"issuer": b"\x00" * 32, "model": "X"}, "epoch": 1, "grants": [{"id": b"\x01" * 16}],
                    "owner": owner.pub, "pending": None, "updated": 1}  # fmt: skip

        def forge_value(path: str, v: dict[str, Any]) -> dict[str, Any]:
            if path.startswith("/state/" + cp_key(cp).hex()):
                v["value"] = codec.encode(fake_rec).hex()
            if path.startswith("/light/"):
                v["record"]["value"] = codec.encode(fake_rec)
            return v

        proxy.tamper = forge_value
        _wait_new_block(net)
        with pytest.raises(LightError):
            sync.refresh(int(time.time() * 1000))
        assert sync.acl == good

        # 3. an old record: after a grant, the node serves the record (and proof) from before it
        _grant(net, cp, owner, prov, 3)
        old: dict[str, Any] = {}
        with urllib.request.urlopen(f"{net.apis[0]}/state/{cp_key(cp).hex()}?height={before_grant}") as r:
            old = json.loads(r.read())

        def serve_old(path: str, v: dict[str, Any]) -> dict[str, Any]:
            if path.startswith("/state/" + cp_key(cp).hex()):
                return {**old, "height": v["height"]}
            if path.startswith("/light/"):
                v["record"] = {"value": bytes.fromhex(old["value"]),
                               "proof": jsonenc.proof_from_json(old["proof"]).to_obj()}  # fmt: skip
            return v

        proxy.tamper = serve_old
        with pytest.raises(LightError):
            sync.refresh(int(time.time() * 1000))
        assert sync.acl == good
        # an honest answer again: the grant arrives
        proxy.tamper = None
        sync.refresh(int(time.time() * 1000))
        assert sync.acl is not None and [g["grantee"] for g in sync.acl.grants] == [prov.pub]
    finally:
        sync.close()
        sync.store.close()
        proxy.close()


def test_lying_witness_reported_and_fork_halts(net: Network, tmp_path: Path) -> None:
    cp, owner, prov = _owned_cp(net)
    witness = Proxy(net.apis[1])
    sync = _sync(tmp_path, net, cp, [net.apis[0], witness.url])
    try:
        sync.refresh(int(time.time() * 1000))
        good = sync.acl

        def forge(path: str, v: dict[str, Any]) -> dict[str, Any]:
            if path.startswith("/commits/"):
                v["header"]["state_root"] = "22" * 32  # unsigned: an invalid witness, not a fork
            return v

        witness.tamper = forge
        _wait_new_block(net)
        sync.refresh(int(time.time() * 1000))  # the primary is fine: the sync goes on
        assert not sync.halted and any(witness.url in r for r in sync.reported)
        good = sync.acl
        # a fork: what a corrupt validator majority can sign. The testnet's validator keys are
        # on disk, so sign another block at the same height with all of them.
        keys = [load_key(Path(n["home"]) / "validator_key.json") for n in net.info["nodes"]]
        chain = net.info["chain_id"]

        def fork(path: str, v: dict[str, Any]) -> dict[str, Any]:
            if not path.startswith("/commits/"):
                return v
            header = jsonenc.header_from_json(v["header"])
            forked = dataclasses.replace(header, state_root=b"\x33" * 32)
            with net.client(1) as c:
                valset = c.validators(header.height)
            votes = [Vote(PRECOMMIT, header.height, 0, forked.block_id(), k.pub).signed(chain, k) for k in keys]
            commit = Commit.from_votes(valset, votes)
            return {"header": jsonenc.to_json(forked.to_obj()), "commit": jsonenc.to_json(commit.to_obj())}

        witness.tamper = fork
        _wait_new_block(net)
        with pytest.raises(SyncError, match="witness"):
            sync.refresh(int(time.time() * 1000))
        assert sync.halted and sync.divergence is not None
        assert sync.divergence.to_json()  # both headers, as evidence an operator can hand on
        assert sync.acl == good  # the last verified access list stays in force
        with pytest.raises(SyncError, match="halted"):
            sync.refresh(int(time.time() * 1000))
        # the halt survives a restart: it is on disk
        sync.close()
        sync.store.close()
        sync = _sync(tmp_path, net, cp, [net.apis[0]])
        assert sync.halted and sync.acl == good
    finally:
        sync.close()
        sync.store.close()
        witness.close()
