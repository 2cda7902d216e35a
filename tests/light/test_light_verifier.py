"""Adjacent and skipping verification: each rule passes an honest chain and refuses its own
violation with its own error (CometBFT light/verifier_test.go, in spirit)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from light_chain import BLOCK_MS, CHAIN, OPTS, POOL, Chain, rotating, sign_commit, stable

from ads_ledger.core.types import Commit, Header, ValidatorSet
from ads_ledger.light.errors import (
    ClockDrift,
    InsufficientTrust,
    InvalidCommit,
    InvalidHeader,
    LightError,
    NotWithinTrustPeriod,
)
from ads_ledger.light.trust import TrustOptions
from ads_ledger.light.verifier import trusted_power, verify_adjacent, verify_light_block, verify_skipping


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain(40)


def _resign(chain: Chain, header: Header) -> Commit:
    """A valid commit by the header's own (claimed) set, so only the rule under test fails."""
    return sign_commit(header, chain.keys(header.height), chain.valset(header.height))


def test_adjacent_header_verifies(chain: Chain) -> None:
    b = chain.block(6)
    new = verify_adjacent(chain.trusted(5), b.header, b.commit, b.valset, chain.now(6), OPTS)
    assert new.header == chain.header(6) and new.valset == chain.valset(6)


def test_skipping_with_an_unchanged_set_verifies(chain: Chain) -> None:
    b = chain.block(40)
    new = verify_skipping(chain.trusted(1), b.header, b.commit, b.valset, chain.now(40), OPTS)
    assert new.height == 40


def test_adjacent_refuses_a_header_that_does_not_link(chain: Chain) -> None:
    other = Chain(6, seed=b"fork")  # same validators, different history
    b = other.block(6)
    with pytest.raises(InvalidHeader, match="does not link"):
        verify_adjacent(chain.trusted(5), b.header, b.commit, b.valset, chain.now(6), OPTS)


def test_adjacent_refuses_a_set_other_than_the_announced_next() -> None:
    chain = Chain(10)
    impostors = Chain(10, stable(POOL[8:12]))
    h = replace(chain.header(6), validators=impostors.valset(6).hash())
    c = sign_commit(h, impostors.keys(6), impostors.valset(6))
    with pytest.raises(InvalidHeader, match="announced as next"):
        verify_adjacent(chain.trusted(5), h, c, impostors.valset(6), chain.now(6), OPTS)


def test_a_valset_not_matching_the_header_is_invalid(chain: Chain) -> None:
    b = chain.block(20)
    wrong = Chain(1, stable(POOL[4:8])).valset(1)
    with pytest.raises(InvalidHeader, match="validators hash"):
        verify_skipping(chain.trusted(1), b.header, b.commit, wrong, chain.now(20), OPTS)


def test_time_must_advance(chain: Chain) -> None:
    h = replace(chain.header(20), time=chain.header(1).time)
    with pytest.raises(InvalidHeader, match="not after"):
        verify_skipping(chain.trusted(1), h, _resign(chain, h), chain.valset(20), chain.now(20), OPTS)


def test_height_must_be_above_the_trusted(chain: Chain) -> None:
    b = chain.block(3)
    with pytest.raises(InvalidHeader, match="not above"):
        verify_light_block(chain.trusted(5), b, chain.now(5), OPTS)


def test_another_chain_is_invalid(chain: Chain) -> None:
    other = Chain(20, chain_id="elsewhere")
    with pytest.raises(InvalidHeader, match="chain"):
        verify_light_block(chain.trusted(1), other.block(20), chain.now(20), OPTS)


def test_a_header_beyond_the_clock_drift_is_refused(chain: Chain) -> None:
    b = chain.block(20)
    now = b.header.time - OPTS.max_clock_drift_ms - 1  # header 10 s + 1 ms in our future
    with pytest.raises(ClockDrift, match="ahead of our clock"):
        verify_skipping(chain.trusted(1), b.header, b.commit, b.valset, now, OPTS)
    verify_skipping(chain.trusted(1), b.header, b.commit, b.valset, now + 1, OPTS)  # exactly 10 s


