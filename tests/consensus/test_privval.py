"""Double-sign guard: HRS rules, persistence before release, atomic file state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ads_ledger.consensus.ports import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from ads_ledger.consensus.privval import (
    SLOT_BYTES,
    DoubleSignGuard,
    DoubleSignRefused,
    FileSignerState,
    LastSigned,
    MemorySignerState,
    SignerStateCorrupt,
)
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Proposal, Vote

CHAIN = "test-chain"
KEY = SigningKey(bytes(range(32)))
B1, B2 = b"\x01" * 32, b"\x02" * 32


def vote(t: int, h: int, r: int, block: bytes | None) -> Vote:
    return Vote(t, h, r, block, KEY.pub)


def test_signs_and_records_hrs() -> None:
    st = MemorySignerState()
    g = DoubleSignGuard(KEY, st)
    v = g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, B1))
    assert v.verify(CHAIN) and v.validator == KEY.pub
    assert st.last is not None and st.last.hrs() == (5, 0, STEP_PREVOTE)
    p = g.sign_proposal(CHAIN, Proposal(5, 1, B1, -1, b""))
    assert p.verify(CHAIN) and p.proposer == KEY.pub
    assert st.last.hrs() == (5, 1, STEP_PROPOSE)
    c = g.sign_vote(CHAIN, vote(PRECOMMIT, 5, 1, B1))
    assert c.verify(CHAIN) and st.last.hrs() == (5, 1, STEP_PRECOMMIT)


@pytest.mark.parametrize(
    "first,second",
    [
        ((PRECOMMIT, 5, 0), (PREVOTE, 5, 0)),  # step regression
        ((PREVOTE, 5, 2), (PREVOTE, 5, 1)),  # round regression
        ((PREVOTE, 6, 0), (PRECOMMIT, 5, 9)),  # height regression
    ],
)
def test_regression_refused(first: tuple[int, int, int], second: tuple[int, int, int]) -> None:
    st = MemorySignerState()
    g = DoubleSignGuard(KEY, st)
    g.sign_vote(CHAIN, vote(first[0], first[1], first[2], B1))
    with pytest.raises(DoubleSignRefused):
        g.sign_vote(CHAIN, vote(second[0], second[1], second[2], B1))
    assert st.saves == 1


def test_proposal_after_prevote_same_round_refused() -> None:
    g = DoubleSignGuard(KEY, MemorySignerState())
    g.sign_vote(CHAIN, vote(PREVOTE, 3, 0, B1))
    with pytest.raises(DoubleSignRefused):
        g.sign_proposal(CHAIN, Proposal(3, 0, B2, -1, KEY.pub))


def test_repeat_returns_same_signature_without_saving() -> None:
    st = MemorySignerState()
    g = DoubleSignGuard(KEY, st)
    a = g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, None))
    b = g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, None))
    assert a == b and st.saves == 1
    # also across a restart (a new guard over the same state)
    c = DoubleSignGuard(KEY, st).sign_vote(CHAIN, vote(PREVOTE, 5, 0, None))
    assert c == a


def test_conflicting_repeat_refused() -> None:
    g = DoubleSignGuard(KEY, MemorySignerState())
    g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, B1))
    with pytest.raises(DoubleSignRefused):
        g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, B2))
    with pytest.raises(DoubleSignRefused):
        g.sign_vote(CHAIN, vote(PREVOTE, 5, 0, None))
    with pytest.raises(DoubleSignRefused):  # same body, other chain: other sign bytes
        g.sign_vote("other-chain", vote(PREVOTE, 5, 0, B1))
    g.sign_proposal(CHAIN, Proposal(6, 0, B1, -1, KEY.pub))
    with pytest.raises(DoubleSignRefused):
        g.sign_proposal(CHAIN, Proposal(6, 0, B2, -1, KEY.pub))


class FailingState(MemorySignerState):
    def save(self, last: LastSigned) -> None:
        raise OSError("disk full")


def test_no_signature_released_when_persistence_fails() -> None:
    g = DoubleSignGuard(KEY, FailingState())
    with pytest.raises(OSError):
        g.sign_vote(CHAIN, vote(PREVOTE, 1, 0, B1))
    assert g.last is None
    with pytest.raises(OSError):  # and it does not then treat the HRS as signed
        g.sign_vote(CHAIN, vote(PREVOTE, 1, 0, B1))


def test_file_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    g = DoubleSignGuard(KEY, FileSignerState(path))
    assert g.last is None
    v = g.sign_vote(CHAIN, vote(PRECOMMIT, 9, 3, B1))
    g2 = DoubleSignGuard(KEY, FileSignerState(path))
    assert g2.last is not None and g2.last.hrs() == (9, 3, STEP_PRECOMMIT)
    assert g2.sign_vote(CHAIN, vote(PRECOMMIT, 9, 3, B1)) == v
    with pytest.raises(DoubleSignRefused):
        g2.sign_vote(CHAIN, vote(PRECOMMIT, 9, 3, B2))
    with pytest.raises(DoubleSignRefused):
        g2.sign_vote(CHAIN, vote(PREVOTE, 9, 3, B1))
    assert not (tmp_path / "guard.state.tmp").exists()


class CrashBeforeRename(FileSignerState):
    def _rename(self) -> None:
        raise OSError("power lost after the temp file was written")


def legacy_file(path: Path, last: LastSigned) -> None:
    """The state file as nodes wrote it before the two-slot format: one msgpack record."""
    path.write_bytes(codec.encode(last.to_obj()))


def test_crash_between_temp_write_and_rename_keeps_old_state(tmp_path: Path) -> None:
    """Creating the two-slot file (here: converting an older one) is atomic."""
    path = tmp_path / "guard.state"
    old = LastSigned(2, 0, STEP_PREVOTE, vote(PREVOTE, 2, 0, B1).sign_bytes(CHAIN), bytes(64))
    legacy_file(path, old)
    crashing = DoubleSignGuard(KEY, CrashBeforeRename(path))
    assert crashing.last == old  # the older format still loads
    with pytest.raises(OSError):
        crashing.sign_vote(CHAIN, vote(PRECOMMIT, 2, 0, B1))
    assert (tmp_path / "guard.state.tmp").exists()  # the new state was written, not renamed
    reopened = DoubleSignGuard(KEY, FileSignerState(path))
    assert reopened.last == old
    # the next save replaces the stale temp file, converts the file and moves forward
    reopened.sign_vote(CHAIN, vote(PRECOMMIT, 2, 0, B1))
    assert path.stat().st_size == 2 * SLOT_BYTES
    after = DoubleSignGuard(KEY, FileSignerState(path)).last
    assert after is not None and after.hrs() == (2, 0, STEP_PRECOMMIT)


class TornWrite(FileSignerState):
    """Power lost in the middle of an in-place slot write: its head is new, its digest and
    payload are not (the old slot's)."""

    def _write_slot(self, fd: int, offset: int, slot: bytes) -> None:
        os.pwrite(fd, slot[:30], offset)
        raise OSError("power lost during the slot write")


def test_a_torn_slot_write_leaves_the_newest_intact_state(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    g = DoubleSignGuard(KEY, FileSignerState(path))
    g.sign_vote(CHAIN, vote(PREVOTE, 3, 0, B1))
    v = g.sign_vote(CHAIN, vote(PRECOMMIT, 3, 0, B1))  # in place: the other slot
    torn = DoubleSignGuard(KEY, TornWrite(path))
    with pytest.raises(OSError):
        torn.sign_vote(CHAIN, vote(PREVOTE, 4, 0, B1))  # its signature never leaves
    assert torn.last is not None and torn.last.hrs() == (3, 0, STEP_PRECOMMIT)
    reopened = DoubleSignGuard(KEY, FileSignerState(path))
    assert reopened.last is not None and reopened.last.hrs() == (3, 0, STEP_PRECOMMIT)
    assert reopened.last.signature == v.sig
    with pytest.raises(DoubleSignRefused):
        reopened.sign_vote(CHAIN, vote(PRECOMMIT, 3, 0, B2))
    for h in (4, 5, 6):  # saves go on alternating over the torn slot
        reopened.sign_vote(CHAIN, vote(PREVOTE, h, 0, B1))
    again = DoubleSignGuard(KEY, FileSignerState(path)).last
    assert again is not None and again.hrs() == (6, 0, STEP_PREVOTE)


def test_the_newest_slot_wins_and_a_spoilt_one_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    g = DoubleSignGuard(KEY, FileSignerState(path))
    for h in (1, 2, 3):
        g.sign_vote(CHAIN, vote(PREVOTE, h, 0, B1))
    data = bytearray(path.read_bytes())
    newest = max((0, 1), key=lambda i: int.from_bytes(data[i * SLOT_BYTES + 8 : i * SLOT_BYTES + 16], "big"))
    data[newest * SLOT_BYTES + 60] ^= 1  # a flipped payload byte: the digest no longer matches
    path.write_bytes(bytes(data))
    back = FileSignerState(path).load()
    assert back is not None and back.hrs() == (2, 0, STEP_PREVOTE)
    other = 1 - newest
    data[other * SLOT_BYTES + 60] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SignerStateCorrupt):
        FileSignerState(path).load()


def test_corrupt_state_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    path.write_bytes(b"\xc1garbage")
    with pytest.raises(SignerStateCorrupt):
        DoubleSignGuard(KEY, FileSignerState(path))
    path.write_bytes(b"")
    with pytest.raises(SignerStateCorrupt):
        FileSignerState(path).load()


def test_file_state_fsyncs_file_and_directory_then_one_datasync_per_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    datasynced: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def spy_data(fd: int) -> None:
        datasynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    monkeypatch.setattr(os, "fdatasync", spy_data)
    st = FileSignerState(tmp_path / "s")
    st.save(LastSigned(1, 0, STEP_PREVOTE, b"m", bytes(64)))  # creates the file: atomically
    assert synced == [str(tmp_path / "s.tmp"), str(tmp_path)] and datasynced == []
    st.save(LastSigned(1, 0, STEP_PRECOMMIT, b"m", bytes(64)))  # then in place
    st.save(LastSigned(2, 0, STEP_PREVOTE, b"m", bytes(64)))
    assert len(synced) == 2 and datasynced == [str(tmp_path / "s")] * 2
    st.close()
    back = FileSignerState(tmp_path / "s").load()
    assert back is not None and back.hrs() == (2, 0, STEP_PREVOTE)


def test_signing_for_another_key_is_a_bug() -> None:
    g = DoubleSignGuard(KEY, MemorySignerState())
    other = SigningKey(b"\x09" * 32).pub
    with pytest.raises(ValueError):
        g.sign_vote(CHAIN, Vote(PREVOTE, 1, 0, B1, other))
    with pytest.raises(ValueError):
        g.sign_proposal(CHAIN, Proposal(1, 0, B1, -1, other))
    assert g.last is None
    assert g.sign_vote(CHAIN, Vote(PREVOTE, 1, 0, B1, b"")).validator == KEY.pub
