"""What `[storage] keep_blocks` saves on a chain with transactions (issue: node efficiency,
"heartbeat without waste"): one in-process Ledger commits `--blocks` blocks of `--txs` small
transactions each (4 validators' commits), with `keep_blocks` 0 (keep all) and `--keep`;
prints the bytes of the tables a block writes, per block, for both. The tx index (`txs`) and
the headers and commits stay; bodies and results of older blocks go (LMDB reuses the freed
pages: the data file stops growing with them, it does not shrink).

    .venv/bin/python bench/bench_prune.py [--blocks 400 --txs 20 --keep 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ads_ledger.core.crypto import SigningKey  # noqa: E402
from ads_ledger.core.types import PRECOMMIT, Commit, Vote  # noqa: E402
from ads_ledger.node.ledger import Ledger  # noqa: E402
from ads_ledger.node.storage import schema as S  # noqa: E402
from ads_ledger.state.envelope import make_envelope  # noqa: E402
from ads_ledger.state.genesis import Genesis  # noqa: E402

CHAIN = "bench-prune"
VALS = [SigningKey(bytes([0x61 + i]) * 32) for i in range(4)]
USER = SigningKey(b"\x77" * 32)
TABLES = (S.BLOCKS, S.BODIES, S.COMMITS, S.RESULTS, S.TXS)


def run(blocks: int, per: int, keep: int) -> dict[str, int]:
    t0 = int(time.time() * 1000) - 10**8
    g = Genesis(chain_id=CHAIN, genesis_time=t0, validators=[(v.pub, 10) for v in VALS],
                members=[USER.pub], threshold=1, anchors=[])  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    led = Ledger.open(tmp / "db", g, keep_blocks=keep)
    try:
        n = 0
        for h in range(1, blocks + 1):
            txs = []
            for _ in range(per):  # executed without checks: only their bytes matter here
                n += 1
                txs.append(make_envelope(CHAIN, "gov", USER, n, {"action": "members.set",
                                                                "args": {"members": [USER.pub], "threshold": 1}}))
            b = led.assemble(h, t0 + 1000 * h, VALS[0].pub, led.commit_at(h - 1), txs)
            votes = [Vote(PRECOMMIT, h, 0, b.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
            led.commit_block(b, Commit.from_votes(led.validators_at(h), votes))
        env, dbs = led.store._env, led.store._dbs
        psize = env.stat()["psize"]
        with env.begin() as txn:
            out = {}
            for name in TABLES:
                st = txn.stat(dbs[name])
                out[name] = (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * psize
        return out
    finally:
        led.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=400)
    ap.add_argument("--txs", type=int, default=20)
    ap.add_argument("--keep", type=int, default=50)
    a = ap.parse_args()
    for keep in (0, a.keep):
        t = run(a.blocks, a.txs, keep)
        row = {"figure": "table_bytes_per_block", "keep_blocks": keep, "blocks": a.blocks, "txs_per_block": a.txs,
               "per_block": {k: round(v / a.blocks) for k, v in t.items()},
               "total_per_block": round(sum(t.values()) / a.blocks)}  # fmt: skip
        print(json.dumps(row))


if __name__ == "__main__":
    main()
