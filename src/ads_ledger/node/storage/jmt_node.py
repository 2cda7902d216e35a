"""Jellyfish Merkle Tree nodes: the two node kinds, their bytes, and the binary hashing
inside a 16-ary internal node (DESIGN §5).

An internal node holds up to 16 children, one per nibble, and hashes as the 4-level binary
tree over them with the spec's rules: an empty range is PLACEHOLDER, a range holding exactly
one child that is a leaf is that leaf's hash, anything else is `node_hash(left, right)`.
Those rules make the 16-ary layout produce exactly the hashes of the binary sparse tree.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Iterable, NamedTuple

from ads_ledger.core.merkle import NODE_TAG, PLACEHOLDER, leaf_hash
from ads_ledger.node.storage.schema import SchemaError

__all__ = [
    "Child",
    "LeafNode",
    "InternalNode",
    "Node",
    "nibble",
    "encode_node",
    "decode_node",
]

_sha256 = hashlib.sha256
_U64 = struct.Struct(">Q").pack
_HEAD = struct.Struct(">BHH").pack  # kind, existence bitmap, leaf bitmap
_LEAF = 1
_INTERNAL = 2


def nibble(key_hash: bytes, i: int) -> int:
    """Nibble i (0..63) of a key hash, most significant first."""
    b = key_hash[i >> 1]
    return b & 15 if i & 1 else b >> 4


class Child(NamedTuple):
    """A parent's record of one child: the version its node was written at, and its hash."""

    version: int
    hash: bytes
    is_leaf: bool


class LeafNode:
    __slots__ = ("key_hash", "value_hash")

    def __init__(self, key_hash: bytes, value_hash: bytes) -> None:
        self.key_hash = key_hash
        self.value_hash = value_hash

    def hash(self) -> bytes:
        return leaf_hash(self.key_hash, self.value_hash)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LeafNode)
            and other.key_hash == self.key_hash
            and other.value_hash == self.value_hash
        )

    def __repr__(self) -> str:
        return f"LeafNode({self.key_hash.hex()[:8]}…)"


class InternalNode:
    """16 child slots. The binary range hashes inside the node are computed once and kept
    (nodes are immutable) in heap order: index 1 is the whole node, index i has children
    2i and 2i+1, and index 16+s is child slot s. `lone()[i]` is the slot of the only child
    under index i when that child is a leaf, else -1.

    Kept as flat arrays (child versions, leaf bitmap, hashes) so that decoding a node read
    from disk for a proof builds no per-child objects; `children` is made on demand."""

    __slots__ = ("_children", "_versions", "_leaves", "_h", "_lone", "_ranges_done")

    def __init__(self, children: tuple[Child | None, ...]) -> None:
        if len(children) != 16:
            raise ValueError("an internal node has 16 child slots")
        self._children: tuple[Child | None, ...] | None = children
        self._versions = [-1 if c is None else c.version for c in children]
        self._leaves = sum(1 << i for i, c in enumerate(children) if c is not None and c.is_leaf)
        h: list[bytes | None] = [None] * 32
        for i, c in enumerate(children):
            if c is not None:
                h[16 + i] = c.hash
        self._h = h
        self._lone: list[int] = []
        self._ranges_done = False

    @classmethod
    def from_arrays(cls, versions: list[int], leaves: int, h: list[bytes | None]) -> "InternalNode":
        """A node from child versions (-1: empty), the leaf bitmap, and a 32-entry list whose
        entries 16..31 are the child hashes (the list is kept and filled in)."""
        node = cls.__new__(cls)
        node._children = None
        node._versions = versions
        node._leaves = leaves
        node._h = h
        node._lone = []
        node._ranges_done = False
        return node

    @property
    def children(self) -> tuple[Child | None, ...]:
        c = self._children
        if c is None:
            h = self._h
            c = tuple(
                None if v < 0 else Child(v, h[16 + i], bool(self._leaves >> i & 1))  # type: ignore[arg-type]
                for i, v in enumerate(self._versions)
            )
            self._children = c
        return c

    def arrays(self) -> tuple[list[int], int, list[bytes | None]]:
        """Fresh copies of (child versions, leaf bitmap, hash list): entries 16..31 are the
        child hashes; 1..15 are this node's range hashes if computed (a node made from these
        arrays computes its ranges anew, or `with_children` keeps those still valid)."""
        return self._versions.copy(), self._leaves, self._h.copy()

    def with_children(self, versions: list[int], leaves: int, h: list[bytes | None],
                      changed: Iterable[int]) -> "InternalNode":  # fmt: skip
        """The node whose children are `versions`, `leaves` and `h[16:]` (this node's
        `arrays()` with the slots `changed` replaced; `h` is kept and filled in). When this
        node's range hashes are known, only the ranges above the changed slots are hashed
        again: at most 4 per changed slot instead of up to 15 per node."""
        node = InternalNode.from_arrays(versions, leaves, h)
        if not self._ranges_done:
            return node
        lone = self._lone.copy()
        dirty: set[int] = set()
        for s in changed:
            lone[16 + s] = s if leaves >> s & 1 else -1
            i = (16 + s) >> 1
            while i and i not in dirty:
                dirty.add(i)
                i >>= 1
        _rehash(h, lone, sorted(dirty, reverse=True))
        node._lone = lone
        node._ranges_done = True
        return node

    def child_version(self, slot: int) -> int:
        """The version the child in `slot` was written at (-1: empty slot)."""
        return self._versions[slot]

    def hashes(self) -> list[bytes | None]:
        """Range hashes in heap order (None: empty range)."""
        if not self._ranges_done:
            self._lone = _compute_ranges(self._h, self._leaves)
            self._ranges_done = True
        return self._h

    def lone(self) -> list[int]:
        self.hashes()
        return self._lone

    def hash(self) -> bytes:
        h = self.hashes()[1]
        return PLACEHOLDER if h is None else h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InternalNode) and other.children == self.children

    def __repr__(self) -> str:
        return f"InternalNode({[i for i, v in enumerate(self._versions) if v >= 0]})"


