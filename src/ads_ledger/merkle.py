"""Merkle hashing (DESIGN §5, §6, normative): RFC 6962 list roots and JMT-compatible
sparse Merkle proofs.

Verification lives here, free of storage, so the light client and the charge-point
agent share it with the node. The tree that builds proofs is `ads_ledger.jmt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .crypto import H
from .errors import DecodeError

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
    level = [H(b"\x00" + leaf) for leaf in leaves]
    # Pairwise from the left, promoting an odd last node: the same tree as RFC 6962's
    # split at the largest power of two below n.
    while len(level) > 1:
        nxt = [H(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
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
        from . import codec

        return len(codec.encode(self.to_obj()))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> bool:
    """True iff `proof` shows `key` maps to `value` (None: is absent) in the tree with `root`."""
    depth = len(proof.siblings)
    if depth > MAX_DEPTH:
        return False
    kh = H(key)
    if value is not None:
        if proof.leaf is None or proof.leaf[0] != kh or proof.leaf[1] != H(value):
            return False
        h = leaf_hash(kh, proof.leaf[1])
    elif proof.leaf is None:
        h = PLACEHOLDER
    else:
        other = proof.leaf[0]
        if other == kh:
            return False  # the key is present: this proves inclusion, not absence
        if any(bit(other, i) != bit(kh, i) for i in range(depth)):
            return False  # that leaf would not sit on our key's path
        h = leaf_hash(other, proof.leaf[1])
    for i in range(depth - 1, -1, -1):
        sib = proof.siblings[i]
        h = node_hash(sib, h) if bit(kh, i) else node_hash(h, sib)
    return h == root
