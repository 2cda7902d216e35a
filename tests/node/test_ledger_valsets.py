"""Validator sets and proposer priorities over long chains (issue 7, bugs 2 and 6).

A 1,600-block chain with two validator changes, built straight through the Ledger API
(empty blocks, one signature each), then reopened so that every cache is cold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ads_ledger.consensus.proposer import ProposerPriorities, priorities_for_height
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, Commit, ValidatorSet, Vote
from ads_ledger.node.ledger import Ledger, StaticHost
from ads_ledger.node.storage import schema as S
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.genesis import Genesis
from fixtures import KEYS

CHAIN = "valsets-test"
T0 = 1_700_000_000_000
GOV = SigningKey(b"\x07" * 32)
BY_PUB = {k.pub: k for k in KEYS}
CHAIN_LENGTH = 1600
# validators.set in block H takes effect at H + 2
CHANGES = {5: [[KEYS[3].pub, 25]], 300: [[KEYS[0].pub, 0], [KEYS[1].pub, 40]]}


def genesis() -> Genesis:
    return Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(k.pub, 10) for k in KEYS[:3]],
                   members=[GOV.pub], threshold=1, anchors=[])  # fmt: skip


def expected_sets() -> dict[int, ValidatorSet]:
    """The set in force from each change on, as the rules say (not as the ledger computes)."""
    current = {pub: power for pub, power in genesis().validator_set().validators}
    out = {1: ValidatorSet(tuple(current.items()))}
    for h, updates in sorted(CHANGES.items()):
        for pub, power in updates:
            if power:
                current[pub] = power
            else:
                del current[pub]
        out[h + 2] = ValidatorSet(tuple(current.items()))
    return out


def set_in_force(height: int) -> ValidatorSet:
    sets = expected_sets()
    return sets[max(h for h in sets if h <= height)]


def add_block(ledger: Ledger, gov_nonce: list[int]) -> None:
    height = ledger.height + 1
    txs = []
    if height in CHANGES:
        gov_nonce[0] += 1
        body = {"action": "validators.set", "args": {"updates": CHANGES[height]}}
        txs.append(make_envelope(CHAIN, "gov", GOV, gov_nonce[0], body))
    assert isinstance(ledger.host, StaticHost)
    ledger.host.txs = list(txs)
    vs = ledger.validators_at(height)
    block = ledger.propose_block(height, 0, T0 + 1000 * height, vs.validators[0][0], ledger.commit_at(height - 1))
    votes = [Vote(PRECOMMIT, height, 0, block.block_id(), pub).signed(CHAIN, BY_PUB[pub]) for pub, _ in vs.validators]
    ledger.commit_block(block, Commit.from_votes(vs, votes))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("valsets") / "db"
    ledger = Ledger.open(path, genesis())
    gov_nonce = [0]
    try:
        while ledger.height < CHAIN_LENGTH:
            add_block(ledger, gov_nonce)
        assert all(ledger.tx_result(h, 0)["ok"] for h in CHANGES)  # type: ignore[index]
    finally:
        ledger.close()
    return path


def test_validators_at_an_old_height_with_a_cold_cache(chain: Path) -> None:
    ledger = Ledger.open(chain, genesis())
    try:
        assert sys.getrecursionlimit() < 1500 - 302  # the old lookup recursed once per height back to 302
        assert ledger.validators_at(1500) == set_in_force(1500)  # was a RecursionError
        for h in (1, 2, 3, 6, 7, 8, 301, 302, 303, 1000, CHAIN_LENGTH + 2):
            assert ledger.validators_at(h) == set_in_force(h), h
        with pytest.raises(LookupError):
            ledger.validators_at(CHAIN_LENGTH + 3)
    finally:
        ledger.close()


def test_validator_set_cache_is_bounded(chain: Path) -> None:
    ledger = Ledger.open(chain, genesis())
    try:
        for h in range(1, CHAIN_LENGTH + 3):
            assert ledger.validators_at(h) == set_in_force(h)
        assert len(ledger._valsets) <= 64
    finally:
        ledger.close()


def test_stored_priorities_equal_the_walk_from_genesis(chain: Path) -> None:
    ledger = Ledger.open(chain, genesis())
    try:
        raw = ledger.store.read(S.PRIORITIES, S.PRIORITIES_NEXT)
        assert raw is not None
        height, obj = codec.decode(raw)
        assert height == CHAIN_LENGTH + 1
        walked = priorities_for_height(ledger.validators_at, CHAIN_LENGTH + 1)
        assert ProposerPriorities.from_obj(obj) == walked
        assert ledger.priorities_at_next() == walked
        assert any(prio < 0 for _, _, prio in walked.entries)  # negative priorities round-trip
    finally:
        ledger.close()


def test_priorities_match_the_core_at_every_height(tmp_path: Path) -> None:
    """What commit_block stores equals what Core._decide computes, across both changes."""
    ledger = Ledger.open(tmp_path / "db", genesis())
    gov_nonce = [0]
    core_view = ProposerPriorities.genesis(ledger.validators_at(1))
    try:
        while ledger.height < 310:
            assert ledger.priorities_at_next() == core_view
            add_block(ledger, gov_nonce)
            core_view = core_view.next_height(ledger.validators_at(ledger.height + 1))  # as _decide
            raw = ledger.store.read(S.PRIORITIES, S.PRIORITIES_NEXT)
            assert raw is not None and codec.decode(raw) == [ledger.height + 1, core_view.to_obj()]
        assert core_view == priorities_for_height(ledger.validators_at, 311)
        assert {p for p, _, _ in core_view.entries} == {k.pub for k in KEYS[1:]}
    finally:
        ledger.close()


def test_priorities_of_a_store_without_the_record(tmp_path: Path) -> None:
    """A store written by an older version: walked once from genesis, stored with the next block."""
    ledger = Ledger.open(tmp_path / "db", genesis())
    gov_nonce = [0]
    try:
        while ledger.height < 12:
            add_block(ledger, gov_nonce)
        want = ledger.priorities_at_next()
        with ledger.store._env.begin(write=True) as txn:
            txn.delete(S.PRIORITIES_NEXT, db=ledger.store._dbs[S.PRIORITIES])
    finally:
        ledger.close()
    ledger = Ledger.open(tmp_path / "db", genesis())
    try:
        assert ledger.priorities_at_next() == want
        add_block(ledger, gov_nonce)
        raw = ledger.store.read(S.PRIORITIES, S.PRIORITIES_NEXT)
        assert raw is not None and codec.decode(raw)[0] == 14
        assert ledger.priorities_at_next() == priorities_for_height(ledger.validators_at, 14)
    finally:
        ledger.close()


def test_priorities_record_behind_the_chain_is_walked_forward(tmp_path: Path) -> None:
    """Blocks written by an older version after ours: the record is stale, not wrong."""
    ledger = Ledger.open(tmp_path / "db", genesis())
    gov_nonce = [0]
    try:
        while ledger.height < 4:
            add_block(ledger, gov_nonce)
        old = ledger.store.read(S.PRIORITIES, S.PRIORITIES_NEXT)
        while ledger.height < 10:
            add_block(ledger, gov_nonce)
        with ledger.store._env.begin(write=True) as txn:
            txn.put(S.PRIORITIES_NEXT, old, db=ledger.store._dbs[S.PRIORITIES])
    finally:
        ledger.close()
    ledger = Ledger.open(tmp_path / "db", genesis())
    try:
        assert ledger.priorities_at_next() == priorities_for_height(ledger.validators_at, 11)
    finally:
        ledger.close()


def test_priorities_survive_the_codec_at_the_power_limit() -> None:
    """Priorities stay within ±3·P; at the governance cap (2^60) that fits msgpack's ints."""
    big = ValidatorSet(((b"\x01" * 32, 2**59), (b"\x02" * 32, 2**59 - 1), (b"\x03" * 32, 1)))
    pr = ProposerPriorities.genesis(big)
    for _ in range(50):
        pr = pr.next_height(big)
        assert ProposerPriorities.from_obj(codec.decode(codec.encode(pr.to_obj()))) == pr
        assert all(abs(a) <= 3 * big.total_power for _, _, a in pr.entries)


@pytest.mark.parametrize("obj", [
    None, [], [[], b"\x01" * 32], [[[b"\x01" * 32, 10, 0]], [b"\x01" * 32]],
    [[[b"\x01" * 32, 10, 0]], b"\x02" * 32], [[[b"\x01" * 31, 10, 0]], b"\x01" * 31],
    [[[b"\x01" * 32, 0, 0]], b"\x01" * 32], [[[b"\x01" * 32, 10, "0"]], b"\x01" * 32],
])  # fmt: skip
def test_a_malformed_priorities_record_is_refused(obj: object) -> None:
    from ads_ledger.core.errors import DecodeError

    with pytest.raises(DecodeError):
        ProposerPriorities.from_obj(obj)
