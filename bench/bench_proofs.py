"""State proofs at scale: bulk-load N keys into a real LMDB store, then measure proof size,
time to build a proof (Store.prove) and to verify it (merkle.verify_proof), for random
present and absent keys; and stage+commit of 2,000-write blocks on the loaded store.

Targets: proof ≤ 1 KB, build ≤ 200 µs, verify ≤ 50 µs. Raw limits (bench/limits.py) are
measured in the same run, and beside each verify the raw cost of the same proof's d + 2
SHA-256 calls (a proof of d siblings needs d + 2 digests), timed right after it so that load
on the machine hits both alike.

    .venv/bin/python bench/bench_proofs.py --keys 1000000,5000000 [--samples 10000] [--blocks 5]

One JSON line per size and a human line. The store lives in a temp dir under /tmp, removed at exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.core.crypto import H  # noqa: E402
from ads_ledger.core.merkle import verify_proof  # noqa: E402
from ads_ledger.node.storage.store import Store  # noqa: E402
from limits import (
    measure_limits,  # noqa: E402
    pct,  # type: ignore[import-not-found]  # bench/limits.py
)


def key_of(i: int) -> bytes:
    return b"acct/" + H(i.to_bytes(8, "big"))


def value_of(i: int, salt: int = 0) -> bytes:
    return codec.encode({"nonce": i % 97 + salt, "identity": None, "pad": H(b"%d" % i)[:24]})


def items(n: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(n):
        yield key_of(i), value_of(i)


def run(n: int, samples: int, blocks: int, rng: random.Random) -> dict[str, Any]:
    d = tempfile.mkdtemp(prefix="bench-proofs-", dir="/tmp")
    try:
        store = Store.open(d)
        t0 = time.perf_counter()
        root = store.bulk_load(items(n), 1)
        load_s = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in Path(d).iterdir())
        present = [key_of(rng.randrange(n)) for _ in range(samples // 2)]
        absent = [b"acct/" + H(b"absent%d" % i) for i in range(samples - len(present))]
        keys = present + absent
        absent_set = set(absent)
        rng.shuffle(keys)
        for k in keys[:1000]:  # warm the node cache as a serving node would be
            store.prove(k)
        sizes: list[int] = []
        build: list[float] = []
        verify: list[float] = []
        depths: list[int] = []
        raw: list[float] = []
        sha = hashlib.sha256
        clock = time.perf_counter
        for k in keys:
            t = clock()
            value, proof = store.prove(k)
            t1 = clock()
            ok = verify_proof(root, k, value, proof)
            t2 = clock()
            for _ in range(len(proof.siblings) + 2):  # the same proof's digests, raw
                sha(k).digest()
            raw.append((clock() - t2) * 1e6)
            assert ok and (value is None) == (k in absent_set), k
            build.append((t1 - t) * 1e6)
            verify.append((t2 - t1) * 1e6)
            sizes.append(len(codec.encode(proof.to_obj())))
            depths.append(len(proof.siblings))
        # blocks of 2,000 writes (1,900 updates of existing keys, 100 new keys)
        block_s: list[float] = []
        stage_s: list[float] = []
        for b in range(blocks):
            writes = {key_of(rng.randrange(n)): value_of(b, salt=1 + b) for _ in range(1900)}
            writes.update({b"new/%d/%d" % (b, j): b"x" * 40 for j in range(2000 - len(writes))})
            t = clock()
            staged = store.stage(writes, store.latest_version() + 1)
            t1 = clock()
            store.commit(staged)
            t2 = clock()
            stage_s.append(t1 - t)
            block_s.append(t2 - t)
        store.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {
        "keys": n,
        "bulk_load_s": round(load_s, 1),
        "bulk_load_keys_per_s": round(n / load_s),
        "disk_bytes": disk,
        "samples": len(keys),
        "siblings_mean": round(statistics.mean(depths), 2),
        "siblings_max": max(depths),
        "proof_bytes_mean": round(statistics.mean(sizes), 1),
        "proof_bytes_p99": pct(sizes, 0.99),
        "proof_bytes_max": max(sizes),
        "build_us_mean": round(statistics.mean(build), 1),
        "build_us_median": round(statistics.median(build), 1),
        "build_us_p99": round(pct(build, 0.99), 1),
        "verify_us_mean": round(statistics.mean(verify), 1),
        "verify_us_median": round(statistics.median(verify), 1),
        "raw_sha256_of_proof_us_mean": round(statistics.mean(raw), 1),
        "verify_over_raw_sha256": round(statistics.mean(verify) / statistics.mean(raw), 2),
        "verify_us_p99": round(pct(verify, 0.99), 1),
        "block_writes": 2000,
        "block_stage_s_mean": round(statistics.mean(stage_s), 3),
        "block_stage_commit_s_mean": round(statistics.mean(block_s), 3),
        "block_writes_per_s": round(2000 / statistics.mean(block_s)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", default="1000000,5000000", help="comma-separated store sizes")
    ap.add_argument("--samples", type=int, default=10_000, help="keys proved per size (half absent)")
    ap.add_argument("--blocks", type=int, default=5, help="2,000-write blocks staged+committed")
    ap.add_argument("--seconds", type=float, default=1.0, help="per raw-limit measurement")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: fresh, printed)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: clean up /tmp
    ap_seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(8), "big")
    print(f"seed {ap_seed} (--seed {ap_seed} repeats this run's keys and samples)", flush=True)
    rng = random.Random(ap_seed)
    for n in [int(x) for x in a.keys.split(",")]:
        out = run(n, a.samples, a.blocks, rng)
        lim = measure_limits(a.seconds)
        out.update({f"limits_{k}": v for k, v in lim.items()})
        print(json.dumps(out), flush=True)
        print(
            f"{n:,} keys (bulk load {out['bulk_load_s']} s, {out['bulk_load_keys_per_s']:,} keys/s, "
            f"{out['disk_bytes'] / 1e9:.2f} GB): proof {out['proof_bytes_mean']} B mean / "
            f"{out['proof_bytes_p99']} p99 / {out['proof_bytes_max']} max (target ≤ 1024); "
            f"build {out['build_us_mean']} µs mean / {out['build_us_median']} median / "
            f"{out['build_us_p99']} p99 (≤ 200); verify {out['verify_us_mean']} µs mean / "
            f"{out['verify_us_median']} median / {out['verify_us_p99']} p99 (≤ 50) = "
            f"{out['verify_over_raw_sha256']} × the raw SHA-256 calls of the same proofs "
            f"({out['raw_sha256_of_proof_us_mean']} µs; {out['siblings_mean']} siblings mean); "
            f"2,000-write block stage+commit "
            f"{out['block_stage_commit_s_mean']} s = {out['block_writes_per_s']:,} writes/s | "
            f"limits: SHA-256 {lim['sha256_32b_per_s']:,}/s, Ed25519 {lim['ed25519_verify_per_s']:,}/s, "
            f"LMDB puts {lim['lmdb_put_per_s']:,}/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
