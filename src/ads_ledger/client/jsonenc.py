"""JSON rendering of ledger values for the HTTP API (DESIGN §8): bytes become lowercase hex.

`to_json` turns a canonical-msgpack-shaped value (the `to_obj()` of a Header, Commit, Block,
SparseProof, or a decoded state record) into a JSON-ready value, recursively. The `*_from_json`
functions are the inverses a client uses to get typed values back; they raise DecodeError
(a RemoteError: the server's answer is at fault) on any wrong shape.
"""

from __future__ import annotations

import json
from typing import Any

from ads_ledger.core.errors import DecodeError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Commit, Header, ValidatorSet

__all__ = [
    "to_json",
    "dumps",
    "parse_hex",
    "header_from_json",
    "commit_from_json",
    "proof_from_json",
    "validators_from_json",
]

_HEADER_BYTES = (
    "prev", "txs_root", "evidence_root", "state_root", "validators", "next_validators",
    "proposer", "last_commit",
)  # fmt: skip
_MAX_DEPTH = 64  # far deeper than any value we render; bounds recursion


def to_json(value: Any, _depth: int = 0) -> Any:
    """`value` with bytes as lowercase hex and tuples as lists; TypeError for anything else."""
    if _depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply to render")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `to_json(value)`, newline-terminated (friendly to curl)."""
    return json.dumps(to_json(value), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def parse_hex(text: Any, what: str, *, length: int | None = None, max_length: int = 4096) -> bytes:
    """Lowercase hex → bytes. DecodeError names `what` and the fault (not hex, odd, length).

    Uppercase is refused so that every byte string has one spelling on the wire.
    """
    if not isinstance(text, str):
        raise DecodeError(f"{what} must be a hex string")
    if len(text) % 2:
        raise DecodeError(f"{what} has an odd number of hex digits")
    if len(text) > 2 * max_length:
        raise DecodeError(f"{what} is longer than {max_length} bytes")
    if any(c not in "0123456789abcdef" for c in text):
        raise DecodeError(f"{what} must be lowercase hex (0-9, a-f)")
    raw = bytes.fromhex(text)
    if length is not None and len(raw) != length:
        raise DecodeError(
            f"{what} must be {length} bytes ({2 * length} hex digits), got {len(raw)}")
    return raw


def _obj(value: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not keys <= set(value):
        raise DecodeError(f"{what} must be an object with the keys {sorted(keys)}")
    return value


def header_from_json(value: Any) -> Header:
    """Inverse of `to_json(header.to_obj())`; the same checks as Header.from_obj."""
    o = _obj(value, {"version", "chain_id", "height", "time", *_HEADER_BYTES}, "header")
    obj = {k: o[k] for k in ("version", "chain_id", "height", "time")}
    obj.update({k: parse_hex(o[k], f"header.{k}", length=32) for k in _HEADER_BYTES})
    return Header.from_obj(obj)


def commit_from_json(value: Any) -> Commit:
    """Inverse of `to_json(commit.to_obj())`; the same checks as Commit.from_obj."""
    o = _obj(value, {"height", "round", "block", "sigs"}, "commit")
    sigs = o["sigs"]
    if not isinstance(sigs, list) or any(not isinstance(s, list) or len(s) != 2 for s in sigs):
        raise DecodeError("commit.sigs must be a list of [index, sig hex]")
    return Commit.from_obj({
        "height": o["height"],
        "round": o["round"],
        "block": parse_hex(o["block"], "commit.block", length=32),
        "sigs": [[i, parse_hex(s, "commit signature", length=64)] for i, s in sigs],
    })  # fmt: skip


def proof_from_json(value: Any) -> SparseProof:
    """Inverse of `to_json(proof.to_obj())`; the same checks as SparseProof.from_obj."""
    o = _obj(value, {"leaf", "siblings"}, "proof")
    leaf, sibs = o["leaf"], o["siblings"]
    if not isinstance(sibs, list) or len(sibs) > 256:
        raise DecodeError("proof.siblings must be a list of at most 256 hashes")
    if leaf is not None and (not isinstance(leaf, list) or len(leaf) != 2):
        raise DecodeError("proof.leaf must be null or [key_hash, value_hash]")
    return SparseProof.from_obj({
        "leaf": None if leaf is None else [parse_hex(x, "proof.leaf", length=32) for x in leaf],
        "siblings": [parse_hex(s, "proof sibling", length=32) for s in sibs],
    })  # fmt: skip


def validators_from_json(value: Any) -> ValidatorSet:
    """Inverse of the `/validators/{height}` body's `validators` list."""
    if not isinstance(value, list):
        raise DecodeError("validators must be a list of {pub, power}")
    pairs = []
    for v in value:
        o = _obj(v, {"pub", "power"}, "validator")
        pairs.append([parse_hex(o["pub"], "validator pub", length=32), o["power"]])
    return ValidatorSet.from_obj(pairs)
