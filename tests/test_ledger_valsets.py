"""Validator sets over long chains (issue 7, bug 2).

A 1,600-block chain with two validator changes, built straight through the Ledger API
(empty blocks, one signature each), then reopened so that every cache is cold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ads_ledger import codec
from ads_ledger.crypto import SigningKey
from ads_ledger.genesis import Genesis
from ads_ledger.ledger import Ledger
from ads_ledger.tx.envelope import make_envelope
from ads_ledger.types import PRECOMMIT, Commit, ValidatorSet, Vote

CHAIN = "valsets-test"
T0 = 1_700_000_000_000
GOV = SigningKey(b"\x07" * 32)
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
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
    ledger.reap = lambda *limits: list(txs)  # (max_bytes[, max_txs])
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
