"""Block sync's batch path (`Ledger.apply_synced_batch`): many fetched blocks in one store
transaction, each still checked in full; a bad commit or block in a batch is refused, and a
batch that fails midway leaves nothing of itself behind."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, Block, Commit, Vote
from ads_ledger.node.ledger import Ledger, StaticHost
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.testing import device_attestation, test_device_ca
from ads_ledger.testing.trustlist import issue_attestation, make_trust_list

CHAIN = "sync-batch-test"
T0 = int(time.time() * 1000)
VALS = [SigningKey(bytes([i + 1]) * 32) for i in range(3)]
OWNER, DEVICE = SigningKey(b"\x21" * 32), SigningKey(b"\x22" * 32)

Pair = tuple[Block, Commit]


def commit_for(block: Block, ledger: Ledger, signers: list[SigningKey] = VALS) -> Commit:
    votes = [Vote(PRECOMMIT, block.header.height, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in signers]
    return Commit.from_votes(ledger.validators_at(block.header.height), votes)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Genesis, list[Pair], list[bytes]]:
    """A source chain of 8 blocks (block 2 carries transactions): its (block, commit) pairs
    and the state root after each."""
    trust = make_trust_list()
    gov = SigningKey(b"\x07" * 32)
    g = Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS], members=[gov.pub],
                threshold=1, anchors=trust.anchors_der(), device_anchors=test_device_ca().anchors_der())  # fmt: skip
    src = Ledger.open(tmp_path_factory.mktemp("src") / "db", g)
    attest = issue_attestation(trust, CHAIN, OWNER.pub, issued_at=T0, expires_at=T0 + 10**9)
    txs = {2: [make_envelope(CHAIN, "attest", OWNER, 1, attest),
               make_envelope(CHAIN, "cp.propose", DEVICE, 1, {"owner": OWNER.pub,
                                                             "device": device_attestation(DEVICE.pub)}),
               make_envelope(CHAIN, "cp.accept", OWNER, 2, {"cp": DEVICE.pub})]}  # fmt: skip
    pairs: list[Pair] = []
    for h in range(1, 9):
        assert isinstance(src.host, StaticHost)
        src.host.txs = txs.get(h, [])
        block = src.propose_block(h, 0, T0 + 1000 * h, VALS[h % 3].pub, src.commit_at(h - 1))
        commit = commit_for(block, src)
        src.commit_block(block, commit)
        pairs.append((block, commit))
    assert len(pairs[1][0].txs) == 3
    roots = [src.store.root(h) for h in range(1, 9)]
    src.close()
    return g, pairs, roots


def test_a_batch_stores_the_chain_as_committing_each_block_does(tmp_path: Path, chain) -> None:  # type: ignore[no-untyped-def]
    g, pairs, roots = chain
    ledger = Ledger.open(tmp_path / "db", g)
    out = ledger.apply_synced_batch(list(reversed(pairs[:5])))  # any order
    assert [b.header.height for b, _ in out.applied] == [1, 2, 3, 4, 5] and out.refused == []
    out = ledger.apply_synced_batch(pairs[3:])  # 4 and 5 again: already decided, skipped
    assert [b.header.height for b, _ in out.applied] == [6, 7, 8] and out.refused == []
    assert ledger.height == 8 and ledger.store.root() == roots[-1]
    assert ledger.last_info().block_id == pairs[-1][0].block_id()  # type: ignore[union-attr]
    priorities = ledger.priorities_at_next().to_obj()
    ledger.close()
    again = Ledger.open(tmp_path / "db", g)
    assert again.height == 8 and [again.block(h) for h in range(1, 9)] == [b for b, _ in pairs]
    assert [again.commit_at(h) for h in range(1, 9)] == [c for _, c in pairs]
    assert again.tx_result(2, 2)["code"] == "ok"  # type: ignore[index]
    assert again.priorities_at_next().to_obj() == priorities
    again.close()


@pytest.mark.parametrize("chunk", [16, 1])  # 1: the signatures are pre-checked on the thread pool
def test_a_bad_commit_in_a_batch_is_refused_and_an_honest_copy_still_applies(tmp_path: Path, chain, chunk,  # type: ignore[no-untyped-def]
                                                                               monkeypatch) -> None:  # fmt: skip
    import ads_ledger.node.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "_SIG_CHUNK", chunk)
    g, pairs, roots = chain
    ledger = Ledger.open(tmp_path / "db", g)
    b3, c3 = pairs[2]
    garbage = Commit(3, 0, c3.block, tuple((i, bytes(64)) for i in range(3)))
    outsiders = [SigningKey(bytes([0x40 + i]) * 32) for i in range(3)]  # well signed, not the set
    votes = [Vote(PRECOMMIT, 3, 0, b3.block_id(), k.pub).signed(CHAIN, k) for k in outsiders]
    foreign = Commit(3, 0, b3.block_id(), tuple((i, v.sig) for i, v in enumerate(votes)))
    weak = Commit(3, 0, c3.block, c3.sigs[:2])  # 20 of 30: not > 2/3
    other = Commit(3, 0, pairs[3][0].block_id(), c3.sigs)  # for another block
    batch = [*pairs[:2], (b3, garbage), (b3, foreign), (b3, weak), (b3, other), *pairs[2:6]]
    out = ledger.apply_synced_batch(batch)
    assert [why.what for _, _, why in out.refused] == ["commit"] * 4
    assert [b.header.height for b, _ in out.applied] == [1, 2, 3, 4, 5, 6]
    assert ledger.height == 6 and ledger.store.root() == roots[5]
    ledger.close()


def test_a_bad_block_with_a_valid_commit_is_refused_and_ends_the_run(tmp_path: Path, chain) -> None:  # type: ignore[no-untyped-def]
    g, pairs, roots = chain
    ledger = Ledger.open(tmp_path / "db", g)
    ledger.apply_synced_batch(pairs[:1])
    b2, _ = pairs[1]
    bads = [
        Block(replace(b2.header, state_root=b"\x01" * 32), b2.txs, b2.evidence, b2.last_commit),  # re-execution
        Block(b2.header, b2.txs[:2], b2.evidence, b2.last_commit),  # txs_root
        Block(b2.header, b2.txs, b2.evidence, pairs[1][1]),  # last_commit of another height
    ]
    # each signed by the real validators: only the block's own checks can refuse it
    out = ledger.apply_synced_batch([(bad, commit_for(bad, ledger)) for bad in bads] + pairs[2:5])
    assert [why.what for _, _, why in out.refused] == ["block"] * 3
    assert out.applied == [] and ledger.height == 1 and ledger.store.root() == roots[0]
    out = ledger.apply_synced_batch(pairs[1:])  # the real chain still applies afterwards
    assert len(out.applied) == 7 and ledger.store.root() == roots[-1]
    ledger.close()


def test_a_batch_failing_midway_leaves_nothing_of_itself(tmp_path: Path, chain, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    g, pairs, roots = chain
    ledger = Ledger.open(tmp_path / "db", g)
    ledger.apply_synced_batch(pairs[:2])
    real = Ledger.commit_block
    calls = []

    def failing(self: Ledger, block: Block, commit: Commit) -> None:
        calls.append(block.header.height)
        if len(calls) == 3:
            raise OSError("disk gone")  # after two blocks were written in the batch
        real(self, block, commit)

    monkeypatch.setattr(Ledger, "commit_block", failing)
    with pytest.raises(OSError):
        ledger.apply_synced_batch(pairs[2:])
    monkeypatch.undo()
    assert calls == [3, 4, 5]
    assert ledger.height == 2 and ledger.store.root() == roots[1]
    assert ledger.last_info().block_id == pairs[1][0].block_id()  # type: ignore[union-attr]
    assert ledger.commit_at(3) is None and ledger.block(3) is None
    out = ledger.apply_synced_batch(pairs[2:])
    assert len(out.applied) == 6 and ledger.store.root() == roots[-1]
    ledger.close()
    again = Ledger.open(tmp_path / "db", g)
    assert again.height == 8 and again.store.root() == roots[-1]
    again.close()


def test_served_commit_messages_splice_the_stored_bytes_canonically(tmp_path: Path, chain) -> None:  # type: ignore[no-untyped-def]
    from ads_ledger.consensus.messages import CommitMessage, message_from_obj
    from ads_ledger.node.daemon import commit_message_plaintext
    from ads_ledger.node.p2p.framing import decode_message, encode_message

    g, pairs, _ = chain
    ledger = Ledger.open(tmp_path / "db", g)
    ledger.apply_synced_batch(pairs)
    for h in (1, 2, 8):  # block 2 carries txs
        raw, commit = ledger.block_bytes(h), ledger.commit_bytes(h)
        assert raw is not None and commit is not None
        assert ledger.sync_bytes(h) == (raw, commit)  # what block sync serves
        spliced = commit_message_plaintext(raw, commit)
        assert spliced == encode_message("commit", CommitMessage(*pairs[h - 1]).to_obj())
        msg = decode_message(spliced)  # and the receiver's canonical checks accept it
        assert msg.type == "commit"
        parsed = message_from_obj(msg.body)
        assert isinstance(parsed, CommitMessage) and (parsed.block, parsed.commit) == pairs[h - 1]
    ledger.close()
