"""Every LMDB named database and key format of the node, in one place (as py-evm's schema.py).

Integers in keys are big-endian so that byte order is numeric order: the tree nodes and the
stale index of a new version sort after everything already stored, and land at the B+tree's
right edge (appends, not random inserts).

| db        | key                                         | value                                     |
|-----------|---------------------------------------------|-------------------------------------------|
| `nodes`   | version u64 ‖ nibble path (1 byte/nibble) ‖ 0xFF | a JMT node (`jmt_node.encode_node`)   |
| `stale`   | stale_since u64 ‖ kind (`n` node / `v` value) ‖ that record's key | b""                  |
| `values`  | key_hash(32) ‖ (2^64−1 − version) u64       | 0x01 ‖ value, or 0x00 (deleted)           |
| `flat`    | application key                             | version u64 ‖ value (latest state only)   |
| `roots`   | version u64                                 | root hash(32) [‖ root node's version u64] |
| `meta`    | ascii name (`latest`, `oldest`, ...)        | see the META_* names                      |
| `blocks`  | height u64                                  | [header, last_commit ref] (see below), or a whole block (older stores) |
| `bodies`  | height u64                                  | [txs, evidence] of a block that has any   |
| `commits` | height u64                                  | [round, indices, sigs] (blockparts.py), or a commit map |
| `txs`     | txid(32)                                    | height u64 ‖ index u32                    |
| `results` | height u64                                  | [[ok, code, log], ...] of the block's txs |
| `valsets` | height u64                                  | validator set deciding that height, where it changes |
| `evidence`| height u64 ‖ evidence hash(32)              | committed evidence (canonical msgpack)    |
| `priorities` | `next` (one record: the latest)          | [height, proposer priorities at its start] |

The node key ends in 0xFF (greater than any nibble) so that a parent sorts after all its
descendants: a bottom-up build emits nodes in key order. Versions in `values` are inverted so
that `set_range(key_hash ‖ inv(v))` lands on the newest record at or below version v.
A node or value record named in `stale` under version S is used only by versions < S; it is
deleted once every retained version is ≥ S.
`priorities` is written with each block h (same write transaction): `[h + 1,
ProposerPriorities.to_obj()]`, so a restart does not replay proposer selection from height 1.
A store without it (older version) is walked once from genesis and the record written with the
next block.

A block is stored in parts so that nothing is kept twice and an empty block costs its header:
`blocks` holds `[header, last_commit ref]`, `bodies` the txs and evidence of a block that has
either (a block whose header names the empty txs and evidence roots has no `bodies` record), and
the last commit refers to `commits[h − 1]`, which holds the same precommits in most blocks:
the ref is nil (no last commit: block 1), `[round, sigs]` where each entry of `sigs` is a
validator index (that signature is the one in `commits[h − 1]`) or `[index, sig]` (a signature
only the block has), with height and block id those of `commits[h − 1]`; or the whole commit
map when its height, block id or round differ. `Ledger` rebuilds the very bytes of
`Block.encode()` from these. A `blocks` value that is a map is a whole block (written before
this layout); both are read. `[storage] keep_blocks` deletes the `bodies` and `results` of old
heights (their headers and commits stay); `meta` `bodies_from` is the lowest height whose body
is kept.
"""

from __future__ import annotations

from typing import Final

from ads_ledger.core.errors import AdsError

__all__ = [
    "NODES",
    "STALE",
    "VALUES",
    "FLAT",
    "ROOTS",
    "META",
    "BLOCKS",
    "BODIES",
    "COMMITS",
    "TXS",
    "RESULTS",
    "VALSETS",
    "EVIDENCE",
    "PRIORITIES",
    "PRIORITIES_NEXT",
    "ALL_TABLES",
    "GRANTEES",
    "EXTRA_TABLES",
    "TREE_TABLES",
    "META_LATEST",
    "META_OLDEST",
    "META_FORMAT",
    "META_BULK",
    "META_BODIES_FROM",
    "FORMAT_VERSION",
    "READABLE_FORMATS",
    "MAX_U64",
    "MAX_KEY_LEN",
    "u64",
    "from_u64",
    "node_key",
    "node_key_version",
    "node_key_path",
    "value_key",
    "value_key_version",
    "encode_value_record",
    "decode_value_record",
    "stale_node_key",
    "stale_value_key",
    "encode_root",
    "decode_root",
    "encode_flat",
    "decode_flat",
    "height_key",
    "encode_tx_location",
    "decode_tx_location",
    "SchemaError",
]

