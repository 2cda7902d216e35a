"""A block stored in parts (schema.py, `blocks` and `bodies`): nothing twice, and an empty
block costs little more than its header's hashes.

`split` turns a block into its `blocks` value and its `bodies` value (None for a block without
txs or evidence); `join` rebuilds the very block, so `Block.encode()` and the block id are
those of the block that was split. Both need the commit stored for the height below
(`commits[h − 1]`, None at height 1), which the block's `last_commit` is written against.

The `blocks` value is `[header, last_commit ref]`:
- header: its values in `HEADER_KEYS` order, where a value the reader can tell is nil:
  `chain_id` (the chain's), `height` (the key's), `txs_root` and `evidence_root` when they are
  the root of an empty list, `next_validators` when it equals `validators`;
- ref: nil (no last commit), a list whose entries are a validator index (that validator's
  signature in `commits[h − 1]`) or `[index, sig]`, the height, round and block id being those
  of `commits[h − 1]`; or the whole commit map when height, round or block id differ.
A `blocks` value that is a map is a whole block, as stores written before this layout hold.

The `commits` value (`commit_record`) of the commit that decided block h is `[round, indices,
sigs]`: the validator indices, and their 64-byte signatures one after the other, its height
and block id those of header h; or the whole commit map (if they differ, and in older stores).
"""

from __future__ import annotations

from typing import Any, Callable

from ads_ledger.core import codec
from ads_ledger.core.merkle import list_root
from ads_ledger.core.types import HEADER_KEYS, Block, Commit, DuplicateVoteEvidence, Header

__all__ = ["EMPTY_ROOT", "MAX_BLOCK_RECORD", "split", "join", "header_of", "is_whole", "has_body",
           "commit_record", "commit_from_record", "commit_needs_header"]

EMPTY_ROOT = list_root([])
MAX_BLOCK_RECORD = 64 * 1024 * 1024  # decode bound of a stored block or body (blocks are ≤ 32 MiB)
_TX, _EV, _NEXT, _VALS = (HEADER_KEYS.index(k) for k in ("txs_root", "evidence_root", "next_validators",
                                                         "validators"))  # fmt: skip
_CHAIN, _HEIGHT = HEADER_KEYS.index("chain_id"), HEADER_KEYS.index("height")


def is_whole(raw: bytes) -> bool:
    """Whether a `blocks` value is a whole block (the older layout: a map)."""
    return raw[:1] != b"\x92"  # a 2-array; a block is a 4-map (0x84)


def has_body(header: Header) -> bool:
    """Whether a block with this header has txs or evidence (a `bodies` record)."""
    return header.txs_root != EMPTY_ROOT or header.evidence_root != EMPTY_ROOT


def _compact_header(h: Header) -> list[Any]:
    vals: list[Any] = [getattr(h, k) for k in HEADER_KEYS]
    vals[_CHAIN] = vals[_HEIGHT] = None
    if vals[_TX] == EMPTY_ROOT:
        vals[_TX] = None
    if vals[_EV] == EMPTY_ROOT:
        vals[_EV] = None
    if vals[_NEXT] == vals[_VALS]:
        vals[_NEXT] = None
    return vals


def _header_obj(vals: Any, chain_id: str, height: int) -> dict[str, Any]:
    if type(vals) is not list or len(vals) != len(HEADER_KEYS):
        raise codec.DecodeError("bad stored header")
    out = dict(zip(HEADER_KEYS, vals))
    out["chain_id"], out["height"] = chain_id, height
    for k in ("txs_root", "evidence_root"):
        if out[k] is None:
            out[k] = EMPTY_ROOT
    if out["next_validators"] is None:
        out["next_validators"] = out["validators"]
    return out


def _commit_ref(lc: Commit, prev: Commit | None) -> Any:
    if prev is None or (lc.height, lc.round, lc.block) != (prev.height, prev.round, prev.block):
        return lc.to_obj()
    have = dict(prev.sigs)
    ref = [i if have.get(i) == s else [i, s] for i, s in lc.sigs]
    if _commit_of(ref, prev) != lc:  # cannot differ; a wrong rebuild must never be stored
        return lc.to_obj()
    return ref


