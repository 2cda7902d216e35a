"""MemoryWAL: the simulator's log and its power-loss model."""

import pytest

from ads_ledger.consensus.wal import MemoryWAL


def test_replay_returns_records_after_last_end_height() -> None:
    w = MemoryWAL()
    assert w.replay() == (0, [])
    w.append(b"a", sync=False)
    w.end_height(1)
    w.append(b"b", sync=True)
    w.append(b"c", sync=False)
    assert w.replay() == (1, [b"b", b"c"])


def test_crash_keeps_only_synced_prefix() -> None:
    w = MemoryWAL()
    w.append(b"a", sync=False)
    w.append(b"b", sync=True)  # makes a and b durable
    w.append(b"c", sync=False)
    assert w.pending == 1
    assert w.crash().replay() == (0, [b"a", b"b"])
    w.sync()
    w.append(b"d", sync=False)
    assert w.crash().replay() == (0, [b"a", b"b", b"c"])


def test_crash_between_block_stored_and_end_height_replays_height_again() -> None:
    w = MemoryWAL()
    w.end_height(4)
    w.append(b"vote", sync=True)
    w.append(b"commit-seen", sync=False)
    after = w.crash()
    assert after.replay() == (4, [b"vote"])
    after.end_height(5)
    assert after.crash().replay() == (5, [])


def test_end_height_must_increase_and_closed_refuses() -> None:
    w = MemoryWAL()
    w.end_height(2)
    with pytest.raises(ValueError):
        w.end_height(2)
    w.append(b"x", sync=False)
    w.close()
    assert w.crash().replay() == (2, [b"x"])  # a clean close flushes
    with pytest.raises(ValueError):
        w.append(b"y", sync=False)
