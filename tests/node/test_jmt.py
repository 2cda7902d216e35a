"""The pure tree: history independence, canonical layout, proofs, node bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.core.crypto import H
from ads_ledger.core.merkle import PLACEHOLDER, leaf_hash, node_hash, verify_proof
from ads_ledger.node.storage.jmt import MemoryTree, MissingNode, apply_writes, prove
from ads_ledger.node.storage.jmt_node import Child, InternalNode, LeafNode, decode_node, encode_node
from ads_ledger.node.storage.schema import SchemaError

keys = st.binary(min_size=1, max_size=3)
batches = st.lists(
    st.dictionaries(keys, st.one_of(st.none(), st.binary(max_size=4)), max_size=25),
    min_size=1,
    max_size=6,
)


def naive_root(items: dict[bytes, bytes]) -> bytes:
    """The spec's binary tree, written the obvious recursive way (independent of jmt.py)."""

    def bit(kh: bytes, i: int) -> int:
        return (kh[i >> 3] >> (7 - (i & 7))) & 1

    def sub(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not leaves:
            return PLACEHOLDER
        if len(leaves) == 1:
            return leaf_hash(*leaves[0])
        left = [x for x in leaves if not bit(x[0], depth)]
        right = [x for x in leaves if bit(x[0], depth)]
        return node_hash(sub(left, depth + 1), sub(right, depth + 1))

    return sub([(H(k), H(v)) for k, v in items.items()], 0)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_root_depends_only_on_content(seq: list[dict[bytes, bytes | None]]) -> None:
    tree = MemoryTree()
    final: dict[bytes, bytes] = {}
    for batch in seq:
        tree.update(batch)
        for k, v in batch.items():
            if v is None:
                final.pop(k, None)
            else:
                final[k] = v
    fresh = MemoryTree()
    fresh.update(final)
    assert tree.root() == fresh.root() == naive_root(final)
    # the layout is canonical too: an internal node exactly where >= 2 leaves share a prefix
    assert tree.node_count() == fresh.node_count()
    for k in list(final)[:10] + [b"absent-1", b"absent-2"]:
        proof = tree.prove(k)
        assert proof == fresh.prove(k)
        assert verify_proof(tree.root(), k, final.get(k), proof)


def test_empty_and_single() -> None:
    t = MemoryTree()
    assert t.root() == PLACEHOLDER
    assert t.prove(b"x").siblings == () and t.prove(b"x").leaf is None
    t.update({b"x": b"1"})
    assert t.root() == leaf_hash(H(b"x"), H(b"1"))
    assert t.update({b"x": None}) == PLACEHOLDER
    assert t.node_count() == 0
    assert t.update({b"gone": None}) == PLACEHOLDER


def test_noop_batch_writes_no_nodes() -> None:
    t = MemoryTree()
    t.update({b"a": b"1", b"b": b"2", b"c": b"3"})
    reader = t._nodes  # the in-memory node map
    from ads_ledger.node.storage.jmt import _DictReader

    up = apply_writes(_DictReader(reader), t._root_version, 99, {H(b"a"): H(b"1"), H(b"zz"): None})
    assert up.root_hash == t.root()
    assert up.new_nodes == {} and up.stale == []


def test_missing_node_is_typed() -> None:
    from ads_ledger.node.storage.jmt import _DictReader

    with pytest.raises(MissingNode):
        prove(_DictReader({}), 5, H(b"k"))


def test_node_bytes_roundtrip_and_rejects_garbage() -> None:
    leaf = LeafNode(H(b"k"), H(b"v"))
    assert decode_node(encode_node(leaf)) == leaf
    children: list[Child | None] = [None] * 16
    children[3] = Child(7, H(b"a"), True)
    children[15] = Child(2**40, H(b"b"), False)
    inode = InternalNode(tuple(children))
    back = decode_node(encode_node(inode))
    assert back == inode and back.hash() == inode.hash()
    for bad in [b"", b"\x01" + b"x" * 10, b"\x03" + b"x" * 64, encode_node(inode)[:-1], b"\x02\x00\x01\x00\x02"]:
        with pytest.raises(SchemaError):
            decode_node(bad)


slot_states = st.lists(st.sampled_from(["empty", "leaf", "inner"]), min_size=16, max_size=16)


def _arrays(states: list[str], salt: bytes) -> tuple[list[int], int, list[bytes | None]]:
    versions = [-1 if s == "empty" else 5 for s in states]
    leaves = sum(1 << i for i, s in enumerate(states) if s == "leaf")
    h: list[bytes | None] = [None] * 16 + [None if s == "empty" else H(salt + bytes([i])) for i, s in enumerate(states)]
    return versions, leaves, h


@settings(max_examples=200, deadline=None)
@given(slot_states, slot_states, st.sets(st.integers(0, 15)))
def test_with_children_rehashes_exactly_what_a_fresh_node_computes(
    before: list[str], after: list[str], changed: set[int]
) -> None:
    # slots not in `changed` keep their old child; the changed ones take the new state's
    new = [after[i] if i in changed else before[i] for i in range(16)]
    old = InternalNode.from_arrays(*_arrays(before, b"old"))
    old.hash()  # its ranges are computed: with_children reuses the ones above unchanged slots
    versions, leaves, h = old.arrays()
    nv, nl, nh = _arrays(new, b"new")
    for i in changed:
        versions[i], h[16 + i] = nv[i], nh[16 + i]
        leaves = leaves & ~(1 << i) | (nl & 1 << i)
    got = old.with_children(versions, leaves, h, changed)
    fresh = InternalNode.from_arrays(list(versions), leaves, [None] * 16 + h[16:])
    assert got.hashes() == fresh.hashes()
    assert got.lone() == fresh.lone()
    assert got.hash() == fresh.hash()
