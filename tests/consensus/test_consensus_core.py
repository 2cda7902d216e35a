"""Core behaviour around the rules: proposer selection, bad input, next-height buffer,
catch-up by commit, WAL durability and recovery."""

from __future__ import annotations

from collections import Counter

import pytest
from consensus_harness import CHAIN, KEYS, PARAMS, T0, Bench
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.consensus.messages import (
    CommitMessage,
    ProposalMessage,
    VoteMessage,
    decode_message,
    decode_record,
)
from ads_ledger.consensus.proposer import ProposerPriorities
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Block, Commit, Proposal, ValidatorSet, Vote
from ads_ledger.sim.app import ValsetSchedule

# ------------------------------------------------------------------ proposer selection


def _set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet(tuple((k.pub, p) for k, p in zip(KEYS, powers)))


def test_equal_powers_round_robin() -> None:
    pr = ProposerPriorities.genesis(_set([1, 1, 1, 1]))
    seq = [pr.proposer_at(r) for r in range(8)]
    assert len(set(seq[:4])) == 4 and seq[:4] == seq[4:]


@pytest.mark.parametrize("powers", [[1, 2, 3, 4], [5, 1, 1, 1], [10, 7, 3, 1]])
def test_weighted_round_robin_is_proportional(powers: list[int]) -> None:
    vs = _set(powers)
    pr = ProposerPriorities.genesis(vs)
    total = vs.total_power
    got = Counter(pr.proposer_at(r) for r in range(total * 3))
    assert {p: got[p] for p, _ in vs.validators} == {p: 3 * w for p, w in vs.validators}


def test_cometbft_example_sequence() -> None:
    """Powers 1 and 3 (CometBFT spec's example): priorities give B A? B B pattern with
    A proposing once every 4, never twice in a row."""
    vs = ValidatorSet(((KEYS[0].pub, 1), (KEYS[1].pub, 3)))
    pr = ProposerPriorities.genesis(vs)
    seq = ["A" if pr.proposer_at(r) == KEYS[0].pub else "B" for r in range(8)]
    assert seq.count("A") == 2 and "AA" not in "".join(seq)
    assert seq[0] == "B"  # the heavier validator has the higher priority after one step


def test_next_height_increments_once_and_new_member_starts_low() -> None:
    vs = _set([1, 1, 1, 1])
    pr = ProposerPriorities.genesis(vs)
    assert pr.next_height(vs).proposer == pr.proposer_at(1)
    # a new, heavy member does not propose at once: it starts at −1.125·P
    from ads_ledger.core.crypto import SigningKey

    new = SigningKey(b"\x55" * 32)
    bigger = ValidatorSet(vs.validators + ((new.pub, 4),))
    nxt = pr.next_height(bigger)
    assert dict((p, a) for p, _, a in nxt.entries)[new.pub] < 0
    assert nxt.proposer != new.pub


def test_validator_change_effective_at_h_plus_2() -> None:
    g, changed = _set([1, 1, 1, 1]), _set([1, 1, 1, 5])
    sch = ValsetSchedule(g, {3: changed})
    assert [sch.at(h) == changed for h in range(1, 7)] == [False, False, False, False, True, True]


# ------------------------------------------------------------------ hostile input


def test_bad_messages_are_dropped_and_counted() -> None:
    b = Bench()
    b.core.start(T0)
    from ads_ledger.core.crypto import SigningKey

    stranger = SigningKey(b"\x66" * 32)
    blk = b.block()
    good = b.vote(b.others[0], PREVOTE, 0, blk.block_id())
    forged = VoteMessage(Vote(PREVOTE, 1, 0, None, KEYS[b.others[1]].pub, b"\x01" * 64))
    b.core.on_message(VoteMessage(Vote(PREVOTE, 1, 0, None, stranger.pub).signed(CHAIN, stranger)), T0)
    b.core.on_message(forged, T0)
    b.core.on_message(b.vote(b.others[0], PREVOTE, 0, None, height=7), T0)
    b.core.on_message(b.proposal(0, blk, key=KEYS[b.others[0]] if KEYS[b.others[0]].pub != b.proposers[0]
                                 else KEYS[b.others[1]]), T0)  # fmt: skip
    b.core.on_message(good, T0)
    b.core.on_message(good, T0)
    s = b.core.stats
    assert s["unknown_validator"] == 1 and s["bad_signature"] == 1
    assert s["future_height"] == 1 and s["not_proposer"] == 1 and s["duplicate"] == 1
    assert b.core.log.prevotes[0].total == 1  # only the good vote counts
    assert b.core.step == 0