def test_an_expired_trusted_header_vouches_for_nothing(chain: Chain) -> None:
    opts = TrustOptions(trusting_period_ms=60_000)
    expiry = chain.header(5).time + 60_000
    b = chain.block(6)
    verify_adjacent(chain.trusted(5), b.header, b.commit, b.valset, expiry - 1, opts)
    with pytest.raises(NotWithinTrustPeriod, match="re-initialise"):
        verify_adjacent(chain.trusted(5), b.header, b.commit, b.valset, expiry, opts)
    with pytest.raises(NotWithinTrustPeriod):
        verify_light_block(chain.trusted(5), chain.block(30), expiry + 10**9, opts)


def test_a_commit_for_another_block_is_invalid(chain: Chain) -> None:
    b = chain.block(20)
    with pytest.raises(InvalidCommit):
        verify_skipping(chain.trusted(1), b.header, chain.commit(19), b.valset, chain.now(20), OPTS)


def test_a_forged_signature_is_refused(chain: Chain) -> None:
    b = chain.block(20)
    idx, sig = b.commit.sigs[0]
    bad = replace(b.commit, sigs=((idx, bytes([sig[0] ^ 1]) + sig[1:]),) + b.commit.sigs[1:])
    with pytest.raises(InvalidCommit, match="does not verify"):
        verify_skipping(chain.trusted(1), b.header, bad, b.valset, chain.now(20), OPTS)


def test_signatures_of_outsiders_do_not_count() -> None:
    """Two members and two outsiders sign header 20 by name of a set that holds the members
    only: a valid commit needs >2/3 of its own set, outsiders cannot be indexed in it."""
    chain = Chain(20)
    b = chain.block(20)
    members = sign_commit(b.header, chain.keys(20)[:2], b.valset)
    with pytest.raises(InvalidCommit, match="needs >2/3"):
        verify_skipping(chain.trusted(1), b.header, members, b.valset, chain.now(20), OPTS)
    # an outsider's signature placed at a member's index does not verify under the member's key
    outsider = sign_commit(b.header, [POOL[9]], ValidatorSet(((POOL[9].pub, 1),)))
    free = min({0, 1, 2, 3} - {i for i, _ in members.sigs})
    sigs = tuple(sorted(members.sigs + ((free, outsider.sigs[0][1]),)))
    forged = Commit(20, 0, b.header.block_id(), sigs)
    with pytest.raises(InvalidCommit, match="does not verify"):
        verify_skipping(chain.trusted(1), b.header, forged, b.valset, chain.now(20), OPTS)


def test_a_header_signed_by_outsiders_is_not_trusted() -> None:
    """Lunatic attack: a valid-looking header whose own set is mostly outsiders, fully signed by
    it, carries only one trusted validator (10 of 40, not more than 1/3)."""
    chain = Chain(20)
    forged_set = stable([chain.keys(1)[0]] + POOL[12:16])
    lunatic = Chain(20, forged_set, seed=b"lunatic")
    with pytest.raises(InsufficientTrust):
        verify_light_block(chain.trusted(1), lunatic.block(20), chain.now(20), OPTS)
    assert trusted_power(CHAIN, chain.valset(1), lunatic.valset(20), lunatic.commit(20)) == 10


def test_a_signer_listed_twice_is_not_counted_twice(chain: Chain) -> None:
    b = chain.block(20)
    (i0, s0), (i1, s1) = b.commit.sigs[:2]
    dup = replace(b.commit, sigs=((i0, s0), (i0, s0), (i1, s1)))
    with pytest.raises(InvalidCommit, match="without repeats"):
        verify_skipping(chain.trusted(1), b.header, dup, b.valset, chain.now(20), OPTS)
    # the trust tally, on its own, counts by public key and once
    tally = trusted_power(CHAIN, chain.valset(1), b.valset, dup)
    assert tally == 20  # two distinct signers of power 10, not 30


def test_skipping_over_a_changed_set_with_enough_overlap_verifies() -> None:
    chain = Chain(30, rotating(every=10))  # sets at 1 and 25 share 2 of 4: 20/40 > 1/3
    assert len(set(chain.keys(1)) & set(chain.keys(25))) == 2
    new = verify_light_block(chain.trusted(1), chain.block(25), chain.now(25), OPTS)
    assert new.valset == chain.valset(25)


