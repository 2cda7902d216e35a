"""One test (or a few) per `upon` rule of Algorithm 1, driving a single Core by hand."""

from __future__ import annotations

from consensus_harness import KEYS, PARAMS, T0, Bench

from ads_ledger.consensus import core as core_module
from ads_ledger.consensus.core import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from ads_ledger.core.types import PRECOMMIT, PREVOTE


def started(me: int | None = None) -> Bench:
    b = Bench(me)
    b.core.start(T0)
    assert b.core.outbox() == []  # not the proposer of round 0
    return b


def test_no_mutants_by_default() -> None:
    assert core_module.MUTANTS == set()


def test_l11_start_round_schedules_propose_timeout() -> None:
    b = started()
    assert (b.core.height, b.core.round, b.core.step) == (1, 0, STEP_PROPOSE)
    assert b.core.next_deadline() == T0 + PARAMS.timeout_propose(0)


def test_l11_proposer_proposes_new_value_with_time_after_parent() -> None:
    idx = [k.pub for k in KEYS].index(Bench().proposers[0])
    b2 = Bench(me=idx)
    b2.core.start(T0)
    out = b2.core.outbox()
    assert len(out) == 2  # the proposal, then its own prevote (L22 on its own proposal)
    prop, vote = out
    assert prop.proposal.pol_round == -1 and prop.block.header.time == T0  # type: ignore[union-attr]
    assert vote.vote.type == PREVOTE and vote.vote.block == prop.proposal.block  # type: ignore[union-attr]


def test_l22_prevote_valid_timely_proposal() -> None:
    b = started()
    blk = b.block()
    b.core.on_message(b.proposal(0, blk), T0 + 50)
    [v] = b.my_votes()
    assert (v.type, v.round, v.block) == (PREVOTE, 0, blk.block_id())
    assert b.core.step == STEP_PREVOTE


def test_l22_prevote_nil_for_invalid_block() -> None:
    b = started()
    blk = b.block(time=b.app.last_block_time())  # time not after the parent: invalid
    b.core.on_message(b.proposal(0, blk), T0)
    [v] = b.my_votes()
    assert v.block is None


def test_l22_time_precision_rule() -> None:
    assert PARAMS.message_delay_ms == 0
    for skew, expect_nil in ((PARAMS.precision_ms, False), (PARAMS.precision_ms + 1, True),
                             (-PARAMS.precision_ms - 1, True)):  # fmt: skip
        b = started()
        blk = b.block(time=T0 + skew)
        b.core.on_message(b.proposal(0, blk), T0)
        [v] = b.my_votes()
        assert (v.block is None) == expect_nil, skew


def test_l22_locked_node_prevotes_nil_for_other_value() -> None:
    b = started()
    v0 = b.block(0, txs_seed=1)
    b.core.on_message(b.proposal(0, v0), T0)
    b.prevotes(b.others, 0, v0.block_id())  # L36: lock on v0
    assert b.core.locked_round == 0
    b.my_votes()
    b.precommits(b.others, 0, None)  # L47 -> timeout precommit -> round 1
    b.core.on_timeout(T0 + 10_000)
    assert b.core.round == 1
    w = b.block(1, txs_seed=2)
    assert w.block_id() != v0.block_id()
    b.core.on_message(b.proposal(1, w), T0 + 10_000)
    [v] = b.my_votes()
    assert (v.round, v.block) == (1, None)