def test_equivocation_is_counted_for_both_values_and_reported() -> None:
    b = Bench()
    b.core.start(T0)
    x, y = b"\x01" * 32, b"\x02" * 32
    b.core.on_message(b.vote(b.others[0], PREVOTE, 0, x), T0)
    b.core.on_message(b.vote(b.others[0], PREVOTE, 0, y), T0)
    t = b.core.log.prevotes[0]
    assert t.power_for(x) == t.power_for(y) == 1 and t.total == 1
    [ev] = b.core.evidence()
    assert {ev.vote_a.block, ev.vote_b.block} == {x, y}


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_decode_message_never_crashes(data: bytes) -> None:
    try:
        decode_message(data)
    except DecodeError:
        pass


# ------------------------------------------------------------------ heights


def _decide_height_1(b: Bench) -> None:
    blk = b.block()
    b.core.on_message(b.proposal(0, blk), T0)
    b.prevotes(b.others, 0, blk.block_id())
    b.precommits(b.others, 0, blk.block_id())
    assert b.app.height == 1
    b.sync_other_app()


def test_next_height_messages_are_buffered_then_processed() -> None:
    b = Bench()
    b.core.start(T0)
    early = b.vote(b.others[0], PREVOTE, 3, None, height=2)
    early2 = b.vote(b.others[1], PREVOTE, 3, None, height=2)
    b.core.on_message(early, T0)
    b.core.on_message(early2, T0)
    assert b.core.stats["buffered"] == 2 and b.core.round == 0
    _decide_height_1(b)
    assert b.core.height == 2 and b.core.round == 3  # f+1 buffered votes of round 3: L55


def test_catch_up_by_commit_message() -> None:
    b = Bench()
    b.core.start(T0)
    blk = b.block(1)
    votes = [b.vote(i, PRECOMMIT, 1, blk.block_id()).vote for i in b.others]
    commit = Commit.from_votes(b.valset, votes)
    weak = Commit.from_votes(b.valset, votes[:2])
    b.core.on_message(CommitMessage(blk, weak), T0)
    assert b.core.stats["bad_commit"] == 1 and b.app.height == 0
    repeated = Commit(1, 1, blk.block_id(), (weak.sigs[0],) * 3)  # one signature, thrice
    b.core.on_message(CommitMessage(blk, repeated), T0)
    assert b.core.stats["bad_commit"] == 2 and b.app.height == 0
    b.core.on_message(CommitMessage(blk, commit), T0)
    [(block, c)] = b.core.decisions()
    assert block.block_id() == blk.block_id() and c == commit and b.core.height == 2


def test_second_height_proposal_carries_last_commit() -> None:
    b = Bench()
    b.core.start(T0)
    _decide_height_1(b)
    blk2 = b.block(0, time=T0 + 1)
    assert blk2.last_commit == b.app.commits[0]
    b.core.outbox()
    b.core.on_message(_prop_h2(b, blk2), T0 + 1)
    [v] = b.my_votes()
    assert v.height == 2 and v.block == blk2.block_id()


def _prop_h2(b: Bench, blk: Block) -> ProposalMessage:
    key = next(k for k in KEYS if k.pub == b.core.proposer(0))
    p = Proposal(2, 0, blk.block_id(), -1, key.pub).signed(CHAIN, key)
    return ProposalMessage(p, blk)


# ------------------------------------------------------------------ WAL and recovery


def _state(core):  # type: ignore[no-untyped-def]
    return (core.height, core.round, core.step, core.locked_round, core.valid_round,
            None if core.locked_value is None else core.locked_value.block_id(),
            [m.encoded for m in core.own_messages()],
            {r: (t.total, dict(t.power)) for r, t in core.log.prevotes.items()},
            {r: (t.total, dict(t.power)) for r, t in core.log.precommits.items()},
            sorted(t[0] for t in core._timers))  # fmt: skip


