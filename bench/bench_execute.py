"""Throughput of the state machine: grant and revoke transactions over 1,000,000 charge points.

    .venv/bin/python bench/bench_execute.py [--cps 1000000] [--blocks 20] [--block-txs 1000]

The state is a dict-backed StateView preloaded with `--cps` owned charge point records (1,000
owners, each with an eID identity). Blocks alternate: a block of grants on random charge points,
then a block revoking them. Signatures are pre-checked (`sigs_checked=True`), as the mempool has
verified them; the raw Ed25519 verification rate of this machine is measured in the same run.
Prints one JSON line and one human line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.core.crypto import H, SigningKey, verify  # noqa: E402
from ads_ledger.state.context import DictView  # noqa: E402
from ads_ledger.state.envelope import make_envelope  # noqa: E402
from ads_ledger.state.machine import execute_block  # noqa: E402
from ads_ledger.state.records import acct_key  # noqa: E402

CHAIN = "ads-bench"
T0 = 1_800_000_000_000


def ed25519_verifies_per_s(seconds: float = 1.0) -> float:
    """Raw strict Ed25519 verifications per second on one core (bench/limits.py if present)."""
    try:
        from limits import measure_limits
    except ImportError:
        pass
    else:
        return float(measure_limits(seconds)["ed25519_verify_per_s"])
    k = SigningKey(H(b"bench"))
    msg = b"x" * 200
    sig = k.sign(msg)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            verify(k.pub, sig, msg)
        n += 200
    return n / (time.perf_counter() - t0)


def build_state(n_cps: int, owners: list[SigningKey]) -> tuple[DictView, list[bytes], dict[bytes, int]]:
    """n_cps charge point records owned round-robin by `owners`; encoded once per owner."""
    from ads_ledger.testing.trustlist import make_trust_list

    anchor = make_trust_list().anchors_der()[0]  # identities count only under a listed eid anchor
    data: dict[bytes, bytes] = {b"gov/anchors": codec.encode({"device": [], "eid": [anchor]})}
    ident = {"anchor": H(anchor), "expires_at": T0 + 10**12, "issuer": bytes(32), "level": "high",
             "subject": bytes(32)}  # fmt: skip
    device = {"issuer": bytes(32), "model": "BENCH-22"}
    rec_by_owner = []
    for o in owners:
        data[acct_key(o.pub)] = codec.encode({"identity": ident, "nonce": 0})
        rec_by_owner.append(codec.encode(
            {"device": device, "epoch": 1, "grants": [], "owner": o.pub, "pending": None, "updated": 1}))  # fmt: skip
    cps = [H(i.to_bytes(8, "big")) for i in range(n_cps)]
    n_o = len(owners)
    for i, cp in enumerate(cps):
        data[b"cp/" + cp] = rec_by_owner[i % n_o]
    return DictView(data), cps, {o.pub: 0 for o in owners}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cps", type=int, default=1_000_000)
    ap.add_argument("--owners", type=int, default=1000)
    ap.add_argument("--blocks", type=int, default=20, help="grant/revoke blocks (half each)")
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    owners = [SigningKey(H(b"owner%d" % i)) for i in range(args.owners)]
    providers = [SigningKey(H(b"provider%d" % i)).pub for i in range(50)]
    t_build = time.perf_counter()
    view, cps, nonces = build_state(args.cps, owners)
    build_s = time.perf_counter() - t_build

    height, now = 1, T0
    exec_s, n_txs, n_ok = 0.0, 0, 0
    pending_revokes: list[tuple[SigningKey, bytes, bytes]] = []
    prep_s = 0.0
    for b in range(args.blocks):
        t_prep = time.perf_counter()
        txs: list[bytes] = []
        if b % 2 == 0:
            for _ in range(args.block_txs):
                i = rng.randrange(args.cps)
                o = owners[i % args.owners]
                nonces[o.pub] += 1
                body: dict[str, Any] = {
                    "cp": cps[i], "grantee": rng.choice(providers),
                    "scopes": ["charging.control", "meter.read"], "not_before": now,
                    "not_after": now + 86_400_000, "limits": {"max_power_w": 11_000},
                    "exclusive": False, "priority": 10, "redelegate": 0, "parent": None,
                }  # fmt: skip
                raw = make_envelope(CHAIN, "grant", o, nonces[o.pub], body)
                txs.append(raw)
                pending_revokes.append((o, cps[i], b""))
        else:
            for o, cp, gid in pending_revokes:
                nonces[o.pub] += 1
                txs.append(make_envelope(CHAIN, "revoke", o, nonces[o.pub], {"cp": cp, "grant": gid}))
            pending_revokes = []
        prep_s += time.perf_counter() - t_prep
        height += 1
        now += 1000
        t = time.perf_counter()
        res = execute_block(view, CHAIN, height, now, txs, sigs_checked=True)
        exec_s += time.perf_counter() - t
        n_txs += len(txs)
        n_ok += sum(r.ok for r in res.results)
        view.apply(res.writes)
        if b % 2 == 0:  # the grant ids are only known once executed: txid[:16]
            pending_revokes = [
                (o, cp, r.txid[:16]) for (o, cp, _), r in zip(pending_revokes, res.results) if r.ok
            ]
    tps = n_txs / exec_s
    ed = ed25519_verifies_per_s()
    out = {
        "bench": "execute_block",
        "charge_points": args.cps,
        "txs": n_txs,
        "ok": n_ok,
        "block_txs": args.block_txs,
        "exec_s": round(exec_s, 3),
        "tx_per_s": round(tps),
        "ed25519_verify_per_s": round(ed),
        "tx_per_verify_ratio": round(tps / ed, 3),
        "state_build_s": round(build_s, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    print(
        f"execute_block: {tps:,.0f} grant/revoke tx/s over {args.cps:,} charge points "
        f"({n_ok}/{n_txs} ok, {exec_s:.2f} s); raw Ed25519 verify {ed:,.0f}/s on one core "
        f"(ratio {tps / ed:.2f})"
    )


if __name__ == "__main__":
    main()
