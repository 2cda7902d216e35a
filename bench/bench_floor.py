"""The floor of a validator's work per transaction: what one validator must do for each
committed tx, in one process, with no network, HTTP, mempool or consensus messages.

    .venv/bin/python bench/bench_floor.py [--owners 400] [--sizes 30,400] [--blocks 20]

Two in-process Ledgers on real LMDB: one proposes (`assemble`), the other does a
non-proposer's work and is the one measured, stage by stage, in its thread's CPU time:
  verify   each tx's auth signature (libsodium), as intake does;
  parse    the envelope, its body's shape and its sign bytes (once per node);
  admit    the state check a mempool runs before it accepts the tx (`check_tx`);
  block    `check_block`: the block's checks and its execution, without staging;
  stage    staging the block's writes into the authenticated state (JMT nodes, value records;
           `Ledger._stage`, timed inside check_block);
  commit   `commit_block`: the commit's 4 signatures, one LMDB write transaction, fsync.
The workload is bench_devnet's: attested owners, each with one charge point, alternate a grant
(meter.read to one provider) and the revoke of that grant; a block holds each owner at most
once, so every tx is admitted against the committed state (a node's mempool checks a signer's
first pending tx on arrival and the rest on later rechecks: about once per tx too). Sizes are
txs per block: ~30 is a chain at 200 tx/s, ~400 and more a chain at throughput. What this
leaves out, a live validator also pays: P2P and HTTP transport, mempool bookkeeping,
consensus messages and their signatures, the WAL, and GIL contention between its threads.
Prints one JSON line per size and a human line, with one Ed25519 verification's CPU time
measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify  # noqa: E402
from ads_ledger.core.types import PRECOMMIT, Commit, Vote  # noqa: E402
from ads_ledger.node.ledger import Ledger  # noqa: E402
from ads_ledger.state.bodies import check_body  # noqa: E402
from ads_ledger.state.envelope import make_envelope, parse_envelope  # noqa: E402
from ads_ledger.state.machine import check_tx  # noqa: E402
from ads_ledger.testing import key, make_test_genesis  # noqa: E402
from ads_ledger.testing.trustlist import (  # noqa: E402
    issue_attestation,
    issue_device_attestation,
    make_device_ca,
    make_trust_list,
)
from limits import ed25519_cpu_us  # type: ignore[import-not-found]  # bench/limits.py  # noqa: E402

CHAIN = "ads-bench-floor"
STAGES = ("verify", "parse", "admit", "block", "stage", "commit")


class Chain:
    """A proposer ledger and a measured validator ledger, fed the same blocks."""

    def __init__(self, root: Path, owners: int) -> None:
        now = int(time.time() * 1000)
        tl, dca = make_trust_list(), make_device_ca()
        self.vals = [key(f"validator{i}") for i in range(4)]
        g = make_test_genesis(tl.anchors_der(), chain_id=CHAIN, genesis_time=now - 3_600_000,
                              device_anchors_der=dca.anchors_der())  # fmt: skip
        self.prop = Ledger.open(root / "p", g)
        self.led = Ledger.open(root / "v", g)
        self.stage_s = 0.0
        stage = self.led._stage

        def timed_stage(height: int, result: Any) -> Any:  # the JMT part of check_block, apart
            t0 = time.thread_time()
            try:
                return stage(height, result)
            finally:
                self.stage_s += time.thread_time() - t0

        self.led._stage = timed_stage  # type: ignore[method-assign]
        self.time = now - 3_000_000
        self.owners = [SigningKey(H(b"owner%d" % i)) for i in range(owners)]
        self.devices = [SigningKey(H(b"device%d" % i)) for i in range(owners)]
        self.provider = SigningKey(H(b"provider")).pub
        self.nonce = [0] * owners
        self.gid: list[bytes | None] = [None] * owners
        setup = []
        for i, (o, d) in enumerate(zip(self.owners, self.devices)):
            att = issue_attestation(tl, CHAIN, o.pub, issued_at=now - 3_500_000, expires_at=now + 86_400_000)
            dsig = d.sign(sign_bytes("ads/own/1", CHAIN, {"cp": d.pub, "owner": o.pub, "epoch": 0}))
            dev = issue_device_attestation(dca, d.pub, issued_at=now - 86_400_000)
            claim = {"cp": d.pub, "device": dev, "device_sig": dsig}
            attest = make_envelope(CHAIN, "attest", o, 1, att)
            setup.append([attest, make_envelope(CHAIN, "cp.claim", o, 2, claim)])
            self.nonce[i] = 2
        for step in (0, 1):
            for k in range(0, owners, 200):
                self.run([s[step] for s in setup[k : k + 200]])

    def next_tx(self, i: int) -> bytes:
        """Owner i's next tx: a grant, or the revoke of its last grant."""
        o = self.owners[i]
        self.nonce[i] += 1
        gid = self.gid[i]
        if gid is None:
            body: dict[str, Any] = {
                "cp": self.devices[i].pub, "grantee": self.provider, "scopes": ["meter.read"],
                "not_before": self.time - 60_000, "not_after": self.time + 86_400_000, "limits": {},
                "exclusive": False, "priority": 1, "redelegate": 0, "parent": None,
            }  # fmt: skip
            raw = make_envelope(CHAIN, "grant", o, self.nonce[i], body)
            self.gid[i] = parse_envelope(raw).txid(CHAIN)[:16]
            return raw
        self.gid[i] = None
        return make_envelope(CHAIN, "revoke", o, self.nonce[i], {"cp": self.devices[i].pub, "grant": gid})

    def run(self, txs: list[bytes], cpu: dict[str, float] | None = None) -> None:
        """One height: the validator takes the txs in, checks the proposed block, commits."""
        h = self.led.height + 1
        self.time += 1000
        t = time.thread_time
        if cpu is not None:
            view = self.led.state_view()
            for raw in txs:
                t0 = t()
                env = parse_envelope(raw)
                check_body(env.type, env.body)
                msg = env.sign_bytes(CHAIN)
                txid = H(msg)
                t1 = t()
                ok = all(verify(pub, sig, msg) for pub, sig in env.auth)
                t2 = t()
                assert ok
                self.led.note_verified(env, txid)
                r = check_tx(view, CHAIN, raw, self.time, verify_sigs=False, height=h, env=env)
                t3 = t()
                assert r.ok, r.log
                cpu["parse"] += t1 - t0
                cpu["verify"] += t2 - t1
                cpu["admit"] += t3 - t2
        block = self.prop.assemble(h, self.time, self.vals[0].pub, self.prop.commit_at(h - 1), txs)
        votes = [Vote(PRECOMMIT, h, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in self.vals]
        commit = Commit.from_votes(self.prop.validators_at(h), votes)
        self.prop.commit_block(block, commit)
        staged0 = self.stage_s
        t0 = t()
        self.led.check_block(block)
        t1 = t()
        self.led.commit_block(block, commit)
        t2 = t()
        if cpu is not None:
            staging = self.stage_s - staged0
            cpu["block"] += t1 - t0 - staging
            cpu["stage"] += staging
            cpu["commit"] += t2 - t1

    def close(self) -> None:
        self.prop.close()
        self.led.close()


def measure(root: Path, owners: int, size: int, blocks: int) -> dict[str, Any]:
    chain = Chain(root, owners)
    try:
        cpu = dict.fromkeys(STAGES, 0.0)
        cursor, n = 0, 0
        for b in range(blocks + 2):
            txs = []
            for _ in range(size):
                txs.append(chain.next_tx(cursor))
                cursor = (cursor + 1) % owners
            chain.run(txs, cpu if b >= 2 else None)  # two warm-up heights
            if b >= 2:
                n += len(txs)
        per = {k: round(v / n * 1e6, 1) for k, v in cpu.items()}
        return {"txs_per_block": size, "txs": n, "us_per_tx": per, "total_us": round(sum(per.values()), 1)}
    finally:
        chain.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--owners", type=int, default=400)
    ap.add_argument("--sizes", default="30,400", help="txs per block, comma-separated (≤ owners)")
    ap.add_argument("--blocks", type=int, default=20)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if max(sizes) > a.owners:
        raise SystemExit("a block holds each owner at most once: --sizes must not exceed --owners")
    root = Path(tempfile.mkdtemp(prefix="ads-floor-"))
    try:
        for size in sizes:
            r = measure(root / str(size), a.owners, size, a.blocks)
            v = ed25519_cpu_us(0.5)
            r["verify_cpu_us"] = round(v, 1)
            r["ratio_to_verify"] = round(r["total_us"] / v, 2)
            per = r["us_per_tx"]
            print(f"{size} txs/block: {r['total_us']} µs of one validator's CPU per tx = "
                  f"{r['ratio_to_verify']}× one Ed25519 verify ({v:.1f} µs, same process) — "
                  + ", ".join(f"{k} {per[k]}" for k in STAGES))  # fmt: skip
            print(json.dumps({"bench": "validator_floor", **r}, sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