def _commit_of(ref: Any, prev: Commit | None) -> Commit | None:
    if ref is None:
        return None
    if type(ref) is dict:
        return Commit.from_obj(ref)
    if prev is None or type(ref) is not list:
        raise codec.DecodeError("a stored last commit refers to a commit that is not there")
    have = dict(prev.sigs)
    sigs = tuple((e, have[e]) if type(e) is int else (e[0], e[1]) for e in ref)
    return Commit(prev.height, prev.round, prev.block, sigs)


def split(block: Block, prev: Commit | None, chain_id: str) -> tuple[bytes, bytes | None]:
    """(`blocks` value, `bodies` value or None) of `block` of chain `chain_id`, stored under its
    own height; `prev` is `commits[h − 1]`. A block of another chain (never committed) is kept
    whole rather than rebuilt with the wrong chain id."""
    if block.header.chain_id != chain_id:
        return block.encode(), None
    ref = None if block.last_commit is None else _commit_ref(block.last_commit, prev)
    row = codec.encode([_compact_header(block.header), ref])
    body = None
    if block.txs or block.evidence:
        body = codec.encode([list(block.txs), [e.to_obj() for e in block.evidence]])
    return row, body


def header_of(raw: bytes, chain_id: str, height: int) -> Header:
    """The header in a `blocks` value (either layout)."""
    obj = codec.decode(raw, max_size=MAX_BLOCK_RECORD)
    if type(obj) is dict:
        return Header.from_obj(obj.get("header"))
    if type(obj) is not list or len(obj) != 2:
        raise codec.DecodeError("bad stored block")
    return Header.from_obj(_header_obj(obj[0], chain_id, height))


def join(raw: bytes, body: bytes | None, prev: Callable[[bytes], Commit | None], chain_id: str,
         height: int) -> Block:  # fmt: skip
    """The block from its `blocks` value, its `bodies` value (None: none stored) and
    `prev(header.prev)`, `commits[h − 1]` (read only if the block refers to it). LookupError if
    the header names txs or evidence and no body is given."""
    obj = codec.decode(raw, max_size=MAX_BLOCK_RECORD)
    if type(obj) is dict:
        return Block.from_obj(obj)
    if type(obj) is not list or len(obj) != 2:
        raise codec.DecodeError("bad stored block")
    header = Header.from_obj(_header_obj(obj[0], chain_id, height))
    txs: tuple[bytes, ...] = ()
    evidence: tuple[DuplicateVoteEvidence, ...] = ()
    if has_body(header):
        if body is None:
            raise LookupError(f"the body of block {height} is not stored (pruned)")
        parts = codec.decode(body, max_size=MAX_BLOCK_RECORD)
        if type(parts) is not list or len(parts) != 2 or type(parts[0]) is not list:
            raise codec.DecodeError("bad stored block body")
        txs = tuple(parts[0])
        evidence = tuple(DuplicateVoteEvidence.from_obj(e) for e in parts[1])
    ref = obj[1]
    return Block(header, txs, evidence, _commit_of(ref, prev(header.prev) if type(ref) is list else None))


def commit_record(commit: Commit, header: Header, block_id: bytes) -> bytes:
    """The `commits` value of `commit`, which decided the block of `header` (id `block_id`)."""
    if commit.height != header.height or commit.block != block_id:
        return codec.encode(commit.to_obj())
    return codec.encode([commit.round, [i for i, _ in commit.sigs], b"".join(s for _, s in commit.sigs)])


def commit_needs_header(raw: bytes) -> bool:
    """Whether a `commits` value takes its height and block id from the header (else: a map)."""
    return raw[:1] == b"\x93"  # a 3-array; a commit map is 0x84


def commit_from_record(raw: bytes, height: int, block_id: bytes | None) -> Commit:
    """The commit in a `commits` value; `block_id` of block `height` if `commit_needs_header`."""
    obj = codec.decode(raw)
    if type(obj) is dict:
        return Commit.from_obj(obj)
    if type(obj) is not list or len(obj) != 3 or block_id is None:
        raise codec.DecodeError("bad stored commit")
    rnd, idx, sigs = obj
    if type(idx) is not list or type(sigs) is not bytes or len(sigs) != 64 * len(idx):
        raise codec.DecodeError("bad stored commit")
    return Commit(height, rnd, block_id, tuple((i, sigs[64 * k:64 * k + 64]) for k, i in enumerate(idx)))
