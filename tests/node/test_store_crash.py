"""Crash safety for real: a child process commits versions in a loop and is killed with
SIGKILL at random moments; after each kill the store reopens at its last committed version,
intact. Bounded: at most KILLS kills within about TIME_BUDGET seconds.
"""

from __future__ import annotations

import os
import random
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ads_ledger.core.merkle import verify_proof
from ads_ledger.node.storage.jmt import MemoryTree
from ads_ledger.node.storage.store import Store

KILLS = 10
TIME_BUDGET = 25.0
KEEP = 20
POOL = [b"acct/%03d" % i for i in range(300)]
SRC = str(Path(__file__).resolve().parents[2] / "src")
TESTS = str(Path(__file__).resolve().parent)

CHILD = """
import sys
sys.path[:0] = [{src!r}, {tests!r}]
from test_store_crash import writes_for, KEEP
from ads_ledger.node.storage.store import Store
store = Store.open(sys.argv[1], keep_versions=KEEP)
v = store.latest_version()
while True:
    v += 1
    staged = store.stage(writes_for(v), v)
    store.commit(staged, {{"blocks": [(v.to_bytes(8, "big"), b"block %d" % v)]}})
    print(v, flush=True)
"""

# the same, several versions per write transaction (block sync's `Store.batch`)
CHILD_BATCHED = """
import random, sys
sys.path[:0] = [{src!r}, {tests!r}]
from test_store_crash import writes_for, KEEP
from ads_ledger.node.storage.store import Store
store = Store.open(sys.argv[1], keep_versions=KEEP)
v = store.latest_version()
while True:
    with store.batch():
        for _ in range(random.Random(v).randint(1, 8)):
            v += 1
            staged = store.stage(writes_for(v), v)
            store.commit(staged, {{"blocks": [(v.to_bytes(8, "big"), b"block %d" % v)]}})
    print(v, flush=True)
"""


def writes_for(version: int) -> dict[bytes, bytes | None]:
    """The deterministic writes of a version, so the parent can replay any version."""
    rng = random.Random(version)
    return {
        k: (None if rng.random() < 0.25 else rng.randbytes(rng.randint(0, 80)))
        for k in rng.sample(POOL, 40)
    }


class Replay:
    """The expected state, advanced version by version as the child gets further."""

    def __init__(self) -> None:
        self.tree = MemoryTree()
        self.model: dict[bytes, bytes] = {}
        self.roots: dict[int, bytes] = {}
        self.states: dict[int, dict[bytes, bytes]] = {}
        self.version = 0

    def advance(self, latest: int) -> None:
        while self.version < latest:
            self.version += 1
            w = writes_for(self.version)
            self.roots[self.version] = self.tree.update(w)
            for k, val in w.items():
                if val is None:
                    self.model.pop(k, None)
                else:
                    self.model[k] = val
            self.states[self.version] = dict(self.model)
            self.states.pop(self.version - KEEP, None)


def check_store(path: Path, reported: int, expected: Replay) -> int:
    with Store.open(path, keep_versions=KEEP) as store:
        latest = store.latest_version()
        assert latest >= reported, f"version {reported} was reported committed, store has {latest}"
        flat = dict(store.scan_prefix(b"", limit=10_000))
        recomputed = MemoryTree()
        recomputed.update(flat)
        assert store.root() == recomputed.root(), "root does not recompute from the flat table"
        expected.advance(latest)
        assert flat == expected.model
        assert store.read("blocks", latest.to_bytes(8, "big")) == b"block %d" % latest
        assert store.read("blocks", (latest + 1).to_bytes(8, "big")) is None
        for v in range(max(store.oldest_version(), latest - 4), latest + 1):
            assert store.root(v) == expected.roots[v]
            for k in POOL[::17]:
                value, proof = store.prove(k, v)
                assert value == expected.states[v].get(k)
                assert verify_proof(expected.roots[v], k, value, proof)
        return latest


@pytest.mark.parametrize("child_src", [CHILD, CHILD_BATCHED], ids=["per_version", "batched"])
def test_kill_9_during_commits_leaves_last_committed_version(tmp_path: Path, child_src: str) -> None:
    seed = int(os.environ.get("ADS_CRASH_SEED", os.getpid()))
    print(f"kill schedule seed {seed} (ADS_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    path = tmp_path / "store"
    Store.open(path, keep_versions=KEEP).close()
    deadline = time.monotonic() + TIME_BUDGET
    kills = 0
    latest = 0
    expected = Replay()
    while kills < KILLS and time.monotonic() < deadline:
        child = subprocess.Popen(
            [sys.executable, "-c", child_src.format(src=SRC, tests=TESTS), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # once the child is committing, kill it at a random moment
            assert child.stdout is not None
            with selectors.DefaultSelector() as sel:
                sel.register(child.stdout, selectors.EVENT_READ)
                started = bool(sel.select(timeout=20))
            first = child.stdout.readline() if started else b""
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            child.kill()  # SIGKILL
            out, err = child.communicate(timeout=10)
        kills += 1
        assert started and child.returncode == -9, err.decode()[-2000:]
        whole = (first + out).decode().split("\n")[:-1]  # a kill may tear the last line
        reported = int(whole[-1])
        new_latest = check_store(path, reported, expected)
        assert new_latest > latest, "the child committed after its restart"
        latest = new_latest
    assert kills >= 5, "too few kills within the time budget"


def test_a_batch_is_seen_by_its_own_thread_only_and_dropped_whole_on_error(tmp_path: Path) -> None:
    import threading

    with Store.open(tmp_path / "store", keep_versions=KEEP) as store:
        store.commit(store.stage(writes_for(1), 1))
        root1 = store.root()
        seen: list[int] = []
        with store.batch():
            for v in (2, 3):
                store.commit(store.stage(writes_for(v), v), {"blocks": [(v.to_bytes(8, "big"), b"b")]})
            assert store.latest_version() == 3  # this thread reads what the batch wrote
            t = threading.Thread(target=lambda: seen.append(store.latest_version()))
            t.start()
            t.join()
        assert seen == [1]  # another thread saw the store before the batch
        assert store.latest_version() == 3 and store.read("blocks", (3).to_bytes(8, "big")) == b"b"
        root3 = store.root()
        try:
            with store.batch():
                store.commit(store.stage(writes_for(4), 4))
                assert store.latest_version() == 4
                raise OSError("failed midway")
        except OSError:
            pass
        assert store.latest_version() == 3 and store.root() == root3 and root3 != root1
        store.commit(store.stage(writes_for(4), 4))  # version 4 again, outside a batch
        expected = Replay()
        expected.advance(4)
        assert store.root() == expected.roots[4]
