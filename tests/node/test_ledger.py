"""The ledger as consensus's Application: propose, validate, commit, reopen, prove."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.merkle import verify_proof
from ads_ledger.core.types import PRECOMMIT, Block, Commit, Vote
from ads_ledger.node.ledger import InvalidBlock, Ledger, StaticHost
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.state.records import cp_key
from ads_ledger.testing import device_attestation, test_device_ca
from ads_ledger.testing.trustlist import issue_attestation, make_trust_list

CHAIN = "ledger-test"
T0 = int(time.time() * 1000)


@pytest.fixture(scope="module")
def trust():  # type: ignore[no-untyped-def]
    return make_trust_list()


def make_genesis(vals: list[SigningKey], trust) -> Genesis:  # type: ignore[no-untyped-def]
    gov = SigningKey(b"\x07" * 32)
    return Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in vals],
                   members=[gov.pub], threshold=1, anchors=trust.anchors_der(),
                   device_anchors=test_device_ca().anchors_der())


def commit_for(block: Block, vals: list[SigningKey], ledger: Ledger) -> Commit:
    votes = [Vote(PRECOMMIT, block.header.height, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in vals]
    return Commit.from_votes(ledger.validators_at(block.header.height), votes)


def step(ledger: Ledger, vals: list[SigningKey], txs: list[bytes], t: int) -> Block:
    assert isinstance(ledger.host, StaticHost)
    ledger.host.txs = list(txs)
    lc = ledger.commit_at(ledger.height)
    block = ledger.propose_block(ledger.height + 1, 0, t, vals[0].pub, lc)
    assert ledger.validate_block(block)
    ledger.commit_block(block, commit_for(block, vals, ledger))
    return block


def test_ownership_and_grant_through_blocks(tmp_path: Path, trust) -> None:  # type: ignore[no-untyped-def]
    vals = [SigningKey.generate() for _ in range(3)]
    g = make_genesis(vals, trust)
    owner, device, provider = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    ledger = Ledger.open(tmp_path / "db", g)
    attest = issue_attestation(trust, CHAIN, owner.pub, issued_at=T0, expires_at=T0 + 10**9)
    txs1 = [
        make_envelope(CHAIN, "attest", owner, 1, attest),
        make_envelope(CHAIN, "cp.propose", device, 1, {"owner": owner.pub, "device": device_attestation(device.pub)}),
        make_envelope(CHAIN, "cp.accept", owner, 2, {"cp": device.pub}),
    ]
    b1 = step(ledger, vals, txs1, T0 + 1000)
    assert ledger.height == 1
    assert [ledger.tx_result(1, i)["code"] for i in range(3)] == ["ok", "ok", "ok"]  # type: ignore[index]
    assert ledger.changed_cps(1) == [device.pub]  # what GET /events tells agents
    grant = {"cp": device.pub, "grantee": provider.pub, "scopes": ["meter.read"], "not_before": T0,
             "not_after": T0 + 10**8, "limits": {}, "exclusive": False, "priority": 1,
             "redelegate": 0, "parent": None}
    step(ledger, vals, [make_envelope(CHAIN, "grant", owner, 3, grant)], T0 + 2000)
    assert ledger.changed_cps(2) == [device.pub]
    step(ledger, vals, [make_envelope(CHAIN, "revoke", owner, 4, {"cp": device.pub, "grant": bytes(16)})], T0 + 2500)
    assert ledger.changed_cps(3) == []  # refused: the record did not change
    h_idx, found = ledger.grants_of(provider.pub)
    assert h_idx == 3 and [(cp, g["grantee"]) for cp, g in found] == [(device.pub, provider.pub)]
    assert ledger.grants_of(owner.pub)[1] == []
    h, value, proof = ledger.get_state(cp_key(device.pub), 2)
    assert h == 2 and value is not None
    rec = codec.decode(value)
    assert rec["owner"] == owner.pub and rec["grants"][0]["grantee"] == provider.pub
    assert verify_proof(ledger.header(2).state_root, cp_key(device.pub), value, proof)  # type: ignore[union-attr]
    # the older version still proves the record before the grant
    _, v1, p1 = ledger.get_state(cp_key(device.pub), 1)
    assert codec.decode(v1)["grants"] == []  # type: ignore[arg-type]
    assert verify_proof(b1.header.state_root, cp_key(device.pub), v1, p1)
    ledger.close()
    # reopen: same height, same root, blocks readable
    again = Ledger.open(tmp_path / "db", g)
    assert again.height == 3 and again.block(1) == b1
    assert again.account_nonce(owner.pub) == 4
    again.close()


def test_bad_blocks_are_refused_and_change_nothing(tmp_path: Path, trust) -> None:  # type: ignore[no-untyped-def]
    vals = [SigningKey.generate()]
    ledger = Ledger.open(tmp_path / "db", make_genesis(vals, trust))
    step(ledger, vals, [], T0 + 1000)
    good = ledger.propose_block(2, 0, T0 + 2000, vals[0].pub, ledger.commit_at(1))
    root_before = ledger.store.root()
    from dataclasses import replace

    for bad_header in (
        replace(good.header, state_root=b"\x01" * 32),
        replace(good.header, time=T0 + 1000),  # not after the previous block
        replace(good.header, height=3),
        replace(good.header, prev=b"\x02" * 32),
        replace(good.header, proposer=b"\x03" * 32),
    ):
        bad = Block(bad_header, good.txs, good.evidence, good.last_commit)
        assert not ledger.validate_block(bad)
        with pytest.raises(InvalidBlock):
            ledger.commit_block(bad, commit_for(bad, vals, ledger))
    assert ledger.height == 1 and ledger.store.root() == root_before
