"""LightClient: trust roots, moving trust forward, witnesses and divergence evidence, and the
persisted trusted state."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from light_chain import OPTS, POOL, Chain, rotating, stable

from ads_ledger.core.errors import DecodeError
from ads_ledger.light.client import LightClient, genesis_root, trust_root
from ads_ledger.light.detector import Divergence, check_witness, compare
from ads_ledger.light.errors import (
    ConflictingHeaders,
    InsufficientTrust,
    InvalidCommit,
    InvalidHeader,
    NotWithinTrustPeriod,
)
from ads_ledger.light.trust import TrustedState, TrustOptions


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain(200, rotating(every=20))


def _client(chain: Chain, h: int = 10) -> LightClient:
    b = chain.block(h)
    st = trust_root(h, b.header.block_id(), b.header, b.commit, b.valset, chain.now(h), OPTS)
    return LightClient(st, OPTS)


def test_trust_root_from_height_and_hash(chain: Chain) -> None:
    c = _client(chain)
    assert c.height == 10 and c.trusted.valset == chain.valset(10) and c.chain_id == chain.chain_id


def test_trust_root_refuses_another_header_or_height_or_commit(chain: Chain) -> None:
    b, now = chain.block(10), chain.now(10)
    good = b.header.block_id()
    with pytest.raises(InvalidHeader, match="not the trusted"):
        trust_root(10, bytes(32), b.header, b.commit, b.valset, now, OPTS)
    with pytest.raises(InvalidHeader, match="height 11"):
        trust_root(11, good, b.header, b.commit, b.valset, now, OPTS)
    with pytest.raises(InvalidCommit):
        trust_root(10, good, b.header, replace(b.commit, sigs=b.commit.sigs[:2]), b.valset, now, OPTS)
    with pytest.raises(InvalidHeader, match="validators hash"):
        trust_root(10, good, b.header, b.commit, chain.valset(100), now, OPTS)
    with pytest.raises(InvalidHeader, match="chain"):
        trust_root(10, good, b.header, b.commit, b.valset, now, OPTS, chain_id="elsewhere")
    with pytest.raises(NotWithinTrustPeriod, match="recent height"):
        trust_root(10, good, b.header, b.commit, b.valset, now + OPTS.trusting_period_ms, OPTS)


def test_trust_root_keeps_a_next_set_only_if_it_matches(chain: Chain) -> None:
    b = chain.block(19)
    st = trust_root(19, b.header.block_id(), b.header, b.commit, b.valset, chain.now(19), OPTS,
                    next_valset=chain.valset(20))  # fmt: skip
    assert st.next_valset == chain.valset(20)
    with pytest.raises(InvalidHeader):
        trust_root(19, b.header.block_id(), b.header, b.commit, b.valset, chain.now(19), OPTS,
                   next_valset=chain.valset(60))  # fmt: skip


def test_genesis_root_is_height_one_only(chain: Chain) -> None:
    b = chain.block(1)
    assert genesis_root(b.header, b.commit, b.valset, chain.now(1), OPTS).height == 1
    b2 = chain.block(2)
    with pytest.raises(InvalidHeader, match="height 1"):
        genesis_root(b2.header, b2.commit, b2.valset, chain.now(2), OPTS)


def test_update_moves_trust_and_a_failure_leaves_it(chain: Chain) -> None:
    c = _client(chain)
    b = chain.block(11)
    assert c.update(b.header, b.commit, b.valset, chain.now(11)).height == 11
    far = chain.block(150)
    with pytest.raises(InsufficientTrust):
        c.update(far.header, far.commit, far.valset, chain.now(150))
    assert c.height == 11


def test_bisect_then_adopt(chain: Chain) -> None:
    c = _client(chain)
    plan = c.bisect(200)
    h = plan.next_height()
    with pytest.raises(ValueError):
        c.adopt(plan)  # not done yet
    while h is not None:
        b = chain.block(h)
        plan.feed(b.header, b.commit, b.valset, chain.now(200))
        h = plan.next_height()
    assert c.adopt(plan).header == chain.header(200) and c.height == 200
    assert c.expires_at() == chain.header(200).time + OPTS.trusting_period_ms


def test_trusted_state_round_trips_through_bytes(chain: Chain) -> None:
    for st in (chain.trusted(30), chain.trusted(39, with_next=True)):
        data = st.encode()
        assert TrustedState.decode(data) == st
        assert TrustedState.decode(data).encode() == data  # canonical
    c = _client(chain)
    assert LightClient.decode(c.encode(), OPTS).trusted == c.trusted


def test_a_tampered_trusted_state_does_not_load(chain: Chain) -> None:
    st = chain.trusted(30)
    obj = st.to_obj()
    with pytest.raises(DecodeError):
        TrustedState.from_obj({**obj, "valset": chain.valset(100).to_obj()})  # set not the header's
    with pytest.raises(DecodeError):
        TrustedState.from_obj({**obj, "version": 2})
    with pytest.raises(DecodeError):
        TrustedState.decode(st.encode()[:-1])


def test_witness_agreeing_passes_and_a_conflict_is_evidence(chain: Chain) -> None:
    c = _client(chain)
    primary = chain.block(12)
    c.check_witness(primary, chain.block(12), chain.now(12))  # the same block: fine
    fork = Chain(200, rotating(every=20), seed=b"fork")  # same validators signing another history
    with pytest.raises(ConflictingHeaders) as e:
        c.check_witness(primary, fork.block(12), chain.now(12))
    assert e.value.primary == primary.header and e.value.witness == fork.header(12)
    assert e.value.witness_verified  # the same validators signed both: skipping from 10 verifies
    assert "report" in str(e.value)
    # outsiders' header: cannot be judged without bisecting the witness, so still a conflict
    lunatic = Chain(200, stable(POOL[20:24]), seed=b"lunatic")
    with pytest.raises(ConflictingHeaders) as e:
        c.check_witness(primary, lunatic.block(12), chain.now(12))
    assert e.value.witness_verified is False


def test_a_fork_signed_by_the_validators_is_a_verified_divergence(chain: Chain) -> None:
    """Same validators sign a second header 50: skipping from 10 verifies both; the witness's
    is kept as a verified conflict with both commits."""
    c = _client(chain)
    fork = Chain(200, rotating(every=20), seed=b"equivocation")
    primary = chain.block(50)
    c.verify(primary.header, primary.commit, primary.valset, chain.now(50))
    with pytest.raises(ConflictingHeaders) as e:
        c.check_witness(primary, fork.block(50), chain.now(50))
    d = Divergence.of(e.value)
    assert d.witness_verified and d.height == 50 and d.witness_commit == fork.commit(50)
    assert Divergence.decode(d.encode()) == d
    js = json.loads(json.dumps(d.to_json()))
    assert js["primary"]["prev"] == primary.header.prev.hex() and js["witness_verified"] is True


def test_an_invalid_witness_is_dropped_not_a_conflict(chain: Chain) -> None:
    c = _client(chain)
    primary = chain.block(50)
    liar = Chain(200, stable(POOL[20:24]), seed=b"liar").block(50)
    with pytest.raises(InvalidHeader):
        check_witness(c.trusted, primary, replace(liar, valset=chain.valset(1)), chain.now(50), OPTS)
    forged = replace(primary, header=replace(primary.header, state_root=bytes(32)))
    with pytest.raises(InvalidCommit):
        c.check_witness(primary, forged, chain.now(50))


def test_compare_only_same_heights(chain: Chain) -> None:
    compare(chain.header(5), chain.header(5))
    with pytest.raises(ValueError):
        compare(chain.header(5), chain.header(6))
    with pytest.raises(ConflictingHeaders):
        compare(chain.header(5), replace(chain.header(5), time=0))


def test_options_do_not_travel_with_the_state(chain: Chain) -> None:
    c = _client(chain)
    strict = TrustOptions(trusting_period_ms=1)
    assert LightClient.decode(c.encode(), strict).opts == strict
