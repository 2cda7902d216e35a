"""Regulator levers: does a grant cost the same for a provider holding 100,000 grants as for one
holding 10? (DESIGN §4: cost per grant independent of the provider's number of grants.)

    .venv/bin/python bench/bench_levers.py [--big 100000] [--small 10] [--rounds 10] [--block-txs 200]

Two registered providers with capacity caps (so the cap check runs). The state is populated
straight through the state machine in-process (no network): blocks of grants to the big
provider until it holds `--big` grants over charge points of 50 grants each, and `--small` to the
small one. Then `--rounds` rounds, each one block of `--block-txs` grants to each provider on
fresh charge points (same record shapes) and one block revoking them, interleaved so that noise
hits both alike. Signatures are pre-checked (`sigs_checked=True`); the raw Ed25519 verification
rate of this machine is measured in the same run (a grant's admission costs one verify).
Prints one JSON line and one human line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.core.crypto import H, SigningKey  # noqa: E402
from ads_ledger.state.envelope import make_envelope  # noqa: E402
from ads_ledger.state.machine import execute_block  # noqa: E402
from ads_ledger.state.records import lev_grantee_key, prov_key  # noqa: E402
from bench_execute import build_state, ed25519_verifies_per_s  # noqa: E402

CHAIN = "ads-bench"
T0 = 1_800_000_000_000
PER_CP = 50  # grants per charge point record while populating (the default limit is 64)


class Chain:
    def __init__(self, n_cps: int, n_owners: int) -> None:
        self.owners = [SigningKey(H(b"owner%d" % i)) for i in range(n_owners)]
        self.view, self.cps, self.nonces = build_state(n_cps, self.owners)
        self.height, self.time, self.next_cp = 1, T0, 0

    def owner_of(self, i: int) -> SigningKey:
        return self.owners[i % len(self.owners)]

    def grant_tx(self, i: int, grantee: bytes, k: int) -> bytes:
        o = self.owner_of(i)
        self.nonces[o.pub] += 1
        body: dict[str, Any] = {
            "cp": self.cps[i], "grantee": grantee, "scopes": ["charging.control"],
            "not_before": T0, "not_after": T0 + 30 * 86_400_000, "limits": {"max_power_w": 11_000},
            "exclusive": False, "priority": k % 100, "redelegate": 0, "parent": None,
        }  # fmt: skip
        return make_envelope(CHAIN, "grant", o, self.nonces[o.pub], body)

    def revoke_tx(self, i: int, gid: bytes) -> bytes:
        o = self.owner_of(i)
        self.nonces[o.pub] += 1
        return make_envelope(CHAIN, "revoke", o, self.nonces[o.pub], {"cp": self.cps[i], "grant": gid})

    def run(self, txs: list[bytes]) -> tuple[float, list[bytes]]:
        """Execute one block; (seconds, ids of its grants)."""
        self.height += 1
        self.time += 1000
        t0 = time.perf_counter()
        res = execute_block(self.view, CHAIN, self.height, self.time, txs, sigs_checked=True)
        dt = time.perf_counter() - t0
        assert all(r.ok for r in res.results), [r for r in res.results if not r.ok][:1]
        self.view.apply(res.writes)
        return dt, [r.txid[:16] for r in res.results]

    def populate(self, grantee: bytes, n: int, block_txs: int = 2000) -> None:
        txs: list[bytes] = []
        for k in range(n):
            txs.append(self.grant_tx(self.next_cp + k // PER_CP, grantee, k))
            if len(txs) == block_txs:
                self.run(txs)
                txs = []
        if txs:
            self.run(txs)
        self.next_cp += (n + PER_CP - 1) // PER_CP


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block-txs", type=int, default=200)
    args = ap.parse_args()
    big, small = SigningKey(H(b"big provider")).pub, SigningKey(H(b"small provider")).pub
    n_cps = (args.big + args.small) // PER_CP + 2 + 2 * args.rounds * args.block_txs
    chain = Chain(n_cps, n_owners=1000)
    for pub, name in ((big, "big"), (small, "small")):  # registered directly: governance is not measured
        chain.view.data[prov_key(pub)] = codec.encode({"cap_w": 10**12, "height": 1, "live_w": 0, "name": name,
                                                       "roles": ["aggregator"], "suspended": False})  # fmt: skip
    t0 = time.perf_counter()
    chain.populate(big, args.big)
    chain.populate(small, args.small)
    populate_s = time.perf_counter() - t0
    held = {n: codec.decode(chain.view.data[lev_grantee_key(p)])["n"] for p, n in ((big, "big"), (small, "small"))}

    grant_us: dict[str, list[float]] = {"big": [], "small": []}
    revoke_us: dict[str, list[float]] = {"big": [], "small": []}
    for r in range(args.rounds):
        order = [("big", big), ("small", small)] if r % 2 == 0 else [("small", small), ("big", big)]
        for name, pub in order:
            first = chain.next_cp
            idx = [first + k for k in range(args.block_txs)]  # fresh, empty records: same shape for both
            chain.next_cp += args.block_txs
            dt, gids = chain.run([chain.grant_tx(i, pub, k) for k, i in enumerate(idx)])
            grant_us[name].append(dt / args.block_txs * 1e6)
            dt, _ = chain.run([chain.revoke_tx(i, g) for i, g in zip(idx, gids)])
            revoke_us[name].append(dt / args.block_txs * 1e6)
    verify_per_s = ed25519_verifies_per_s()
    g_big, g_small = statistics.median(grant_us["big"]), statistics.median(grant_us["small"])
    r_big, r_small = statistics.median(revoke_us["big"]), statistics.median(revoke_us["small"])
    out = {
        "bench": "levers", "held": held, "populate_s": round(populate_s, 1), "rounds": args.rounds,
        "block_txs": args.block_txs, "grant_us": {"big": round(g_big, 1), "small": round(g_small, 1)},
        "revoke_us": {"big": round(r_big, 1), "small": round(r_small, 1)},
        "grant_ratio": round(g_big / g_small, 3), "revoke_ratio": round(r_big / r_small, 3),
        "ed25519_verify_per_s": round(verify_per_s), "ed25519_verify_us": round(1e6 / verify_per_s, 1),
        "cpus": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(out))
    print(f"grant: {g_big:.1f} µs with {held['big']:,} grants held vs {g_small:.1f} µs with {held['small']} "
          f"(ratio {g_big / g_small:.2f}); revoke: {r_big:.1f} vs {r_small:.1f} µs (ratio {r_big / r_small:.2f}); "
          f"raw limit: one Ed25519 verify = {1e6 / verify_per_s:.1f} µs ({verify_per_s:,.0f}/s); "
          f"populated in {populate_s:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
