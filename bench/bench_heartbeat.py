"""What an idle chain costs on disk (issue: node efficiency, "heartbeat without waste"): a
4-validator loopback devnet with the default heartbeat (one empty block a second) runs for
`--seconds`; from one validator's LMDB (opened read-only beside the running node) we read the
pages each table uses before and after, and from the API the bytes of each empty block and its
commit. Prints bytes per empty block (stored, and as encoded), the tables that grow, and what
that makes per day at one block a second; beside them the WAL's growth.

    .venv/bin/python bench/bench_heartbeat.py [--seconds 60] [--keep-blocks N]

`--keep-blocks N` sets `[storage] keep_blocks` on every node (bodies of older blocks pruned);
an empty block has no body, so on an idle chain it shows that pruning costs nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.node.storage import schema as S  # noqa: E402
from ads_ledger.testing.devnet import Network, create  # noqa: E402


def table_bytes(path: Path) -> tuple[int, dict[str, int]]:
    """(pages in use × page size, per table bytes) of an LMDB environment, read-only."""
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=len(S.ALL_TABLES) + 2, subdir=True)
    try:
        psize = env.stat()["psize"]
        used = (env.info()["last_pgno"] + 1) * psize
        out = {}
        with env.begin() as txn:
            for name in S.ALL_TABLES:
                st = txn.stat(env.open_db(name.encode(), txn=txn, create=False))
                out[name] = (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * psize
        return used, out
    finally:
        env.close()


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--keep-blocks", type=int, default=0, help="[storage] keep_blocks of every node")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-heartbeat-"))
    net = None
    try:
        create(tmp / "net", 4, fast=False)  # default timing: the heartbeat a real network runs
        net = Network(tmp / "net")
        if a.keep_blocks:
            for node in net.info["nodes"]:
                cfg = Path(node["home"]) / "config.toml"
                text, n = re.subn(r"(?m)^keep_blocks = \d+$", f"keep_blocks = {a.keep_blocks}", cfg.read_text())
                if n != 1:
                    raise SystemExit(f"{cfg} has no keep_blocks line")
                cfg.write_text(text)
        net.start_all()
        net.wait_height(3, timeout=60)
        data = Path(net.info["nodes"][1]["home"]) / "data"
        with net.client(1) as c:
            h0 = int(c.status()["latest_height"])
            used0, tables0 = table_bytes(data / "state.lmdb")
            wal0 = dir_bytes(data / "wal")
            time.sleep(a.seconds)
            h1 = int(c.status()["latest_height"])
            used1, tables1 = table_bytes(data / "state.lmdb")
            wal1 = dir_bytes(data / "wal")
            sizes = []
            for h in range(h0 + 1, h1 + 1):
                b = c.block(h)
                hdr, commit = c.commit(h)
                sizes.append((len(codec.encode(hdr.to_obj())), len(codec.encode(commit.to_obj())), len(b["txs"])))
        blocks = h1 - h0
        empty = sum(1 for s in sizes if s[2] == 0)
        per_block = (used1 - used0) / max(1, blocks)
        grow = {k: round((tables1[k] - tables0.get(k, 0)) / max(1, blocks)) for k in tables1
                if tables1[k] != tables0.get(k, 0)}  # fmt: skip
        enc = sum(s[0] + s[1] for s in sizes) / max(1, len(sizes))
        row: dict[str, Any] = {"figure": "empty_block_bytes", "keep_blocks": a.keep_blocks, "blocks": blocks, "empty": empty,
                               "seconds": a.seconds, "stored_bytes_per_block": round(per_block),
                               "encoded_header_plus_commit_bytes": round(enc),
                               "tables_bytes_per_block": grow, "wal_bytes_per_block": round((wal1 - wal0) / max(1, blocks)),
                               "per_day_mb_at_1_block_per_s": round(per_block * 86_400 / 1e6, 1)}  # fmt: skip
        print(json.dumps(row))
        print(f"{blocks} blocks in {a.seconds:.0f} s ({empty} empty): {per_block:,.0f} B stored per block "
              f"(its header and commit encode to {enc:,.0f} B), {row['per_day_mb_at_1_block_per_s']} MB a day at one "
              f"block a second; growing tables per block: {grow}; WAL {row['wal_bytes_per_block']} B/block")
    finally:
        if net is not None:
            for i in list(net.procs):
                net.kill(i)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
