"""Jellyfish Merkle Tree nodes: the two node kinds, their bytes, and the binary hashing
inside a 16-ary internal node (DESIGN §5).

An internal node holds up to 16 children, one per nibble, and hashes as the 4-level binary
tree over them with the spec's rules: an empty range is PLACEHOLDER, a range holding exactly
one child that is a leaf is that leaf's hash, anything else is `node_hash(left, right)`.
Those rules make the 16-ary layout produce exactly the hashes of the binary sparse tree.
"""

from __future__ import annotations

from typing import NamedTuple

from .merkle import PLACEHOLDER, leaf_hash, node_hash
from .schema import SchemaError

__all__ = [
    "Child",
    "LeafNode",
    "InternalNode",
    "Node",
    "Entry",
    "nibble",
    "encode_node",
    "decode_node",
]

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


class Entry(NamedTuple):
    """A range of child slots inside an internal node: its hash (None: empty) and, when the
    range holds exactly one child and it is a leaf, that child's slot (else -1)."""

    hash: bytes | None
    leaf_slot: int


_EMPTY = Entry(None, -1)


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
    """16 child slots; the binary range hashes are computed once and kept (nodes are immutable)."""

    __slots__ = ("children", "_levels")

    def __init__(self, children: tuple[Child | None, ...]) -> None:
        if len(children) != 16:
            raise ValueError("an internal node has 16 child slots")
        self.children = children
        self._levels: list[list[Entry]] | None = None

    def levels(self) -> list[list[Entry]]:
        """levels[L][i] covers slots [i·2^L, (i+1)·2^L); levels[4][0] is the whole node."""
        lv = self._levels
        if lv is None:
            lv = _compute_levels(self.children)
            self._levels = lv
        return lv

    def hash(self) -> bytes:
        h = self.levels()[4][0].hash
        return PLACEHOLDER if h is None else h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InternalNode) and other.children == self.children

    def __repr__(self) -> str:
        return f"InternalNode({[i for i, c in enumerate(self.children) if c is not None]})"


Node = LeafNode | InternalNode


def _compute_levels(children: tuple[Child | None, ...]) -> list[list[Entry]]:
    cur = [
        _EMPTY if c is None else Entry(c.hash, i if c.is_leaf else -1)
        for i, c in enumerate(children)
    ]
    levels = [cur]
    for _ in range(4):
        nxt: list[Entry] = []
        for j in range(0, len(cur), 2):
            left = cur[j]
            right = cur[j + 1]
            lh = left.hash
            rh = right.hash
            if lh is None:
                if rh is None:
                    nxt.append(_EMPTY)
                    continue
                if right.leaf_slot >= 0:
                    nxt.append(right)  # a lone leaf rises to the shallowest depth where it is alone
                    continue
                lh = PLACEHOLDER
            elif rh is None:
                if left.leaf_slot >= 0:
                    nxt.append(left)
                    continue
                rh = PLACEHOLDER
            nxt.append(Entry(node_hash(lh, rh), -1))
        levels.append(nxt)
        cur = nxt
    return levels


def encode_node(node: Node) -> bytes:
    """Leaf: 0x01 ‖ key_hash ‖ value_hash. Internal: 0x02 ‖ u16 existence bitmap ‖ u16 leaf
    bitmap ‖ per present child in slot order: version u64 ‖ hash(32)."""
    if isinstance(node, LeafNode):
        return b"\x01" + node.key_hash + node.value_hash
    exist = 0
    leaves = 0
    parts = []
    for i, c in enumerate(node.children):
        if c is not None:
            exist |= 1 << i
            if c.is_leaf:
                leaves |= 1 << i
            parts.append(c.version.to_bytes(8, "big"))
            parts.append(c.hash)
    return b"\x02" + exist.to_bytes(2, "big") + leaves.to_bytes(2, "big") + b"".join(parts)


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
    children: list[Child | None] = [None] * 16
    pos = 5
    for i in range(16):
        if exist >> i & 1:
            children[i] = Child(
                int.from_bytes(raw[pos : pos + 8], "big"),
                bytes(raw[pos + 8 : pos + 40]),
                bool(leaves >> i & 1),
            )
            pos += 40
    return InternalNode(tuple(children))
