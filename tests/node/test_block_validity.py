"""Block validity from the block's bytes alone (DESIGN §2, §6): what a Byzantine proposer can
put in a block, checked at the Ledger a validator runs. Each of these blocks was accepted on
the main of issue 7 (a txid found in the mempool skipped the block's signature checks; wrong
nonces, unknown types and replayed txids were "refused" results inside a valid block)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import pytest
from cryptography.hazmat.primitives import serialization

from ads_ledger.consensus.evidence import InvalidEvidence
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import (
    PRECOMMIT,
    PREVOTE,
    Block,
    Commit,
    DuplicateVoteEvidence,
    Vote,
)
from ads_ledger.node.ledger import Ledger, StaticHost
from ads_ledger.state.envelope import make_envelope, parse_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.testing.trustlist import make_trust_list

CHAIN = "validity-test"
T0 = int(time.time() * 1000)
VALS = [SigningKey(bytes([0x30 + i]) * 32) for i in range(4)]
GOV = [SigningKey(bytes([0x50 + i]) * 32) for i in range(3)]
MEMBERS_SET = {"action": "members.set", "args": {"members": [GOV[0].pub], "threshold": 1}}


@pytest.fixture(scope="module")
def anchor() -> bytes:
    return make_trust_list().root.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def ledger(tmp_path: Path, anchor: bytes) -> Ledger:
    g = Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS],
                members=[k.pub for k in GOV], threshold=2, anchors=[anchor],
                params={"evidence_max_age": 5})  # fmt: skip
    led = Ledger.open(tmp_path / "db", g)
    yield led
    led.close()


def naive_block(led: Ledger, txs: Sequence[bytes], *, t: int | None = None,
                evidence: Sequence[DuplicateVoteEvidence] = ()) -> Block:  # fmt: skip
    """What a Byzantine proposer sends: any txs, executed without signature checks, with the
    state root such a naive execution gives — well formed in every other respect."""
    height = led.height + 1
    t = t if t is not None else T0 + 1000 * height
    return led.assemble(height, t, VALS[0].pub, led.commit_at(height - 1), list(txs), evidence)


def commit(led: Ledger, block: Block) -> None:
    votes = [Vote(PRECOMMIT, block.header.height, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
    led.commit_block(block, Commit.from_votes(led.validators_at(block.header.height), votes))


def forge(raw: bytes, auth: list[list[Any]]) -> bytes:
    obj = codec.decode(raw)
    obj["auth"] = auth
    return codec.encode(obj)


def members(led: Ledger) -> list[bytes]:
    return codec.decode(led.state_view().get(b"gov/members"))["members"]  # type: ignore[arg-type, index, no-any-return]


def test_forged_cosigner_cannot_pass_a_governance_takeover(ledger: Ledger) -> None:
    """The critical attack: one member's members.set, a garbage second `auth` entry added by
    the proposer. Honest validators had the original (same txid) in their mempools."""
    honest = make_envelope(CHAIN, "gov", GOV[0], 1, MEMBERS_SET)
    ledger.note_verified(parse_envelope(honest))  # as the node's intake does for the tx it admitted
    forged = forge(honest, [[GOV[0].pub, parse_envelope(honest).auth[0][1]], [GOV[1].pub, b"\x00" * 64]])
    assert parse_envelope(forged).txid(CHAIN) == parse_envelope(honest).txid(CHAIN)
    block = naive_block(ledger, [forged])
    assert not ledger.validate_block(block)
    with pytest.raises(Exception, match="signature"):
        ledger.check_block(block)
    # the honest single-signed tx is well signed: included, refused by its rule, nonce used
    ok_block = naive_block(ledger, [honest])
    assert ledger.validate_block(ok_block)
    commit(ledger, ok_block)
    assert ledger.tx_result(1, 0)["code"] == "quorum"  # type: ignore[index]
    assert members(ledger) == sorted(k.pub for k in GOV)


def test_swapped_signature_is_invalid_even_when_the_txid_is_known(ledger: Ledger) -> None:
    user = SigningKey.generate()
    honest = make_envelope(CHAIN, "cp.transfer", user, 1, {"cp": b"\x01" * 32, "to": b"\x02" * 32})
    ledger.note_verified(parse_envelope(honest))
    swapped = forge(honest, [[user.pub, b"\x11" * 64]])
    assert not ledger.validate_block(naive_block(ledger, [swapped]))


def _tx(key: SigningKey, nonce: int, to: bytes = b"\x02" * 32) -> bytes:
    return make_envelope(CHAIN, "cp.transfer", key, nonce, {"cp": b"\x01" * 32, "to": to})


def test_wrong_nonce_unknown_type_and_repeats_make_a_block_invalid(ledger: Ledger) -> None:
    user = SigningKey.generate()
    assert not ledger.validate_block(naive_block(ledger, [_tx(user, 2)]))  # nonce gap
    unknown = make_envelope(CHAIN, "cp.steal", user, 1, {})
    assert not ledger.validate_block(naive_block(ledger, [unknown]))
    twice = _tx(user, 1)
    assert not ledger.validate_block(naive_block(ledger, [twice, twice]))
    first = naive_block(ledger, [twice])
    assert ledger.validate_block(first)  # refused by its rule (no such cp); a fresh key: no write
    commit(ledger, first)
    assert ledger.tx_result(1, 0)["code"] != "ok"  # type: ignore[index]
    replay = naive_block(ledger, [twice])
    assert not ledger.validate_block(replay)
    with pytest.raises(Exception, match="already committed"):
        ledger.check_block(replay)
    assert ledger.tx_location(parse_envelope(twice).txid(CHAIN)) == (1, 0)  # index not overwritten


def test_block_limits_come_from_gov_params_in_force(ledger: Ledger) -> None:
    """max_block_txs set by params.set in block 1 binds from block 3 (state after H−2)."""
    p = {"action": "params.set", "args": {"max_block_txs": 2}}
    gov_tx = make_envelope(CHAIN, "gov", GOV[0], 1, p, [GOV[1]])
    commit(ledger, naive_block(ledger, [gov_tx]))
    assert ledger.tx_result(1, 0)["code"] == "ok"  # type: ignore[index]
    users = [SigningKey.generate() for _ in range(3)]
    three = [_tx(u, 1) for u in users]
    b2 = naive_block(ledger, three)
    assert ledger.params_at(2)["max_block_txs"] == 2000 and ledger.validate_block(b2)
    commit(ledger, b2)
    assert ledger.params_at(3)["max_block_txs"] == 2
    assert ledger.consensus_params_at(3).propose_ms == ledger.params_at(3)["timeout_propose_ms"]
    more = [_tx(u, 1, to=b"\x03" * 32) for u in users]  # fresh keys: refusals consumed no nonce
    assert not ledger.validate_block(naive_block(ledger, more))
    assert ledger.validate_block(naive_block(ledger, more[:2]))


def test_a_proposer_leaves_out_what_would_make_its_block_invalid(ledger: Ledger) -> None:
    user = SigningKey.generate()
    good, gap = _tx(user, 1), _tx(SigningKey.generate(), 5)
    bad_sig = forge(_tx(SigningKey.generate(), 1), [[b"\x00" * 32, b"\x00" * 64]])
    assert isinstance(ledger.host, StaticHost)
    ledger.host.txs = [good, gap, good, bad_sig]
    block = ledger.propose_block(1, 0, T0 + 1000, VALS[0].pub, None)
    assert block.txs == (good,)
    assert ledger.validate_block(block)


def _old_evidence(led: Ledger, height: int) -> DuplicateVoteEvidence:
    v = VALS[1]
    a = Vote(PREVOTE, height, 0, b"\x01" * 32, v.pub).signed(CHAIN, v)
    b = Vote(PREVOTE, height, 0, b"\x02" * 32, v.pub).signed(CHAIN, v)
    return DuplicateVoteEvidence(a, b)


def test_evidence_older_than_evidence_max_age_is_refused(ledger: Ledger) -> None:
    for _ in range(8):
        commit(ledger, naive_block(ledger, []))
    old = _old_evidence(ledger, 2)  # 9 − 2 > evidence_max_age (5)
    with pytest.raises(InvalidEvidence, match="evidence_max_age"):
        ledger.add_evidence(old)
    assert not ledger.validate_block(naive_block(ledger, [], evidence=[old]))
    fresh = _old_evidence(ledger, 7)
    assert ledger.add_evidence(fresh)
    block = naive_block(ledger, [], evidence=[fresh])
    assert ledger.validate_block(block)
    assert not ledger.validate_block(naive_block(ledger, [], evidence=[fresh, fresh]))
    commit(ledger, block)
    assert not ledger.validate_block(naive_block(ledger, [], evidence=[fresh]))  # already committed


def test_evidence_bytes_are_bounded_and_limits_come_before_decoding(ledger: Ledger) -> None:
    """A proposer may not fill a block with (valid) evidence of its own double votes at many
    rounds: evidence takes at most max_block_bytes / 16. And a block of very many txs is refused
    on its count before any of them is decoded."""
    for _ in range(3):
        commit(ledger, naive_block(ledger, []))
    v = VALS[0]
    evs = []
    for r in range(800):  # ~370 bytes each: ~290 KB > 4 MiB / 16
        a = Vote(PREVOTE, 3, r, b"\x01" * 32, v.pub).signed(CHAIN, v)
        b = Vote(PREVOTE, 3, r, b"\x02" * 32, v.pub).signed(CHAIN, v)
        evs.append(DuplicateVoteEvidence(a, b))
    with pytest.raises(Exception, match="bytes of evidence"):
        ledger.check_block(naive_block(ledger, [], evidence=evs))
    assert ledger.validate_block(naive_block(ledger, [], evidence=evs[:100]))
    many = naive_block(ledger, [])
    flood = Block(many.header, tuple(b"\xc1" for _ in range(2001)), (), many.last_commit)
    t = time.perf_counter()
    with pytest.raises(Exception, match="max_block_txs"):
        ledger.check_block(flood)
    assert time.perf_counter() - t < 0.5


def test_own_proposal_is_not_executed_twice_but_a_byte_changed_copy_is_checked(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """check_block reuses propose_block's execution only for the very same bytes: a copy with
    the same header (same block id: txids leave out `auth`) but a garbage cosignature is
    checked from scratch and refused."""
    import ads_ledger.node.ledger as ledger_mod

    user = SigningKey.generate()
    honest = _tx(user, 1)
    ledger.host = StaticHost([honest])
    block = ledger.propose_block(1, 0, T0 + 1000, VALS[0].pub, None)
    assert block.txs == (honest,)
    runs = []
    real = ledger_mod.execute_block
    monkeypatch.setattr(ledger_mod, "execute_block", lambda *a, **k: runs.append(1) or real(*a, **k))
    ledger.check_block(block)
    assert runs == []  # our own proposal: checked and executed when built
    forged = forge(honest, [[user.pub, parse_envelope(honest).auth[0][1]], [GOV[1].pub, b"\x00" * 64]])
    copy = Block(block.header, (forged,), block.evidence, block.last_commit)
    assert copy.block_id() == block.block_id()
    assert not ledger.validate_block(copy)
    # a bare assemble (what the Byzantine kit uses) is never trusted as checked
    bad = naive_block(ledger, [_tx(user, 5)])
    assert not ledger.validate_block(bad)
    assert honest in ledger._verified  # the proposer verified it while building
    commit(ledger, block)
    assert honest not in ledger._verified  # committed: its cache entry goes


def test_cached_parse_is_used_only_for_equal_bytes(ledger: Ledger) -> None:
    """The intake's parse (note_verified) is reused by a block holding equal bytes — a new
    bytes object, as a block decoded from the network carries — and a block check of an
    uncached tx fills the cache only after its signatures and body shape passed."""
    user = SigningKey.generate()
    raw = _tx(user, 1)
    env = parse_envelope(raw)
    ledger.note_verified(env)
    copy = bytes(bytearray(raw))
    assert copy is not raw and ledger._verified.get(copy) == (env, env.txid(CHAIN))
    block = naive_block(ledger, [copy])
    assert ledger.validate_block(block)
    other = _tx(SigningKey.generate(), 1)
    assert ledger._verified.get(other) is None
    bad_sig = forge(other, [[parse_envelope(other).signer, b"\x22" * 64]])
    assert not ledger.validate_block(naive_block(ledger, [bad_sig]))
    assert ledger._verified.get(bad_sig) is None
    assert ledger.validate_block(naive_block(ledger, [other]))
    assert other in ledger._verified
