"""Merkle hashing (DESIGN §5, §6, normative): RFC 6962 list roots and JMT-compatible
sparse Merkle proofs.

Verification lives here, free of storage, so the light client and the charge-point
agent share it with the node. The tree that builds proofs is `ads_ledger.node.storage.jmt`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from ads_ledger.core.crypto import H
from ads_ledger.core.errors import DecodeError

__all__ = [
    "PLACEHOLDER",
    "leaf_hash",
    "node_hash",
    "list_root",
    "SparseProof",
    "verify_proof",
    "bit",
]

PLACEHOLDER = b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
LEAF_TAG = b"JMT::LeafNode"
NODE_TAG = b"JMT::IntrnalNode"
MAX_DEPTH = 256

# SHA-256 states that have absorbed a prefix; `.copy()` them instead of concatenating bytes.
_LIST_LEAF = hashlib.sha256(b"\x00")
_LIST_NODE = hashlib.sha256(b"\x01")
_JMT_NODE = hashlib.sha256(NODE_TAG)


def leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return H(LEAF_TAG + key_hash + value_hash)


def node_hash(left: bytes, right: bytes) -> bytes:
    return H(NODE_TAG + left + right)


def bit(key_hash: bytes, i: int) -> int:
    """Bit i of a 256-bit path, most significant first."""
    return (key_hash[i >> 3] >> (7 - (i & 7))) & 1


def list_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash (MTH) of a list; SHA-256 of nothing for an empty list."""
    n = len(leaves)
    if n == 0:
        return H(b"")
    # Copying a hash already fed the prefix beats building prefix+data bytes for every node.
    leaf0, node1 = _LIST_LEAF.copy, _LIST_NODE.copy
    level = []
    for leaf in leaves:
        s = leaf0()
        s.update(leaf)
        level.append(s.digest())
    # Pairwise from the left, promoting an odd last node: the same tree as RFC 6962's
    # split at the largest power of two below n.
    while len(level) > 1:
        nxt = []
        it = iter(level)
        for a, b in zip(it, it):  # zip(it, it) walks the list two at a time
            s = node1()
            s.update(a)
            s.update(b)
            nxt.append(s.digest())
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@dataclass(frozen=True, slots=True)
class SparseProof:
    """`{"leaf": nil | [key_hash, value_hash], "siblings": [...]}`, siblings from the root down."""

    leaf: tuple[bytes, bytes] | None
    siblings: tuple[bytes, ...]

    def to_obj(self) -> dict[str, object]:
        return {
            "leaf": None if self.leaf is None else [self.leaf[0], self.leaf[1]],
            "siblings": list(self.siblings),
        }

    @classmethod
    def from_obj(cls, obj: object) -> "SparseProof":
        """Parse the wire form; DecodeError for any wrong shape or length."""
        if not isinstance(obj, dict) or set(obj) != {"leaf", "siblings"}:
            raise DecodeError("proof must be a map with exactly 'leaf' and 'siblings'")
        leaf = obj["leaf"]
        sibs = obj["siblings"]
        if not isinstance(sibs, list) or len(sibs) > MAX_DEPTH:
            raise DecodeError("proof siblings must be a list of at most 256 hashes")
        for s in sibs:
            if type(s) is not bytes or len(s) != 32:
                raise DecodeError("each proof sibling must be 32 bytes")
        if leaf is not None:
            if (
                not isinstance(leaf, list)
                or len(leaf) != 2
                or any(type(x) is not bytes or len(x) != 32 for x in leaf)
            ):
                raise DecodeError("proof leaf must be nil or [key_hash32, value_hash32]")
            return cls((leaf[0], leaf[1]), tuple(sibs))
        return cls(None, tuple(sibs))

    def encoded_size(self) -> int:
        from ads_ledger.core import codec

        return len(codec.encode(self.to_obj()))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> bool:
    """True iff `proof` shows `key` maps to `value` (None: is absent) in the tree with `root`."""
    sibs = proof.siblings
    depth = len(sibs)
    if depth > MAX_DEPTH:
        return False
    sha = hashlib.sha256  # node_hash/leaf_hash/bit inlined: this loop is the light client's cost
    kh = sha(key).digest()
    leaf = proof.leaf
    if value is not None:
        if leaf is None or leaf[0] != kh or leaf[1] != sha(value).digest():
            return False
        h = sha(LEAF_TAG + kh + leaf[1]).digest()
    elif leaf is None:
        h = PLACEHOLDER
    else:
        other = leaf[0]
        if other == kh:
            return False  # the key is present: this proves inclusion, not absence
        if len(other) != 32:
            if any(bit(other, i) != bit(kh, i) for i in range(depth)):
                return False
        elif (int.from_bytes(other, "big") ^ int.from_bytes(kh, "big")) >> (256 - depth):
            return False  # that leaf would not sit on our key's path (its first `depth` bits differ)
        h = sha(LEAF_TAG + other + leaf[1]).digest()
    # The key's first `depth` bits, read from the last: bit i is the side at depth i.
    path = int.from_bytes(kh, "big") >> (256 - depth)
    node = _JMT_NODE.copy
    for sib in reversed(sibs):
        s = node()
        if path & 1:  # we are the right child
            s.update(sib)
            s.update(h)
        else:
            s.update(h)
            s.update(sib)
        h = s.digest()
        path >>= 1
    return h == root
