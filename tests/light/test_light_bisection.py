"""The sans-IO bisection driver, fed by a scripted fetch function over a 1000-header chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from light_chain import OPTS, POOL, Chain, rotating, stable

from ads_ledger.light.bisection import Bisection
from ads_ledger.light.errors import InvalidCommit, InvalidHeader, NotWithinTrustPeriod, TooManySteps
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions


@pytest.fixture(scope="module")
def stable_chain() -> Chain:
    return Chain(1000)


@pytest.fixture(scope="module")
def rotated_chain() -> Chain:
    return Chain(1000, rotating(every=50))  # a new member every 50 heights; 1 → 1000: 19 shifts


def run(plan: Bisection, fetch: Callable[[int], LightBlock], now: int) -> tuple[TrustedState, list[int]]:
    """The whole IO shell: fetch what the plan names until it has its result."""
    asked = []
    h = plan.next_height()
    while h is not None:
        asked.append(h)
        b = fetch(h)
        plan.feed(b.header, b.commit, b.valset, now)
        h = plan.next_height()
    assert plan.result is not None
    return plan.result, asked


def test_a_stable_set_reaches_the_target_in_one_fetch(stable_chain: Chain) -> None:
    plan = Bisection(stable_chain.trusted(1), 1000, OPTS)
    got, asked = run(plan, stable_chain.block, stable_chain.now(1000))
    assert got.header == stable_chain.header(1000) and asked == [1000]


def test_feed_answers_the_next_height_or_the_result(rotated_chain: Chain) -> None:
    plan = Bisection(rotated_chain.trusted(1), 1000, OPTS)
    b = rotated_chain.block(1000)
    nxt = plan.feed(b.header, b.commit, b.valset, rotated_chain.now(1000))
    assert nxt == plan.next_height() == 500  # the midpoint


def test_rotated_sets_are_followed_in_few_fetches(rotated_chain: Chain) -> None:
    plan = Bisection(rotated_chain.trusted(1), 1000, OPTS)
    got, asked = run(plan, rotated_chain.block, rotated_chain.now(1000))
    assert got.header == rotated_chain.header(1000)
    assert len(asked) == len(set(asked)) <= 25  # each height fetched once; sequential would be 999
    assert [s.height for s in plan.verified] == sorted(s.height for s in plan.verified)
    assert plan.verified[-1] == got


def test_a_set_changing_every_block_still_converges() -> None:
    chain = Chain(64, rotating(every=1))  # overlap 1/2 per block: one skip of two heights at most
    got, asked = run(Bisection(chain.trusted(1), 64, OPTS), chain.block, chain.now(64))
    assert got.height == 64 and len(asked) <= 64


def test_the_target_is_the_trusted_height() -> None:
    chain = Chain(3)
    plan = Bisection(chain.trusted(3), 3, OPTS)
    assert plan.next_height() is None and plan.result == chain.trusted(3)
    with pytest.raises(ValueError):
        Bisection(chain.trusted(3), 2, OPTS)  # backwards is not supported


def test_the_bound_on_fetches_holds(rotated_chain: Chain) -> None:
    with pytest.raises(TooManySteps):
        run(Bisection(rotated_chain.trusted(1), 1000, OPTS, max_fetches=3), rotated_chain.block,
            rotated_chain.now(1000))  # fmt: skip


def test_a_node_serving_another_height_is_refused(stable_chain: Chain) -> None:
    plan = Bisection(stable_chain.trusted(1), 1000, OPTS)
    b = stable_chain.block(999)
    with pytest.raises(InvalidHeader, match="asked for height 1000"):
        plan.feed(b.header, b.commit, b.valset, stable_chain.now(1000))


def test_a_forged_pivot_stops_the_bisection(rotated_chain: Chain) -> None:
    def fetch(h: int) -> LightBlock:
        b = rotated_chain.block(h)
        return replace(b, commit=replace(b.commit, sigs=b.commit.sigs[:1])) if h == 500 else b

    with pytest.raises(InvalidCommit):
        run(Bisection(rotated_chain.trusted(1), 1000, OPTS), fetch, rotated_chain.now(1000))


def test_a_lunatic_fork_never_verifies(rotated_chain: Chain) -> None:
    """A node serving a history signed by a set of outsiders after height 1: every header
    it serves needs more than 1/3 of the trusted set, bisection ends at height 2 and there the
    adjacent rule refuses the outsiders."""
    fork = Chain(1000, lambda h: rotated_chain.schedule(h) if h == 1 else stable(POOL[16:20])(h),
                 seed=b"fork")  # fmt: skip
    with pytest.raises(InvalidHeader):
        run(Bisection(rotated_chain.trusted(1), 1000, OPTS), fork.block, rotated_chain.now(1000))


def test_an_expired_trust_cannot_bisect(stable_chain: Chain) -> None:
    opts = TrustOptions(trusting_period_ms=5_000)
    with pytest.raises(NotWithinTrustPeriod):
        run(Bisection(stable_chain.trusted(1), 1000, opts), stable_chain.block, stable_chain.now(1000))