def test_own_vote_is_durable_before_it_is_released() -> None:
    b = Bench()
    b.core.start(T0)
    b.core.on_message(b.proposal(0, b.block()), T0)
    out = b.core.outbox()
    assert out and b.wal.pending == 0  # everything up to the vote is synced
    records = [decode_record(r) for r in b.wal.crash().replay()[1]]
    assert [r.message.encoded for r in records if r.kind == "own"] == [out[0].encoded]


def test_recover_reaches_the_same_state() -> None:
    b = Bench()
    b.core.start(T0)
    v = b.block()
    b.core.on_message(b.proposal(0, v), T0 + 5)
    b.prevotes(b.others, 0, v.block_id())  # lock + precommit
    b.precommits(b.others[:1], 0, None)
    b.core.on_message(b.vote(b.others[1], PREVOTE, 3, None), T0 + 7)
    b.wal.sync()
    before = _state(b.core)
    wal2 = b.wal.crash()
    ended, records = wal2.replay()
    assert ended == 0
    core2 = b.fresh_core(wal2)
    core2.recover(records)
    assert _state(core2) == before
    assert core2.stats.get("sign_refused") is None and core2.stats.get("replay_divergence") is None
    resent = core2.outbox()
    assert {m.encoded for m in b.core.own_messages()} <= {m.encoded for m in resent}


def test_recover_after_losing_unsynced_inputs_is_a_prefix_state() -> None:
    b = Bench()
    b.core.start(T0)
    v = b.block()
    b.core.on_message(b.proposal(0, v), T0)  # prevote: synced
    b.prevotes(b.others[:1], 0, v.block_id())  # unsynced input
    wal2 = b.wal.crash()
    core2 = b.fresh_core(wal2)
    core2.recover(wal2.replay()[1])
    assert core2.step == 1 and core2.log.prevotes[0].total == 1  # our own prevote only
    assert [m.encoded for m in core2.own_messages()] == [m.encoded for m in b.core.own_messages()]


def test_recover_rejects_damaged_records() -> None:
    from ads_ledger.consensus.core import RecoveryError

    b = Bench()
    with pytest.raises(RecoveryError):
        b.core.recover([b"\x93garbage"])


def test_params_defaults_match_cometbft_timeouts() -> None:
    assert (PARAMS.propose_ms, PARAMS.prevote_ms, PARAMS.precommit_ms) == (3000, 1000, 1000)
    assert PARAMS.propose_delta_ms == PARAMS.prevote_delta_ms == PARAMS.precommit_delta_ms == 500


def test_recover_logs_an_own_vote_whose_record_was_lost() -> None:
    """Signed, then power lost before its WAL record: replay re-derives the same vote,
    the guard re-serves the same signature, and this time it is logged and sent."""
    b = Bench()
    b.core.start(T0)
    b.core.on_message(b.proposal(0, b.block()), T0)
    [sent] = b.core.outbox()
    records = [r for r in b.wal.replay()[1] if decode_record(r).kind != "own"]
    wal2 = b.wal.crash()
    wal2._entries = [e for e in wal2._entries if e.record in records or e.ended is not None]
    wal2._durable = len(wal2._entries)
    core2 = b.fresh_core(wal2)
    core2.recover(wal2.replay()[1])
    assert core2.stats.get("sign_refused") is None
    assert [m.encoded for m in core2.own_messages()] == [sent.encoded]
    own = [decode_record(r) for r in wal2.replay()[1] if decode_record(r).kind == "own"]
    assert [r.message.encoded for r in own] == [sent.encoded]  # type: ignore[union-attr]


@given(st.lists(st.tuples(st.sampled_from(("vote", "proposal", "commit")), st.integers(0, 4),
                          st.integers(0, 3), st.integers(0, 6), st.booleans(), st.booleans()),
                max_size=25))  # fmt: skip
