"""Blocks stored in parts (storage/blockparts.py): the bytes read back are those committed,
whatever the block carries; stores of the older layout (whole blocks) still read; and
`[storage] keep_blocks` drops old bodies in bounded batches while headers and commits stay."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.merkle import list_root
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Block, Commit, DuplicateVoteEvidence, Header, Vote
from ads_ledger.node import ledger as ledger_mod
from ads_ledger.node.api.backend import HeightUnavailable
from ads_ledger.node.backend import NodeApi
from ads_ledger.node.block_sync import BlockSync
from ads_ledger.node.ledger import Ledger
from ads_ledger.node.storage import blockparts
from ads_ledger.node.storage import schema as S
from ads_ledger.node.storage.store import Store
from ads_ledger.state.envelope import make_envelope, parse_envelope
from ads_ledger.state.genesis import Genesis

CHAIN = "block-storage-test"
T0 = int(time.time() * 1000) - 10**7
VALS = [SigningKey(bytes([0x61 + i]) * 32) for i in range(4)]
USER = SigningKey(b"\x77" * 32)


def genesis() -> Genesis:
    return Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS],
                   members=[USER.pub], threshold=1, anchors=[],
                   params={"evidence_max_age": 50})  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def led(path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(path, genesis())
    yield ledger
    ledger.close()


def commit_of(led: Ledger, block: Block, signers: list[SigningKey] = VALS, rnd: int = 0) -> Commit:
    h = block.header.height
    votes = [Vote(PRECOMMIT, h, rnd, block.block_id(), v.pub).signed(CHAIN, v) for v in signers]
    return Commit.from_votes(led.validators_at(h), votes)


_nonce = [0]


def tx() -> bytes:
    """A transaction with a fresh txid (executed without checks; its result does not matter)."""
    _nonce[0] += 1
    return make_envelope(CHAIN, "gov", USER, _nonce[0], {"action": "members.set",
                                                        "args": {"members": [USER.pub], "threshold": 1}})


def add(led: Ledger, txs: Sequence[bytes] = (), evidence: Sequence[DuplicateVoteEvidence] = (),
        last_commit: Commit | None | str = "stored") -> Block:  # fmt: skip
    h = led.height + 1
    lc = led.commit_at(h - 1) if last_commit == "stored" else last_commit
    assert not isinstance(lc, str)
    block = led.assemble(h, T0 + 1000 * h, VALS[0].pub, lc, txs, evidence)
    c = commit_of(led, block, VALS[h % 2:])  # three or four precommits
    led.commit_block(block, c)
    COMMITS[(led.chain_id, block.block_id())] = c.to_obj()
    return block


COMMITS: dict[tuple[str, bytes], object] = {}  # (chain, block id) → the commit stored with it


def double_vote(h: int) -> DuplicateVoteEvidence:
    v = VALS[2]
    return DuplicateVoteEvidence(Vote(PREVOTE, h, 0, b"\x01" * 32, v.pub).signed(CHAIN, v),
                                 Vote(PREVOTE, h, 0, b"\x02" * 32, v.pub).signed(CHAIN, v))  # fmt: skip


def build_chain(led: Ledger) -> dict[int, bytes]:
    """40 blocks: empty ones, with txs, with evidence, and with a last commit that is the
    stored one, a subset of it, or of another round; {height: block bytes committed}."""
    out: dict[int, bytes] = {}
    for i in range(40):
        h = led.height + 1
        txs = [tx() for _ in range(i % 4)] if i % 3 else []
        ev = [double_vote(h - 1)] if i in (7, 21) else []
        lc: Commit | None | str = "stored"
        if h > 1 and i % 5 == 1:  # three of the four precommits the stored commit has
            prev = led.block(h - 1)
            assert prev is not None
            lc = commit_of(led, prev, VALS[1:])
        elif h > 1 and i % 5 == 3:  # precommits of a later round
            prev = led.block(h - 1)
            assert prev is not None
            lc = commit_of(led, prev, VALS, rnd=2)
        out[h] = add(led, txs, ev, lc).encode()
    return out


def check_chain(led: Ledger, blocks: dict[int, bytes]) -> None:
    for h, raw in blocks.items():
        assert led.block_bytes(h) == raw, h
        commit = led.commit_at(h)
        assert commit is not None and led.sync_bytes(h) == (raw, codec.encode(commit.to_obj()))
        b = led.block(h)
        assert b is not None and b.encode() == raw
        assert b.block_id() == Block.decode(raw).block_id()
        hdr = led.header(h)
        assert hdr is not None and hdr.encode() == Block.decode(raw).header.encode()
        c = led.commit_at(h)
        assert c is not None and codec.encode(c.to_obj()) == codec.encode(COMMITS[(CHAIN, hdr.block_id())])


def test_blocks_read_back_byte_identical_and_empty_ones_cost_a_header(led: Ledger, path: Path) -> None:
    blocks = build_chain(led)
    assert any(Block.decode(r).txs for r in blocks.values())
    assert any(Block.decode(r).evidence for r in blocks.values())
    check_chain(led, blocks)
    sizes = led.store.table_sizes()
    with_body = sum(1 for r in blocks.values() if Block.decode(r).txs or Block.decode(r).evidence)
    assert sizes[S.BODIES] == with_body < len(blocks)
    assert sizes[S.RESULTS] == sum(1 for r in blocks.values() if Block.decode(r).txs)
    empty = [h for h, r in blocks.items() if not Block.decode(r).txs and not Block.decode(r).evidence]
    for h in [h for h in empty[1:] if (h - 1) % 5 != 3]:  # not those of a commit of another round
        row = led.store.read(S.BLOCKS, S.height_key(h))
        assert row is not None
        # the header's hashes and little else: the last commit is not stored a second time
        assert len(row) < len(Block.decode(blocks[h]).header.encode()), h
    for h in blocks:  # a commit keeps its round, indices and signatures; the rest is the header's
        c = led.commit_at(h)
        raw = led.store.read(S.COMMITS, S.height_key(h))
        assert c is not None and raw is not None and len(raw) < len(codec.encode(c.to_obj())) - 50
    led.close()
    again = Ledger.open(path, genesis())
    try:
        check_chain(again, blocks)
        b = add(again, [tx()])  # the chain goes on after a restart
        blocks[b.header.height] = b.encode()
        check_chain(again, blocks)
    finally:
        again.close()


def to_older_layout(led: Ledger, heights: list[int]) -> None:
    """Rewrite blocks as a store written before the split holds them: whole blocks in
    `blocks`, commit maps in `commits`, a results record for every block, no `bodies`."""
    raws = {h: led.block_bytes(h) for h in heights}
    commits = {h: led.commit_at(h) for h in heights}
    env, dbs = led.store._env, led.store._dbs
    with env.begin(write=True) as txn:
        for h, raw in raws.items():
            c = commits[h]
            assert raw is not None and c is not None
            txn.put(S.height_key(h), raw, db=dbs[S.BLOCKS])
            txn.put(S.height_key(h), codec.encode(c.to_obj()), db=dbs[S.COMMITS])
            txn.delete(S.height_key(h), db=dbs[S.BODIES])
            if txn.get(S.height_key(h), db=dbs[S.RESULTS]) is None:
                txn.put(S.height_key(h), codec.encode([]), db=dbs[S.RESULTS])


def test_a_store_of_the_older_layout_reads_and_goes_on(led: Ledger, path: Path) -> None:
    blocks = build_chain(led)
    to_older_layout(led, list(blocks))
    with led.store._env.begin(write=True) as txn:
        txn.put(S.META_FORMAT, S.u64(1), db=led.store._dbs[S.META])
    assert led.store.table_sizes()[S.BODIES] == 0
    check_chain(led, blocks)
    led.close()
    again = Ledger.open(path, genesis())
    try:
        # marked format 2 when opened: a node of format 1 now refuses it instead of misreading
        assert again.store.meta_int(S.META_FORMAT) == 2
        check_chain(again, blocks)
        assert again.last_info() is not None and again.last_info().block_id == Block.decode(  # type: ignore[union-attr]
            blocks[again.height]).block_id()
        for _ in range(3):  # block 41's last commit refers to the commit of a whole block 40
            b = add(again, [tx()])
            blocks[b.header.height] = b.encode()
        check_chain(again, blocks)
    finally:
        again.close()


def test_pruning_drops_bodies_keeps_headers_and_commits_and_survives_a_restart(path: Path) -> None:
    led = Ledger.open(path, genesis(), keep_blocks=10)
    blocks = build_chain(led)
    txids = {h: list(Block.decode(r).txs) for h, r in blocks.items()}
    top = led.height
    assert led.bodies_from() == top - 10 + 1
    for h in range(1, top + 1):
        assert led.header(h) is not None and led.commit_at(h) is not None  # every height
        if h < led.bodies_from() and (Block.decode(blocks[h]).txs or Block.decode(blocks[h]).evidence):
            assert led.block(h) is None and led.block_bytes(h) is None and led.body_pruned(h)
            assert led.sync_bytes(h) is None  # block sync cannot serve it
            assert led.store.read(S.BODIES, S.height_key(h)) is None
            assert led.store.read(S.RESULTS, S.height_key(h)) is None
        else:
            assert led.block_bytes(h) == blocks[h] and not led.body_pruned(h)
    # the tx index stays: a pruned transaction is still known as committed (no replay)
    some = next(t for h in range(1, led.bodies_from()) for t in txids[h])
    assert led.tx_location(parse_envelope(some).txid(CHAIN)) is not None
    # the API: the body answers 410 height_pruned, the header and commit stay
    api = NodeApi(SimpleNamespace(ledger=led, chain_id=CHAIN, node_key=VALS[0], sync=BlockSync(),
                                  intake=SimpleNamespace(committed_txids=(0, []))))  # fmt: skip
    pruned = next(h for h in range(1, led.bodies_from()) if Block.decode(blocks[h]).txs)
    with pytest.raises(HeightUnavailable) as e:
        api.get_block(pruned)
    assert e.value.reason == "pruned"
    assert api.get_block(top + 5) is None  # not committed: 404, as before
    assert api.get_commit(1) is not None and api.get_block(top) is not None
    with pytest.raises(HeightUnavailable):
        api.get_tx(parse_envelope(some).txid(CHAIN))
    led.close()
    again = Ledger.open(path, genesis(), keep_blocks=10)
    try:
        assert again.bodies_from() == top - 10 + 1
        for _ in range(5):
            b = add(again)
            blocks[b.header.height] = b.encode()
        assert again.bodies_from() == again.height - 10 + 1
        for h in range(again.bodies_from(), again.height + 1):
            assert again.block_bytes(h) == blocks[h]
        for h in range(1, again.height + 1):
            assert again.header(h) is not None and again.commit_at(h) is not None
    finally:
        again.close()
    # keep_blocks = 0 again: nothing more is pruned, what is gone stays gone
    full = Ledger.open(path, genesis())
    try:
        before = full.bodies_from()
        add(full)
        assert full.bodies_from() == before and full.block(pruned) is None
    finally:
        full.close()


def test_pruning_goes_in_bounded_batches_and_cuts_older_layout_blocks(path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ledger_mod, "PRUNE_HEIGHTS", 16)
    led = Ledger.open(path, genesis())
    blocks = build_chain(led)
    to_older_layout(led, list(blocks)[:30])
    led.close()
    led = Ledger.open(path, genesis(), keep_blocks=2)
    try:
        add(led)
        assert led.bodies_from() == 1 + 16  # one batch per block
        for h in range(1, 17):
            row = led.store.read(S.BLOCKS, S.height_key(h))
            assert row is not None and row[:1] == b"\x92"  # cut down to header and commit ref
            old = Block.decode(blocks[h])
            assert led.header(h) == old.header
            assert led.block(h) is None if old.txs or old.evidence else led.block_bytes(h) == blocks[h]
        assert led.block_bytes(17) == blocks[17]  # a whole block above the horizon: untouched
        add(led)
        add(led)
        assert led.bodies_from() == led.height - 2 + 1
        assert led.store.table_sizes()[S.BODIES] <= 2
        for h in range(1, led.height + 1):
            assert led.header(h) is not None and led.commit_at(h) is not None
    finally:
        led.close()


def test_pruning_is_in_the_blocks_own_transaction(path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A commit that fails (as a kill -9 before LMDB's commit) leaves neither the block nor
    any pruning behind: the bodies and the horizon are those before it."""
    led = Ledger.open(path, genesis())
    build_chain(led)
    led.close()
    led = Ledger.open(path, genesis(), keep_blocks=5)
    try:
        bodies = led.store.table_sizes()[S.BODIES]
        top = led.height

        def boom(self, txn, latest):  # type: ignore[no-untyped-def]
            raise OSError("power cut")

        monkeypatch.setattr(Store, "_prune", boom)
        with pytest.raises(OSError):
            add(led)
        monkeypatch.undo()
        assert led.height == top and led.bodies_from() == 1
        assert led.store.meta_int(S.META_BODIES_FROM) == 0
        assert led.store.table_sizes()[S.BODIES] == bodies
        add(led)
        assert led.bodies_from() > 1
    finally:
        led.close()


