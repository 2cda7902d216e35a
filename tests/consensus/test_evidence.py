"""EvidencePool: detection from votes, peer evidence, pending, commitment, block checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ads_ledger.consensus.evidence import (
    EvidencePool,
    InvalidEvidence,
    InvalidVote,
    evidence_key,
    evidence_size,
)
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import (
    PRECOMMIT,
    PREVOTE,
    ZERO32,
    Block,
    DuplicateVoteEvidence,
    Header,
    ValidatorSet,
    Vote,
)
from fixtures import KEYS, valset

CHAIN = "ev-chain"
VALSET = valset()
B = [bytes([i]) * 32 for i in range(1, 6)]


def vote(k: int, h: int, r: int, block: bytes | None, t: int = PREVOTE) -> Vote:
    return Vote(t, h, r, block, KEYS[k].pub).signed(CHAIN, KEYS[k])


def dup(
    k: int, h: int, r: int = 0, t: int = PREVOTE, a: int = 0, b: int = 1
) -> DuplicateVoteEvidence:
    return DuplicateVoteEvidence(vote(k, h, r, B[a], t), vote(k, h, r, B[b], t))


def block(height: int, evidence: tuple[DuplicateVoteEvidence, ...]) -> Block:
    z = ZERO32
    hdr = Header(CHAIN, height, 1000 + height, z, z, z, z, z, z, KEYS[0].pub, z)
    return Block(hdr, (), evidence, None)


def test_add_vote_detects_equivocation_once_per_offence() -> None:
    pool = EvidencePool(height=9)
    assert pool.add_vote(vote(1, 10, 0, B[0]), VALSET, CHAIN) is None
    assert pool.add_vote(vote(1, 10, 0, B[0]), VALSET, CHAIN) is None  # same vote again
    assert pool.add_vote(vote(1, 10, 1, B[1]), VALSET, CHAIN) is None  # other round
    assert pool.add_vote(vote(1, 10, 0, B[1], PRECOMMIT), VALSET, CHAIN) is None  # other type
    assert pool.add_vote(vote(2, 10, 0, B[1]), VALSET, CHAIN) is None  # other validator
    ev = pool.add_vote(vote(1, 10, 0, B[1]), VALSET, CHAIN)
    assert ev is not None
    ev.check(CHAIN, VALSET)
    assert evidence_key(ev) == (KEYS[1].pub, 10, 0, PREVOTE)
    assert pool.is_pending(ev) and len(pool) == 1
    assert pool.add_vote(vote(1, 10, 0, B[2]), VALSET, CHAIN) is None  # a third block: same offence
    assert len(pool) == 1


def test_nil_and_block_votes_conflict() -> None:
    pool = EvidencePool(height=4)
    pool.add_vote(vote(0, 5, 2, None, PRECOMMIT), VALSET, CHAIN)
    ev = pool.add_vote(vote(0, 5, 2, B[3], PRECOMMIT), VALSET, CHAIN)
    assert ev is not None and ev.vote_a.block is None and ev.vote_b.block == B[3]


def test_bad_votes_refused_and_not_remembered() -> None:
    pool = EvidencePool(height=4)
    outsider = SigningKey(b"\x77" * 32)
    with pytest.raises(InvalidVote):
        pool.add_vote(Vote(PREVOTE, 5, 0, B[0], outsider.pub).signed(CHAIN, outsider),
                      VALSET, CHAIN)  # fmt: skip
    forged = replace(vote(0, 5, 0, B[0]), block=B[1])  # signature over another block
    with pytest.raises(InvalidVote):
        pool.add_vote(forged, VALSET, CHAIN)
    with pytest.raises(InvalidVote):  # signed for another chain
        pool.add_vote(Vote(PREVOTE, 5, 0, B[0], KEYS[0].pub).signed("other", KEYS[0]),
                      VALSET, CHAIN)  # fmt: skip
    # the forged vote was not stored, so the real one is the first: no evidence
    assert pool.add_vote(vote(0, 5, 0, B[0]), VALSET, CHAIN) is None
    assert len(pool) == 0


def test_votes_far_from_current_height_are_ignored_and_pruned() -> None:
    pool = EvidencePool(height=10)
    assert pool.add_vote(vote(0, 3, 0, B[0]), VALSET, CHAIN) is None
    assert pool.add_vote(vote(0, 3, 0, B[1]), VALSET, CHAIN) is None  # too old to watch
    pool.add_vote(vote(0, 11, 0, B[0]), VALSET, CHAIN)
    pool.mark_committed([], 20)
    assert pool.add_vote(vote(0, 11, 0, B[1]), VALSET, CHAIN) is None  # forgotten
    assert pool._votes == {}


def test_votes_tracked_per_validator_and_height_are_bounded() -> None:
    pool = EvidencePool(height=0, max_votes_per_validator=3)
    for r in range(10):
        pool.add_vote(vote(0, 1, r, B[0]), VALSET, CHAIN, verified=True)
    assert sum(len(v) for v in pool._votes.values()) == 3


def test_add_evidence_verifies_and_dedupes() -> None:
    pool = EvidencePool(height=20)
    ev = dup(2, 18)
    assert pool.add_evidence(ev, VALSET, CHAIN) is True
    assert pool.add_evidence(ev, VALSET, CHAIN) is False
    # another pair for the same offence is the same offence
    assert pool.add_evidence(dup(2, 18, a=0, b=2), VALSET, CHAIN) is False
    assert len(pool) == 1


@pytest.mark.parametrize(
    "bad",
    [
        DuplicateVoteEvidence(vote(0, 5, 0, B[0]), vote(0, 5, 0, B[0])),  # same block
        DuplicateVoteEvidence(vote(0, 5, 0, B[0]), vote(1, 5, 0, B[1])),  # two validators
        DuplicateVoteEvidence(vote(0, 5, 0, B[0]), vote(0, 5, 1, B[1])),  # two rounds
        DuplicateVoteEvidence(vote(0, 5, 0, B[0]), replace(vote(0, 5, 0, B[1]), block=B[2])),
    ],
)
def test_invalid_peer_evidence_refused(bad: DuplicateVoteEvidence) -> None:
    pool = EvidencePool(height=6)
    with pytest.raises(InvalidEvidence):
        pool.add_evidence(bad, VALSET, CHAIN)
    assert len(pool) == 0


def test_evidence_from_outside_the_set_of_its_height_refused() -> None:
    pool = EvidencePool(height=6)
    small = ValidatorSet(tuple((k.pub, 10) for k in KEYS[:2]))
    with pytest.raises(InvalidEvidence):
        pool.add_evidence(dup(3, 5), small, CHAIN)


def test_too_old_and_future_evidence_refused() -> None:
    pool = EvidencePool(height=100, max_age=10)
    with pytest.raises(InvalidEvidence):
        pool.add_evidence(dup(0, 90), VALSET, CHAIN)  # block 101 - 90 > 10
    assert pool.add_evidence(dup(0, 91), VALSET, CHAIN)
    assert pool.add_evidence(dup(1, 101), VALSET, CHAIN)  # the height in progress
    with pytest.raises(InvalidEvidence):
        pool.add_evidence(dup(2, 102), VALSET, CHAIN)


def test_pool_is_bounded_in_total_and_per_validator() -> None:
    pool = EvidencePool(height=50, max_pending=5, max_per_validator=2)
    added = [pool.add_evidence(dup(0, h), VALSET, CHAIN) for h in (40, 41, 42)]
    assert added == [True, True, False]  # one equivocator cannot fill the pool
    for k in (1, 2, 3):
        pool.add_evidence(dup(k, 40), VALSET, CHAIN)
    assert len(pool) == 5
    assert pool.add_evidence(dup(1, 41), VALSET, CHAIN) is False


def test_pending_respects_bytes_order_and_height() -> None:
    pool = EvidencePool(height=30)
    evs = [dup(0, 29), dup(1, 25), dup(2, 27), dup(3, 31)]
    for ev in evs:
        assert pool.add_evidence(ev, VALSET, CHAIN)
    size = evidence_size(evs[0])
    got = pool.pending(10 * size)
    assert got == [evs[1], evs[2], evs[0]]  # oldest first; height 31 is not decided yet
    assert pool.pending(2 * size + 1) == [evs[1], evs[2]]
    assert pool.pending(size - 1) == []
    pool.mark_committed([], 31)
    assert evs[3] in pool.pending(10 * size)


def test_mark_committed_removes_and_blocks_reproposal() -> None:
    pool = EvidencePool(height=10)
    a, b = dup(0, 9), dup(1, 9)
    pool.add_evidence(a, VALSET, CHAIN)
    pool.add_evidence(b, VALSET, CHAIN)
    pool.mark_committed([a.hash()], 11)
    assert pool.height == 11 and not pool.is_pending(a) and pool.is_committed(a)
    assert pool.pending(1 << 20) == [b]
    assert pool.add_evidence(a, VALSET, CHAIN) is False  # committed: not again
    assert pool.committed_hashes() == {a.hash(): 11}
    with pytest.raises(InvalidEvidence, match="already committed"):
        pool.verify_block_evidence(block(12, (a,)), lambda h: VALSET, CHAIN)


def test_commit_block_remembers_offences_never_seen() -> None:
    pool = EvidencePool(height=10)
    a = dup(2, 9)
    pool.commit_block(block(11, (a,)))
    assert pool.is_committed(a)
    assert pool.add_evidence(dup(2, 9, a=2, b=3), VALSET, CHAIN) is False
    with pytest.raises(InvalidEvidence):
        pool.verify_block_evidence(block(12, (dup(2, 9, a=1, b=4),)), lambda h: VALSET, CHAIN)


def test_verify_block_evidence_rules() -> None:
    pool = EvidencePool(height=40, max_age=10)
    ok = lambda h: VALSET  # noqa: E731
    a, b = dup(0, 39), dup(1, 35)
    pool.verify_block_evidence(block(41, (a, b)), ok, CHAIN)
    pool.verify_block_evidence(block(41, ()), ok, CHAIN)
    with pytest.raises(InvalidEvidence, match="repeats"):
        pool.verify_block_evidence(block(41, (a, dup(0, 39, a=2, b=3))), ok, CHAIN)
    with pytest.raises(InvalidEvidence, match="repeats"):
        pool.verify_block_evidence(block(41, (a, a)), ok, CHAIN)
    with pytest.raises(InvalidEvidence, match="too old"):
        pool.verify_block_evidence(block(41, (dup(0, 30),)), ok, CHAIN)
    with pytest.raises(InvalidEvidence, match="not below"):
        pool.verify_block_evidence(block(41, (dup(0, 41),)), ok, CHAIN)
    forged = DuplicateVoteEvidence(vote(2, 39, 0, B[0]), replace(vote(2, 39, 0, B[1]), block=B[2]))
    with pytest.raises(InvalidEvidence, match="does not verify"):
        pool.verify_block_evidence(block(41, (forged,)), ok, CHAIN)
    # checked against the set of the evidence's own height
    seen: list[int] = []

    def sets(h: int) -> ValidatorSet:
        seen.append(h)
        return VALSET if h != 35 else ValidatorSet(((KEYS[0].pub, 1),))

    with pytest.raises(InvalidEvidence, match="outside the set"):
        pool.verify_block_evidence(block(41, (a, b)), sets, CHAIN)
    assert seen == [39, 35]


def test_expiry_drops_pending_and_committed_memory() -> None:
    pool = EvidencePool(height=10, max_age=5)
    a, b = dup(0, 8), dup(1, 10)
    pool.add_evidence(a, VALSET, CHAIN)
    pool.add_evidence(b, VALSET, CHAIN)
    pool.commit_block(block(11, (b,)))
    pool.mark_committed([], 13)  # block 14 may still carry height 9+: a (8) is too old
    assert pool.pending(1 << 20) == [] and len(pool) == 0
    assert pool.is_committed(b)
    pool.mark_committed([], 20)
    assert not pool.is_committed(b) and pool.committed_hashes() == {}


def test_restore_committed_after_restart() -> None:
    a = dup(3, 50)
    fresh = EvidencePool()
    fresh.restore_committed([(a, 52)], 60)
    assert fresh.height == 60 and fresh.is_committed(a)
    with pytest.raises(InvalidEvidence, match="already committed"):
        fresh.verify_block_evidence(block(61, (a,)), lambda h: VALSET, CHAIN)
    with pytest.raises(InvalidEvidence, match="already committed"):
        fresh.verify_block_evidence(block(61, (dup(3, 50, a=3, b=4),)), lambda h: VALSET, CHAIN)