def test_l28_prevote_repropsed_value_with_pol_above_lock() -> None:
    """Locked on v at round 0; round 2 re-proposes w with a polka at round 1: vr=1 ≥
    lockedRound=0, so the node prevotes w (the lock does not block a newer polka)."""
    b = started()
    v = b.block(0, txs_seed=1)
    b.core.on_message(b.proposal(0, v), T0)
    b.prevotes(b.others, 0, v.block_id())
    assert (b.core.locked_round, b.core.step) == (0, STEP_PRECOMMIT)
    w = b.block(0, txs_seed=3)
    b.prevotes(b.others, 1, w.block_id())  # a polka for w in round 1 (we never saw it live)
    b.precommits(b.others, 0, None)
    b.core.on_timeout(T0 + 10_000)  # L65 -> round 1
    b.core.on_timeout(T0 + 100_000)  # timeouts of round 1 -> round 2 eventually
    while b.core.round < 2:
        b.precommits(b.others, b.core.round, None, T0 + 200_000)
        b.core.on_timeout(T0 + 300_000)
    b.my_votes()
    assert b.core.locked_round == 0 and b.core.step == STEP_PROPOSE
    b.core.on_message(b.proposal(2, w, pol=1), T0 + 300_000)
    [pv] = b.my_votes()
    assert (pv.round, pv.block) == (2, w.block_id())


def test_l28_pol_below_lock_prevotes_nil() -> None:
    """Locked at round 1 on v; a re-proposal of w with vr=0 < lockedRound gets nil."""
    b = started()
    w = b.block(0, txs_seed=3)
    b.core.on_message(b.proposal(0, w), T0)  # we prevote w at round 0
    b.prevotes(b.others[:2], 0, w.block_id())  # 3 of 4 with ours: a polka for w at round 0
    assert b.core.locked_round == 0
    # round 1: v gets a polka and we lock on it at round 1
    b.precommits(b.others, 0, None)
    b.core.on_timeout(T0 + 10_000)
    assert b.core.round == 1
    v = b.block(1, txs_seed=4)
    b.core.on_message(b.proposal(1, v, pol=-1), T0 + 10_000)
    b.my_votes()  # nil: locked on w
    b.prevotes(b.others, 1, v.block_id())
    assert (b.core.locked_round, b.core.locked_value.block_id()) == (1, v.block_id())  # type: ignore[union-attr]
    b.precommits(b.others, 1, None)
    b.core.on_timeout(T0 + 100_000)
    assert b.core.round == 2
    b.my_votes()
    b.core.on_message(b.proposal(2, w, pol=0), T0 + 100_000)
    [pv] = b.my_votes()
    assert pv.block is None


def test_l34_l61_prevote_timeout_then_precommit_nil() -> None:
    b = started()
    blk = b.block()
    b.core.on_message(b.proposal(0, blk), T0)
    b.my_votes()
    b.core.on_message(b.vote(b.others[0], PREVOTE, 0, None), T0 + 10)
    assert b.core.next_deadline() == T0 + PARAMS.timeout_propose(0)  # only 2 of 4: nothing yet
    b.core.on_message(b.vote(b.others[1], PREVOTE, 0, None), T0 + 20)  # 3 mixed: L34
    deadlines = sorted(t[0] for t in b.core._timers)
    assert T0 + 20 + PARAMS.timeout_prevote(0) in deadlines
    b.core.on_timeout(T0 + 20 + PARAMS.timeout_prevote(0))
    [pc] = b.my_votes()
    assert (pc.type, pc.block) == (PRECOMMIT, None) and b.core.step == STEP_PRECOMMIT
    assert b.core.locked_round == -1


def test_l36_lock_and_valid_value() -> None:
    b = started()
    blk = b.block()
    b.core.on_message(b.proposal(0, blk), T0)
    b.my_votes()
    b.prevotes(b.others[:2], 0, blk.block_id())
    [pc] = b.my_votes()
    assert (pc.type, pc.block) == (PRECOMMIT, blk.block_id())
    assert b.core.locked_round == 0 and b.core.valid_round == 0


def test_l36_after_precommit_step_only_updates_valid_value() -> None:
    b = started()
    blk = b.block()
    b.core.on_message(b.proposal(0, blk), T0)
    b.prevotes([b.others[0]], 0, None)
    b.prevotes([b.others[1]], 0, blk.block_id())  # 3 mixed: L34
    b.core.on_timeout(T0 + PARAMS.timeout_prevote(0))  # L61: precommit nil
    b.my_votes()
    b.prevotes([b.others[2]], 0, blk.block_id())  # now a polka for blk, step = precommit
    assert b.my_votes() == []
    assert b.core.locked_round == -1 and b.core.valid_round == 0