def test_keep_blocks_is_a_storage_setting(tmp_path: Path) -> None:
    from ads_ledger.node.config import ConfigError, NodeConfig, load_config, write_config

    cfg = NodeConfig(home=tmp_path)
    assert cfg.keep_blocks == 0  # default: every body kept, as before
    cfg.keep_blocks = 5000
    assert "keep_blocks = 5000" in write_config(cfg).read_text()
    assert load_config(tmp_path).keep_blocks == 5000
    (tmp_path / "config.toml").write_text("[storage]\nkeep_blocks = -1\n")
    with pytest.raises(ConfigError, match="keep_blocks"):
        load_config(tmp_path)


def test_a_store_of_an_unknown_format_is_refused(path: Path) -> None:
    Store.open(path).close()
    store = Store.open(path)
    with store._env.begin(write=True) as txn:
        txn.put(S.META_FORMAT, S.u64(3), db=store._dbs[S.META])
    store.close()
    with pytest.raises(S.SchemaError, match="store format 3"):
        Store.open(path)


# ------------------------------------------------------------------ blockparts alone, generated

_h32 = st.binary(min_size=32, max_size=32)
_sig = st.binary(min_size=64, max_size=64)


@st.composite
def block_and_prev(draw: st.DrawFn) -> tuple[Block, Commit | None, str]:
    chain = draw(st.sampled_from([CHAIN, "other-chain"]))
    height = draw(st.integers(1, 2**40))
    txs = tuple(draw(st.lists(st.binary(min_size=1, max_size=40), max_size=3)))
    evidence = tuple(double_vote(max(1, height - 1)) for _ in range(draw(st.integers(0, 1))))
    prev_id = draw(_h32)
    prev = lc = None
    if height > 1:
        sigs = draw(st.dictionaries(st.integers(0, 20), _sig, min_size=1, max_size=5))
        prev = Commit(height - 1, draw(st.integers(0, 3)), prev_id, tuple(sorted(sigs.items())))
        kind = draw(st.sampled_from(["same", "subset", "other_sig", "other_round", "other_block", "no_prev"]))
        pairs = list(prev.sigs)
        if kind == "subset":
            pairs = pairs[: draw(st.integers(1, len(pairs)))]
        elif kind == "other_sig":
            pairs[0] = (pairs[0][0], draw(_sig))
        lc = Commit(prev.height, prev.round + (kind == "other_round"), draw(_h32) if kind == "other_block" else
                    prev_id, tuple(pairs))  # fmt: skip
        if kind == "no_prev":
            prev = None
    vals = draw(_h32)
    header = Header(chain_id=draw(st.sampled_from([chain, CHAIN])), height=height, time=draw(st.integers(0, 2**50)),
                    prev=prev_id if height > 1 else bytes(32),
                    txs_root=draw(st.sampled_from([list_root([]), list_root(list(txs)), bytes(32)])),
                    evidence_root=draw(st.sampled_from([list_root([]), bytes(32)])), state_root=draw(_h32),
                    validators=vals, next_validators=draw(st.sampled_from([vals, bytes(32)])), proposer=draw(_h32),
                    last_commit=bytes(32) if lc is None else lc.hash())  # fmt: skip
    return Block(header, txs, evidence, lc), prev, chain


@settings(max_examples=300, deadline=None)
@given(block_and_prev())
def test_split_then_join_gives_the_same_bytes(case: tuple[Block, Commit | None, str]) -> None:
    """Whatever the block holds and however its last commit relates to the stored one."""
    block, prev, chain = case
    row, body = blockparts.split(block, prev, chain)
    height = block.header.height
    if blockparts.is_whole(row):
        assert row == block.encode() and block.header.chain_id != chain
        return
    # a body the header does not announce (as no committed block has) is not read back
    if blockparts.has_body(block.header) != bool(block.txs or block.evidence):
        return
    asked: list[bytes] = []

    def prev_of(block_id: bytes) -> Commit | None:
        asked.append(block_id)
        return prev

    back = blockparts.join(row, body, prev_of, chain, height)
    assert back.encode() == block.encode() and back.block_id() == block.block_id()
    assert blockparts.header_of(row, chain, height) == block.header
    assert all(a == block.header.prev for a in asked)
    c = block.last_commit or Commit(height, 0, block.block_id(), ((0, bytes(64)),))
    rec = blockparts.commit_record(c, block.header, block.block_id())
    bid = block.block_id() if blockparts.commit_needs_header(rec) else None
    assert blockparts.commit_from_record(rec, height, bid) == c