@settings(max_examples=150, deadline=None)
def test_hostile_messages_never_raise(ops: list[tuple[str, int, int, int, bool, bool]]) -> None:
    from ads_ledger.core.crypto import SigningKey

    b = Bench()
    b.core.start(T0)
    stranger = SigningKey(b"\x77" * 32)
    blocks = [b.block(0, txs_seed=1), b.block(1, time=T0 - 5_000, txs_seed=2)]
    for kind, who, height, rnd, good_sig, use_block in ops:
        key = stranger if who == 4 else KEYS[who]
        blk = blocks[rnd % 2]
        bid = blk.block_id() if use_block else None
        if kind == "vote":
            v = Vote(PREVOTE if rnd % 2 else PRECOMMIT, height, rnd, bid, key.pub).signed(CHAIN, key)
            if not good_sig:
                v = Vote(v.type, v.height, v.round, v.block, v.validator, bytes(64))
            msg: object = VoteMessage(v)
        elif kind == "proposal":
            p = Proposal(height, rnd, blk.block_id() if good_sig else bytes(32), rnd - 1 if use_block else -1,
                         key.pub).signed(CHAIN, key)  # fmt: skip
            msg = ProposalMessage(p, blk)
        else:
            votes = [Vote(PRECOMMIT, height, rnd, blk.block_id(), k.pub).signed(CHAIN, k) for k in KEYS[: who]]
            msg = CommitMessage(blk, Commit(height, rnd, blk.block_id(),
                                            tuple(sorted((b.valset.index_of(v.validator) or 0, v.sig if good_sig else bytes(64))
                                                         for v in votes))))  # fmt: skip
        b.core.on_message(msg, T0 + rnd)  # type: ignore[arg-type]
        b.core.on_timeout(T0 + 1_000 * rnd)
    assert b.core.height >= 1 and b.app.height in (0, 1)
    assert b.core.stats.get("sign_refused") is None


def test_verify_commit_refuses_repeated_index() -> None:
    """types.verify_commit on a Commit built in memory (not via from_obj)."""
    import pytest as _pytest

    from ads_ledger.core.types import CommitError, verify_commit

    b = Bench()
    blk = b.block()
    v = b.vote(b.others[0], PRECOMMIT, 0, blk.block_id()).vote
    c = Commit(1, 0, blk.block_id(), ((b.valset.index_of(v.validator) or 0, v.sig),) * 3)
    with _pytest.raises(CommitError):
        verify_commit(CHAIN, b.valset, c, height=1, block_id=blk.block_id())


def test_a_proposal_flood_keeps_one_proposal_per_round() -> None:
    """DESIGN §6: a second, different proposal of the proposer for one round is dropped and
    counted — not kept, not logged (on main 1,482 were kept and 1 MB of WAL written)."""
    b = Bench()
    b.core.start(T0)
    wal_before = len(b.wal._entries)
    first = b.block(0, time=T0)
    b.core.on_message(b.proposal(0, first), T0)
    for i in range(1, 200):
        b.core.on_message(b.proposal(0, b.block(0, time=T0 + i, txs_seed=i)), T0)
    assert [p.block_id for p in b.core.log.proposals[0]] == [first.block_id()]
    assert b.core.stats["proposal_dropped"] == 199
    assert len(b.wal._entries) - wal_before <= 3  # the first proposal and our prevote
    assert len(b.core.log.blocks) == 1


def test_a_vote_past_the_equivocation_cap_is_kept_when_it_completes_a_polka() -> None:
    """An equivocator's distinct votes per (type, round) are capped, but the one that gives its
    value 2f+1 is kept: a correct node may have locked on a polka that counted it and must be
    able to show us (otherwise it re-proposes its locked value forever and nobody confirms)."""
    from ads_ledger.consensus.votes import MAX_VOTES_PER_VALIDATOR

    b = Bench()
    b.core.start(T0)
    byz, x, y = b.others[0], b.others[1], b.others[2]
    v = b"\x0a" * 32
    for i in range(MAX_VOTES_PER_VALIDATOR):
        b.core.on_message(b.vote(byz, PREVOTE, 1, bytes([0xB0 + i]) * 32), T0)
    b.core.on_message(b.vote(byz, PREVOTE, 1, b"\xbf" * 32), T0)  # past the cap: dropped
    assert b.core.stats["equivocation_dropped"] == 1
    b.core.on_message(b.vote(x, PREVOTE, 1, v), T0)
    b.core.on_message(b.vote(y, PREVOTE, 1, v), T0)
    b.core.on_message(b.vote(byz, PREVOTE, 1, v), T0)  # completes 3 of 4 for v: kept
    assert b.core.log.prevotes[1].power_for(v) == 3
    b.core.on_message(b.vote(byz, PREVOTE, 1, b"\xbe" * 32), T0)  # completes nothing: dropped
    assert b.core.stats["equivocation_dropped"] == 2