def test_skipping_over_a_disjoint_set_needs_bisection() -> None:
    chain = Chain(60, rotating(every=10))  # sets at 1 and 45 share nothing
    assert not set(chain.keys(1)) & set(chain.keys(45))
    with pytest.raises(InsufficientTrust, match="bisection"):
        verify_light_block(chain.trusted(1), chain.block(45), chain.now(45), OPTS)
    mid = verify_light_block(chain.trusted(1), chain.block(22), chain.now(45), OPTS)
    assert verify_light_block(mid, chain.block(45), chain.now(45), OPTS).height == 45


def test_exactly_one_third_of_the_trusted_power_is_not_enough() -> None:
    """Trust level is *more than* 1/3: 1 of 3 equal validators falls short, 2 suffice."""
    keys = POOL[:3]
    late = [keys[0], POOL[5], POOL[6]]
    chain = Chain(20, lambda h: [(k, 10) for k in (keys if h < 10 else late)])
    with pytest.raises(InsufficientTrust):
        verify_light_block(chain.trusted(1), chain.block(15), chain.now(15), OPTS)
    later = [keys[0], keys[1], POOL[6]]
    chain = Chain(20, lambda h: [(k, 10) for k in (keys if h < 10 else later)])
    verify_light_block(chain.trusted(1), chain.block(15), chain.now(15), OPTS)


def test_the_trusted_next_set_is_the_basis_when_known() -> None:
    """Header 10 announces a new set from 11 on; from trusted(10) with its next set known, a
    header of that new set verifies by skipping, while trusting header 10's own set does not."""
    a, b = POOL[:4], POOL[10:14]
    chain = Chain(30, lambda h: [(k, 10) for k in (a if h <= 10 else b)])
    with pytest.raises(InsufficientTrust):
        verify_light_block(chain.trusted(10), chain.block(20), chain.now(20), OPTS)
    verify_light_block(chain.trusted(10, with_next=True), chain.block(20), chain.now(20), OPTS)


def test_a_higher_trust_level_is_stricter() -> None:
    chain = Chain(30, rotating(every=10))  # 2 of 4 overlap: 1/2 of the power
    with pytest.raises(InsufficientTrust):
        verify_light_block(chain.trusted(1), chain.block(25), chain.now(25),
                           TrustOptions(OPTS.trusting_period_ms, trust_level=OPTS.trust_level * 2))  # fmt: skip


def test_options_are_checked() -> None:
    from fractions import Fraction

    for bad in (
        {"trusting_period_ms": 0},
        {"trusting_period_ms": 1, "max_clock_drift_ms": -1},
        {"trusting_period_ms": 1, "trust_level": Fraction(1, 4)},
        {"trusting_period_ms": 1, "trust_level": Fraction(4, 3)},
    ):
        with pytest.raises(ValueError):
            TrustOptions(**bad)  # type: ignore[arg-type]


def test_every_error_is_a_light_error_with_advice(chain: Chain) -> None:
    b = chain.block(20)
    late = replace(b.header, time=b.header.time + 10 * BLOCK_MS)
    with pytest.raises(LightError) as e:
        verify_skipping(chain.trusted(1), late, b.commit, b.valset, chain.now(1), OPTS)
    assert "try another node" in str(e.value) or "clock" in str(e.value)


def test_the_clock_free_checks_of_verify_py_still_hold(chain: Chain) -> None:
    from ads_ledger.light import verify as legacy

    b = chain.block(6)
    legacy.verify_signed_header(CHAIN, b.header, b.commit, b.valset)
    legacy.verify_adjacent(CHAIN, chain.header(5), b.header, b.commit, b.valset)
    with pytest.raises(legacy.LightError):
        legacy.verify_signed_header("elsewhere", b.header, b.commit, b.valset)
    with pytest.raises(legacy.LightError):
        legacy.verify_adjacent(CHAIN, chain.header(4), b.header, b.commit, b.valset)
    with pytest.raises(InvalidCommit):
        legacy.verify_signed_header(CHAIN, b.header, replace(b.commit, sigs=b.commit.sigs[:2]), b.valset)
