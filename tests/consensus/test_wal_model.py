"""FileWAL against a model under random appends, syncs, end-heights, rotations, clean
restarts and crashes (kill -9, and power loss with a torn tail of unsynced bytes)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ads_ledger.consensus.wal import FileWAL, MemoryWAL


def replay_of(entries: list[int | bytes]) -> tuple[int, list[bytes]]:
    last, recs = 0, list[bytes]()
    for e in entries:
        if isinstance(e, int):
            last, recs = e, []
        else:
            recs.append(e)
    return last, recs


class WALvsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="walmodel"))
        self.wal = FileWAL(self.dir, segment_bytes=300)
        self.mem = MemoryWAL()  # the same operations: its crash() is the durable lower bound
        self.entries: list[int | bytes] = []  # everything appended, markers as ints
        self.durable = 0  # entries[:durable] must survive any crash
        self.durable_bytes = 0  # size of the current segment when it was last fsynced
        self.height = 0

    def _synced(self) -> None:
        self.durable = len(self.entries)
        segs = sorted(self.dir.glob("*.wal"))
        self.durable_bytes = segs[-1].stat().st_size

    @rule(data=st.binary(max_size=120), sync=st.booleans())
    def append(self, data: bytes, sync: bool) -> None:
        self.wal.append(data, sync=sync)
        self.mem.append(data, sync=sync)
        self.entries.append(data)
        if sync:
            self._synced()

    @rule()
    def sync(self) -> None:
        self.wal.sync()
        self.mem.sync()
        self._synced()

    @rule(step=st.integers(1, 3))
    def end_height(self, step: int) -> None:
        self.height += step
        self.wal.end_height(self.height)
        self.mem.end_height(self.height)
        self.entries.append(self.height)
        self._synced()

    def _reopen_and_check(self) -> None:
        self.wal = FileWAL(self.dir, segment_bytes=300)
        got = self.wal.replay()
        ks = range(self.durable, len(self.entries) + 1)
        candidates = [replay_of(self.entries[:k]) for k in ks]
        assert got in candidates, (got, candidates)
        assert replay_of(self.entries[: self.durable]) == self.mem.crash().replay()
        # continue from what survived: find the longest matching prefix
        k = max(k for k in range(self.durable, len(self.entries) + 1)
                if replay_of(self.entries[:k]) == got)  # fmt: skip
        self.entries = self.entries[:k]
        self.mem = MemoryWAL()
        for e in self.entries:  # rebuild the model's durable state
            if isinstance(e, int):
                self.mem.end_height(e)
            else:
                self.mem.append(e, sync=True)
        self.height = got[0]
        self._synced()

    @rule()
    def clean_restart(self) -> None:
        self.wal.close()
        self.mem.close()
        self.durable = len(self.entries)
        self._reopen_and_check()
        assert replay_of(self.entries) == self.wal.replay()

    @rule()
    def kill_9(self) -> None:
        self.wal.abandon()
        self._reopen_and_check()

    @rule(cut=st.floats(0, 1))
    def power_loss(self, cut: float) -> None:
        self.wal.abandon()
        seg = sorted(self.dir.glob("*.wal"))[-1]
        size = seg.stat().st_size
        # unsynced bytes may be partly lost; synced ones never
        keep = self.durable_bytes + int((size - self.durable_bytes) * cut)
        os.truncate(seg, max(keep, self.durable_bytes))
        self._reopen_and_check()

    @invariant()
    def replay_matches_everything_appended(self) -> None:
        assert self.wal.replay() == replay_of(self.entries)

    @invariant()
    def segments_stay_few(self) -> None:
        assert len(list(self.dir.glob("*.wal"))) <= 2

    def teardown(self) -> None:
        self.wal.abandon()
        shutil.rmtree(self.dir, ignore_errors=True)


WALvsModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_wal_against_model = WALvsModel.TestCase