Node = LeafNode | InternalNode


def _compute_ranges(h: list[bytes | None], leaves: int) -> list[int]:
    """Fill h[1..15] from the child hashes in h[16..31]; return the lone-leaf slots."""
    lone = [-1] * 32
    for i in range(16):
        if leaves >> i & 1:
            lone[16 + i] = i
    _rehash(h, lone, range(15, 0, -1))  # every range, deepest first
    return lone


def _rehash(h: list[bytes | None], lone: list[int], indices: Iterable[int]) -> None:
    """Recompute the range hashes and lone-leaf slots at heap `indices`, deepest first."""
    sha = _sha256
    for i in indices:
        left = 2 * i
        lh = h[left]
        rh = h[left + 1]
        if lh is None:
            if rh is None:
                h[i] = None
                lone[i] = -1
                continue
            if lone[left + 1] >= 0:  # a lone leaf rises to the shallowest depth where it is alone
                h[i] = rh
                lone[i] = lone[left + 1]
                continue
            lh = PLACEHOLDER
        elif rh is None:
            if lone[left] >= 0:
                h[i] = lh
                lone[i] = lone[left]
                continue
            rh = PLACEHOLDER
        h[i] = sha(NODE_TAG + lh + rh).digest()  # merkle.node_hash, inlined: the hot loop
        lone[i] = -1


def encode_node(node: Node) -> bytes:
    """Leaf: 0x01 ‖ key_hash ‖ value_hash. Internal: 0x02 ‖ u16 existence bitmap ‖ u16 leaf
    bitmap ‖ per present child in slot order: version u64 ‖ hash(32)."""
    if isinstance(node, LeafNode):
        return b"\x01" + node.key_hash + node.value_hash
    exist = 0
    parts = [b""]  # the head goes first, once the existence bitmap is known
    h = node._h
    for i, v in enumerate(node._versions):
        if v >= 0:
            exist |= 1 << i
            parts.append(_U64(v) + h[16 + i])  # type: ignore[operator]
    parts[0] = _HEAD(_INTERNAL, exist, node._leaves)
    return b"".join(parts)


def decode_node(raw: bytes) -> Node:
    """Inverse of encode_node; SchemaError for bytes it could not have produced."""
    kind = raw[0] if raw else 0
    if kind == _LEAF:
        if len(raw) != 65:
            raise SchemaError("bad leaf node length")
        return LeafNode(bytes(raw[1:33]), bytes(raw[33:65]))
    if kind != _INTERNAL or len(raw) < 5:
        raise SchemaError("bad node kind")
    exist = int.from_bytes(raw[1:3], "big")
    leaves = int.from_bytes(raw[3:5], "big")
    if leaves & ~exist or len(raw) != 5 + 40 * bin(exist).count("1"):
        raise SchemaError("bad internal node layout")
    versions = [-1] * 16
    h: list[bytes | None] = [None] * 32
    pos = 5
    for i in range(16):
        if exist >> i & 1:
            versions[i] = int.from_bytes(raw[pos : pos + 8], "big")
            h[16 + i] = raw[pos + 8 : pos + 40]
            pos += 40
    return InternalNode.from_arrays(versions, leaves, h)
