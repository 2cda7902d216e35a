"""Node restart to first commit: after a short chain and after a long one (should not differ).

    .venv/bin/python bench/bench_restart.py [--short 20] [--long 2000] [--repeats 11] [--dir /var/tmp]
        [--node-src OTHER/src]

Two single-validator homes (`ads testnet init`, the devnet's fast timeouts) get a chain of
`--short` and `--long` empty blocks, built in this process through the Ledger API (each block
proposed, committed and signed by the home's validator key; block times one second apart,
ending in the past). Then a real `ads node start` process is started on each home, alternately,
`--repeats` times, and timed from spawn to its HTTP API answering (`ready`) and to the first
block it commits itself (`first_commit`: /status reports a new height; polled every 10 ms).
The node's CPU time (user + system, from /proc) at that moment is recorded too: on a shared,
loaded machine it varies much less than wall time. Restart work that grew with the chain (proposer priorities replayed from height 1, a validator
set kept per height) would show as a long/short ratio above 1; the target is within ±20%.
`--node-src` runs the node processes from another source tree (e.g. an older checkout's
`src`, for a before/after comparison on the same homes); the chains are always built here,
so a tree from before store format 2 (blocks in parts) refuses them ("store format 2").

Beside them, in the same process: `Ledger.open` + `priorities_at_next()` (what the node does
before its consensus core exists) for both chains, and the walk from genesis it replaces
(`priorities_for_height`), and bench/limits.py's raw limits. One JSON line per figure, then
human lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.client.http import NodeClient  # noqa: E402
from ads_ledger.consensus.proposer import priorities_for_height  # noqa: E402
from ads_ledger.core.types import PRECOMMIT, Commit, Vote  # noqa: E402
from ads_ledger.node.config import load_config, load_key  # noqa: E402
from ads_ledger.node.ledger import Ledger  # noqa: E402
from ads_ledger.state.genesis import Genesis  # noqa: E402
from ads_ledger.testing.devnet import Network, create  # noqa: E402
from limits import limits_or_error as limits  # type: ignore[import-not-found]  # bench/limits.py

BLOCK_GAP_MS = 1000  # block times one second apart, as with the default heartbeat


def make_home(directory: Path, blocks: int) -> Network:
    """A one-validator testnet whose node0 home holds `blocks` committed empty blocks."""
    create(directory, 1)
    home = directory / "node0"
    doc = json.loads((home / "genesis.json").read_text())
    # genesis far enough back that every built block's time is in the past at restart
    doc["genesis_time"] -= (blocks + 3600) * BLOCK_GAP_MS
    for p in (home / "genesis.json", directory / "genesis.json"):
        p.write_text(json.dumps(doc, indent=2) + "\n")
    cfg = load_config(home)
    genesis = Genesis.load(cfg.genesis_path)
    key = load_key(cfg.validator_key_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(cfg.data_dir / "state.lmdb", genesis, cfg.keep_versions)
    try:
        while ledger.height < blocks:
            h = ledger.height + 1
            block = ledger.propose_block(h, 0, genesis.genesis_time + h * BLOCK_GAP_MS, key.pub,
                                         ledger.commit_at(h - 1))  # fmt: skip
            vote = Vote(PRECOMMIT, h, 0, block.block_id(), key.pub).signed(genesis.chain_id, key)
            ledger.commit_block(block, Commit.from_votes(ledger.validators_at(h), [vote]))
            if h % 500 == 0:
                print(f"  built {h:,}/{blocks:,} blocks in {directory.name}", file=sys.stderr)
    finally:
        ledger.close()
    return Network(directory)


def height_of(api: str) -> int | None:
    try:
        with NodeClient(api, timeout_s=1.0) as c:
            return int(c.status()["latest_height"])
    except Exception:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def restart_once(net: Network, env: dict[str, str], timeout: float = 120.0) -> tuple[float, float, float]:
    """(seconds to API ready, seconds to the first new commit, the node's CPU seconds by then)."""
    cfg = load_config(net.homes[0])
    ledger = Ledger.open(cfg.data_dir / "state.lmdb", Genesis.load(cfg.genesis_path))
    before = ledger.height
    ledger.close()
    api = net.apis[0]
    t0 = time.perf_counter()
    net.start(0, env=env)
    ready = None
    try:
        while True:
            h = height_of(api)
            now = time.perf_counter() - t0
            if h is not None and ready is None:
                ready = now
            if h is not None and h > before:
                return ready or now, now, cpu_seconds(net.procs[0].pid)
            if net.procs[0].poll() is not None:
                tail = (net.homes[0] / "node.log").read_text()[-2000:]
                raise RuntimeError(f"the node exited ({net.procs[0].returncode}):\n{tail}")
            if now > timeout:
                raise TimeoutError(f"no commit after {before} within {timeout}s")
            time.sleep(0.01)
    finally:
        net.stop(0)


def in_process(net: Network) -> dict[str, float]:
    """Ledger.open + stored priorities, and the walk from genesis they replace (seconds)."""
    cfg = load_config(net.homes[0])
    genesis = Genesis.load(cfg.genesis_path)
    t0 = time.perf_counter()
    ledger = Ledger.open(cfg.data_dir / "state.lmdb", genesis, cfg.keep_versions)
    stored = ledger.priorities_at_next()
    t1 = time.perf_counter()
    walked = priorities_for_height(ledger.validators_at, ledger.height + 1)
    t2 = time.perf_counter()
    ledger.close()
    assert stored == walked, "the stored priorities differ from the walk from genesis"
    return {"open_and_priorities_s": t1 - t0, "walk_from_genesis_s": t2 - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--short", type=int, default=20, help="blocks of the short chain")
    ap.add_argument("--long", type=int, default=2000, help="blocks of the long chain")
    ap.add_argument("--repeats", type=int, default=11, help="restarts per chain (median reported)")
    ap.add_argument("--node-src", default=str(SRC), help="source tree the node processes run")
    ap.add_argument("--dir", default=None, help="where to put the temporary homes")
    a = ap.parse_args()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [a.node_src, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="bench-restart-", dir=a.dir) as tmp:
        t0 = time.perf_counter()
        nets = {n: make_home(Path(tmp) / f"chain{n}", n) for n in (a.short, a.long)}
        build_s = time.perf_counter() - t0
        runs: dict[int, list[tuple[float, float, float]]] = {n: [] for n in nets}
        try:
            for _ in range(a.repeats):  # alternate, so that machine noise hits both chains
                for n, net in nets.items():
                    runs[n].append(restart_once(net, env))
        finally:
            for net in nets.values():
                net.stop_all()  # never leave a node process behind
        parts = {n: in_process(net) for n, net in nets.items()}
        lim = limits()
    out: dict[int, dict[str, Any]] = {}
    for n in nets:
        ready = statistics.median(r[0] for r in runs[n])
        first = statistics.median(r[1] for r in runs[n])
        best = min(r[1] for r in runs[n])
        cpu = statistics.median(r[2] for r in runs[n])
        out[n] = {"bench": "restart", "figure": "restart_to_first_commit_s", "chain_blocks": n,
                  "first_commit_s": round(first, 3), "min_first_commit_s": round(best, 3),
                  "ready_s": round(ready, 3), "cpu_to_first_commit_s": round(cpu, 3),
                  "node_src": a.node_src,
                  "runs_first_commit_s": [round(r[1], 3) for r in runs[n]],
                  "open_and_priorities_ms": round(parts[n]["open_and_priorities_s"] * 1000, 2),
                  "walk_from_genesis_ms": round(parts[n]["walk_from_genesis_s"] * 1000, 2),
                  "limits": lim}  # fmt: skip
        print(json.dumps(out[n]))
    s, lg = out[a.short], out[a.long]
    ratio = lg["first_commit_s"] / s["first_commit_s"]
    cpu_ratio = lg["cpu_to_first_commit_s"] / s["cpu_to_first_commit_s"]

    def verdict(r: float) -> str:
        return "within" if abs(r - 1) <= 0.20 else "OUTSIDE"

    print(json.dumps({"bench": "restart", "figure": "long_over_short", "ratio": round(ratio, 3),
                      "min_ratio": round(lg["min_first_commit_s"] / s["min_first_commit_s"], 3),
                      "cpu_ratio": round(cpu_ratio, 3),
                      "target": "0.80..1.20", "build_s": round(build_s, 1)}))  # fmt: skip
    for n in nets:
        o = out[n]
        print(f"{n:>7,} blocks: restart to first commit {o['first_commit_s']:.3f} s (median of "
              f"{a.repeats}, min {o['min_first_commit_s']:.3f}; API ready {o['ready_s']:.3f} s); "
              f"node CPU {o['cpu_to_first_commit_s']:.3f} s")
        print(f"{'':>16}Ledger.open + stored priorities {o['open_and_priorities_ms']:.1f} ms "
              f"(the walk from genesis it replaces: {o['walk_from_genesis_ms']:.1f} ms)")
    print(f"long/short: wall {ratio:.3f} ({verdict(ratio)} ±20%), "
          f"CPU {cpu_ratio:.3f} ({verdict(cpu_ratio)} ±20%)")
    if "error" not in lim:
        print(f"limits: Ed25519 verify {lim['ed25519_verify_per_s']:,}/s, SHA-256(32 B) "
              f"{lim['sha256_32b_per_s']:,}/s, LMDB batched puts {lim['lmdb_put_per_s']:,}/s")


if __name__ == "__main__":
    main()
