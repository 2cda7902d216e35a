"""Double-sign guard: HRS rules, persistence before release, atomic file state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ads_ledger.consensus.ports import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from ads_ledger.consensus.privval import (
    DoubleSignGuard,
    DoubleSignRefused,
    FileSignerState,
    LastSigned,
    MemorySignerState,
    SignerStateCorrupt,
)
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


def test_crash_between_temp_write_and_rename_keeps_old_state(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    g = DoubleSignGuard(KEY, FileSignerState(path))
    old = g.sign_vote(CHAIN, vote(PREVOTE, 2, 0, B1))
    crashing = DoubleSignGuard(KEY, CrashBeforeRename(path))
    with pytest.raises(OSError):
        crashing.sign_vote(CHAIN, vote(PRECOMMIT, 2, 0, B1))
    assert (tmp_path / "guard.state.tmp").exists()  # the new state was written, not renamed
    reopened = DoubleSignGuard(KEY, FileSignerState(path))
    assert reopened.last is not None and reopened.last.hrs() == (2, 0, STEP_PREVOTE)
    assert reopened.last.signature == old.sig
    # the next save replaces the stale temp file and moves forward
    reopened.sign_vote(CHAIN, vote(PRECOMMIT, 2, 0, B1))
    after = DoubleSignGuard(KEY, FileSignerState(path)).last
    assert after is not None and after.hrs() == (2, 0, STEP_PRECOMMIT)


def test_corrupt_state_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    path.write_bytes(b"\xc1garbage")
    with pytest.raises(SignerStateCorrupt):
        DoubleSignGuard(KEY, FileSignerState(path))
    path.write_bytes(b"")
    with pytest.raises(SignerStateCorrupt):
        FileSignerState(path).load()


def test_file_state_fsyncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    FileSignerState(tmp_path / "s").save(LastSigned(1, 0, STEP_PREVOTE, b"m", bytes(64)))
    assert synced == [str(tmp_path / "s.tmp"), str(tmp_path)]


def test_signing_for_another_key_is_a_bug() -> None:
    g = DoubleSignGuard(KEY, MemorySignerState())
    other = SigningKey(b"\x09" * 32).pub
    with pytest.raises(ValueError):
        g.sign_vote(CHAIN, Vote(PREVOTE, 1, 0, B1, other))
    with pytest.raises(ValueError):
        g.sign_proposal(CHAIN, Proposal(1, 0, B1, -1, other))
    assert g.last is None
    assert g.sign_vote(CHAIN, Vote(PREVOTE, 1, 0, B1, b"")).validator == KEY.pub
