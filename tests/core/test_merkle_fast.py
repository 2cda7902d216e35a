"""The inlined `verify_proof` and `list_root` answer exactly as the first, helper-based ones.

The reference functions below are the first implementation of DESIGN §5/§6 verification
(`bit`, `node_hash`, `leaf_hash` per level). Proofs are built for random keys and depths, then
broken in every way a hostile server could (wrong value, root, sibling, side, leaf, length).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.core.merkle import MAX_DEPTH, PLACEHOLDER, SparseProof, list_root, verify_proof

LEAF_TAG = b"JMT::LeafNode"
NODE_TAG = b"JMT::IntrnalNode"


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def ref_bit(key_hash: bytes, i: int) -> int:
    return (key_hash[i >> 3] >> (7 - (i & 7))) & 1


def ref_list_root(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return H(b"")
    level = [H(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = [H(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def ref_verify_proof(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> bool:
    depth = len(proof.siblings)
    if depth > MAX_DEPTH:
        return False
    kh = H(key)
    if value is not None:
        if proof.leaf is None or proof.leaf[0] != kh or proof.leaf[1] != H(value):
            return False
        h = H(LEAF_TAG + kh + proof.leaf[1])
    elif proof.leaf is None:
        h = PLACEHOLDER
    else:
        other = proof.leaf[0]
        if other == kh:
            return False
        if any(ref_bit(other, i) != ref_bit(kh, i) for i in range(depth)):
            return False
        h = H(LEAF_TAG + other + proof.leaf[1])
    for i in range(depth - 1, -1, -1):
        sib = proof.siblings[i]
        h = H(NODE_TAG + sib + h) if ref_bit(kh, i) else H(NODE_TAG + h + sib)
    return h == root


def root_of(kh: bytes, start: bytes, sibs: Sequence[bytes]) -> bytes:
    """The root a proof with these siblings implies for key hash `kh` and bottom hash `start`."""
    h = start
    for i in range(len(sibs) - 1, -1, -1):
        h = H(NODE_TAG + sibs[i] + h) if ref_bit(kh, i) else H(NODE_TAG + h + sibs[i])
    return h


def answer(fn: Callable[..., bool], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as e:  # the reference raises on some malformed in-memory proofs
        return type(e)


def same(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> Any:
    new = answer(verify_proof, root, key, value, proof)
    assert new == answer(ref_verify_proof, root, key, value, proof), (key, value, proof)
    return new


def flip_bit(b: bytes, i: int) -> bytes:
    return bytes(x ^ (0x80 >> (i & 7)) if j == i >> 3 else x for j, x in enumerate(b))


depths = st.one_of(st.integers(0, 40), st.sampled_from([0, 1, 7, 8, 9, 63, 64, 255, 256]))
sibling = st.one_of(st.binary(min_size=32, max_size=32), st.just(PLACEHOLDER))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), depths, st.data())
def test_inclusion_and_its_forgeries(key: bytes, value: bytes, depth: int, data: st.DataObject) -> None:
    sibs = tuple(data.draw(st.lists(sibling, min_size=depth, max_size=depth)))
    kh, vh = H(key), H(value)
    root = root_of(kh, H(LEAF_TAG + kh + vh), sibs)
    proof = SparseProof((kh, vh), sibs)
    assert same(root, key, value, proof) is True
    assert same(root, key, value + b"x", proof) is False
    assert same(root, key + b"x", value, proof) is False
    assert same(root, key, None, proof) is False  # present: no absence proof from it
    assert same(flip_bit(root, 5), key, value, proof) is False
    assert same(root, key, value, SparseProof(None, sibs)) is False
    if depth:
        i = data.draw(st.integers(0, depth - 1))
        bad = sibs[:i] + (flip_bit(sibs[i], 200),) + sibs[i + 1 :]
        assert same(root, key, value, SparseProof((kh, vh), bad)) is False
        assert same(root, key, value, SparseProof((kh, vh), sibs[:-1])) is False
        # the same siblings hashed on the other side of level i
        swapped = root_of(flip_bit(kh, i), H(LEAF_TAG + kh + vh), sibs)
        assert same(swapped, key, value, proof) is (swapped == root)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), depths, st.integers(0, 255), st.binary(min_size=32, max_size=32), st.data())
def test_absence_and_its_forgeries(key: bytes, depth: int, j: int, vh: bytes, data: st.DataObject) -> None:
    sibs = tuple(data.draw(st.lists(sibling, min_size=depth, max_size=depth)))
    kh = H(key)
    # an empty subtree on the key's path
    root = root_of(kh, PLACEHOLDER, sibs)
    assert same(root, key, None, SparseProof(None, sibs)) is True
    assert same(root, key, b"v", SparseProof(None, sibs)) is False
    # another leaf in the key's subtree: valid iff it shares the key's first `depth` bits
    for jj in {j, depth - 1, depth} & set(range(256)):  # the bits either side of the boundary
        other = flip_bit(kh, jj)
        root2 = root_of(kh, H(LEAF_TAG + other + vh), sibs)
        assert same(root2, key, None, SparseProof((other, vh), sibs)) is (jj >= depth)
    assert same(root2, key, None, SparseProof((kh, vh), sibs)) is False
    # leaf key hashes of a wrong length: the reference reads them bit by bit (and may raise)
    for odd in (other[:31], other + b"\x00", other[:1], b"", bytearray(other)):
        same(root_of(kh, H(LEAF_TAG + bytes(odd) + vh), sibs), key, None, SparseProof((odd, vh), sibs))  # type: ignore[arg-type]


def test_depth_bound_and_malformed_in_memory_proofs() -> None:
    kh = H(b"k")
    too_deep = SparseProof(None, (PLACEHOLDER,) * (MAX_DEPTH + 1))
    assert same(b"\x00" * 32, b"k", None, too_deep) is False
    full = (PLACEHOLDER,) * MAX_DEPTH
    assert same(root_of(kh, PLACEHOLDER, full), b"k", None, SparseProof(None, full)) is True
    same(b"\x00" * 32, b"k", None, SparseProof(None, ("x" * 32,)))  # type: ignore[arg-type]
    same(b"\x00" * 32, b"k", None, SparseProof(("x" * 32, b"v"), (PLACEHOLDER,)))  # type: ignore[arg-type]
    same(b"\x00" * 32, b"k", b"v", SparseProof((kh, "v"), ()))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_list_root_matches_reference(leaves: list[bytes]) -> None:
    assert list_root(leaves) == ref_list_root(leaves)


def test_list_root_known_values() -> None:
    assert list_root([]) == H(b"")
    assert list_root([b"a"]) == H(b"\x00a")
    ab = H(b"\x01" + H(b"\x00a") + H(b"\x00b"))
    assert list_root([b"a", b"b"]) == ab
    assert list_root([b"a", b"b", b"c"]) == H(b"\x01" + ab + H(b"\x00c"))
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 1000):
        leaves = [b"%d" % i for i in range(n)]
        assert list_root(leaves) == ref_list_root(leaves)