NODES: Final = "nodes"
STALE: Final = "stale"
VALUES: Final = "values"
FLAT: Final = "flat"
ROOTS: Final = "roots"
META: Final = "meta"
BLOCKS: Final = "blocks"
BODIES: Final = "bodies"
COMMITS: Final = "commits"
TXS: Final = "txs"
RESULTS: Final = "results"
VALSETS: Final = "valsets"
EVIDENCE: Final = "evidence"
PRIORITIES: Final = "priorities"
GRANTEES: Final = "grantees"  # grantee pub ‖ cp pub → b"": which records name a grantee (GET /grants)

TREE_TABLES: Final = (NODES, STALE, VALUES, FLAT, ROOTS)
EXTRA_TABLES: Final = (BLOCKS, COMMITS, TXS, RESULTS, VALSETS, EVIDENCE, PRIORITIES, GRANTEES, BODIES)
ALL_TABLES: Final = TREE_TABLES + (META,) + EXTRA_TABLES

META_LATEST: Final = b"latest"  # u64: latest committed version (absent = 0, nothing written)
META_OLDEST: Final = b"oldest"  # u64: oldest version whose nodes and values are still kept
META_FORMAT: Final = b"format"  # u64: FORMAT_VERSION of this layout
META_BULK: Final = b"bulk_load"  # u64 version: a bulk load began and has not finished
META_BODIES_FROM: Final = b"bodies_from"  # u64: bodies below this height are pruned (absent = 1)
# adding a table is compatible: an older store simply lacks it. 2: blocks and commits in parts
# (blockparts.py); a format-1 store is read as it is and marked 2 when opened, so that a node
# of format 1 refuses it rather than misreading the blocks written since
FORMAT_VERSION: Final = 2
READABLE_FORMATS: Final = (1, 2)

PRIORITIES_NEXT: Final = b"next"  # the one key of `priorities`

MAX_U64: Final = 2**64 - 1
MAX_KEY_LEN: Final = 511  # LMDB's compiled-in key limit

_NODE_END = b"\xff"
_PRESENT = b"\x01"
_DELETED = b"\x00"


class SchemaError(AdsError):
    """A record on disk does not have the layout this module describes (corruption or a bug)."""


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def from_u64(b: bytes) -> int:
    if len(b) != 8:
        raise SchemaError(f"expected 8 bytes, got {len(b)}")
    return int.from_bytes(b, "big")


def node_key(version: int, path: bytes) -> bytes:
    """Key of the tree node at nibble `path` (one byte per nibble, 0..15) written at `version`."""
    return version.to_bytes(8, "big") + path + _NODE_END


def node_key_version(key: bytes) -> int:
    return int.from_bytes(key[:8], "big")


def node_key_path(key: bytes) -> bytes:
    return key[8:-1]


def value_key(key_hash: bytes, version: int) -> bytes:
    return key_hash + (MAX_U64 - version).to_bytes(8, "big")


def value_key_version(vkey: bytes) -> int:
    return MAX_U64 - int.from_bytes(vkey[32:40], "big")


def encode_value_record(value: bytes | None) -> bytes:
    return _DELETED if value is None else _PRESENT + value


def decode_value_record(raw: bytes) -> bytes | None:
    if raw[:1] == _PRESENT:
        return bytes(raw[1:])
    if raw == _DELETED:
        return None
    raise SchemaError("bad value record")


def stale_node_key(since: int, nkey: bytes) -> bytes:
    return since.to_bytes(8, "big") + b"n" + nkey


def stale_value_key(since: int, vkey: bytes) -> bytes:
    return since.to_bytes(8, "big") + b"v" + vkey


def encode_root(root_hash: bytes, root_node_version: int | None) -> bytes:
    return root_hash if root_node_version is None else root_hash + u64(root_node_version)


def decode_root(raw: bytes) -> tuple[bytes, int | None]:
    if len(raw) == 32:
        return bytes(raw), None
    if len(raw) == 40:
        return bytes(raw[:32]), from_u64(bytes(raw[32:]))
    raise SchemaError("bad root record")


def encode_flat(version: int, value: bytes) -> bytes:
    return u64(version) + value


def decode_flat(raw: bytes) -> tuple[int, bytes]:
    if len(raw) < 8:
        raise SchemaError("bad flat record")
    return int.from_bytes(raw[:8], "big"), bytes(raw[8:])


def height_key(height: int) -> bytes:
    """Key of `blocks`, `bodies`, `commits` and `results`."""
    return u64(height)


def encode_tx_location(height: int, index: int) -> bytes:
    return u64(height) + index.to_bytes(4, "big")


def decode_tx_location(raw: bytes) -> tuple[int, int]:
    if len(raw) != 12:
        raise SchemaError("bad tx location record")
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")