def test_l44_nil_polka_precommits_nil_and_never_unlocks() -> None:
    b = started()
    v = b.block()
    b.core.on_message(b.proposal(0, v), T0)
    b.prevotes(b.others, 0, v.block_id())
    b.precommits(b.others, 0, None)
    b.core.on_timeout(T0 + 10_000)
    assert b.core.round == 1
    b.core.on_timeout(T0 + 10_000 + PARAMS.timeout_propose(1))  # L57: prevote nil
    b.my_votes()
    b.prevotes(b.others, 1, None)  # +2/3 nil: L44
    [pc] = b.my_votes()
    assert (pc.type, pc.round, pc.block) == (PRECOMMIT, 1, None)
    assert b.core.locked_round == 0  # no unlock on nil (CometBFT's old rule is not ours)


def test_l47_l65_precommit_timeout_moves_to_next_round() -> None:
    b = started()
    b.precommits(b.others[:2], 0, None)
    assert b.core.round == 0
    b.precommits([b.others[2]], 0, b"\x07" * 32)
    t = T0 + PARAMS.timeout_precommit(0)
    assert t in [x[0] for x in b.core._timers]
    b.core.on_timeout(t)
    assert b.core.round == 1 and b.core.step == STEP_PROPOSE


def test_l49_decides_in_any_round() -> None:
    b = started()
    blk = b.block(2)
    b.core.on_message(b.proposal(2, blk), T0)  # a future round's proposal, kept
    b.precommits(b.others, 2, blk.block_id())  # f+1 at round 2 already makes us skip (L55)
    [(block, commit)] = b.core.decisions()
    assert block.block_id() == blk.block_id() and commit.round == 2
    assert b.app.height == 1 and b.core.height == 2 and b.core.round == 0
    assert b.wal.replay() == (1, b.wal.replay()[1])


def test_l55_round_skip_needs_f_plus_one() -> None:
    b = started()
    b.core.on_message(b.vote(b.others[0], PREVOTE, 5, None), T0)
    assert b.core.round == 0  # one message (1 of 4 power) is not f+1
    b.core.on_message(b.vote(b.others[1], PRECOMMIT, 5, None), T0)
    assert b.core.round == 5 and b.core.step == STEP_PROPOSE


def test_l57_propose_timeout_prevotes_nil() -> None:
    b = started()
    b.core.on_timeout(T0 + PARAMS.timeout_propose(0) - 1)
    assert b.my_votes() == []
    b.core.on_timeout(T0 + PARAMS.timeout_propose(0))
    [v] = b.my_votes()
    assert (v.type, v.block) == (PREVOTE, None)


def test_timeouts_grow_per_round() -> None:
    assert PARAMS.timeout_propose(3) == PARAMS.propose_ms + 3 * PARAMS.propose_delta_ms
    b = started()
    b.core.on_message(b.vote(b.others[0], PREVOTE, 4, None), T0)
    b.core.on_message(b.vote(b.others[1], PREVOTE, 4, None), T0)
    assert b.core.round == 4
    assert T0 + PARAMS.timeout_propose(4) in [t[0] for t in b.core._timers if t[4] == 4]


def test_two_thirds_means_strictly_more() -> None:
    """Weighted: powers 3,3,2,1 (total 9): 6 is exactly 2/3 and is not a quorum."""
    b = Bench(powers=(3, 3, 2, 1))
    b.core.start(T0)
    b.core.outbox()
    pubs = [v[0] for v in b.valset.validators]
    idx = {k.pub: i for i, k in enumerate(KEYS)}
    heavy = [idx[p] for p in pubs if b.valset.power_of(p) == 3 and idx[p] != b.me]
    if len(heavy) == 2:
        for i in heavy:
            b.core.on_message(b.vote(i, PRECOMMIT, 0, None), T0)
        assert not any(t[2] == 2 for t in b.core._timers)  # no L47 timeout at exactly 2/3
    assert b.valset.quorum() == 7
