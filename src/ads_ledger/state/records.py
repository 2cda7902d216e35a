"""State keys, record shapes and chain parameters (DESIGN §5, normative; §7 scopes).

Records are plain dicts with their keys inserted in canonical (sorted) order, exactly the
msgpack maps of §5, so encoding them is one msgpack pack and decoding them one unpack.
Rules treat a record they read as immutable and build a new one (copy on write): the block
overlay shares decoded records between transactions and must be able to drop a failed tx's
changes by forgetting them.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

__all__ = [
    "ACCT",
    "CP",
    "GOV_MEMBERS",
    "GOV_VALIDATORS",
    "GOV_ANCHORS",
    "GOV_REVOKED",
    "GOV_PARAMS",
    "ANCHOR_PURPOSES",
    "MAX_REVOKED",
    "anchors_of",
    "SCOPES",
    "EXCLUSIVE_SCOPES",
    "PARAMS",
    "DEFAULT_PARAMS",
    "acct_key",
    "cp_key",
    "new_account",
    "new_cp",
    "encode_record",
    "decode_record",
    "grant_live",
    "short",
    "find_grant",
    "drop_orphans",
    "prune_grants",
]

ACCT = b"acct/"
CP = b"cp/"
GOV_MEMBERS = b"gov/members"  # {"members": [pub...], "threshold": k}
GOV_VALIDATORS = b"gov/validators"  # [[pub, power], ...] in set order (power desc, pub asc)
GOV_ANCHORS = b"gov/anchors"  # {"device": [DER, ...], "eid": [DER, ...]}, each sorted by H(DER)
GOV_REVOKED = b"gov/revoked"  # [H(leaf DER), ...] sorted: broker and manufacturer certs ended
ANCHOR_PURPOSES = ("device", "eid")  # sorted: the map's canonical key order
MAX_REVOKED = 1024  # gov/revoked is read by every identity check: keep it one small record
GOV_PARAMS = b"gov/params"  # {name: uint}

# DESIGN §7: the scopes a grant may name; `flex` is exclusive.
SCOPES = frozenset(
    {
        "charging.control",
        "charging.profile",
        "flex",
        "meter.read",
        "status.read",
        "availability",
    }
)
EXCLUSIVE_SCOPES = frozenset({"flex"})

# name -> (min, max, default). All parameters are unsigned integers (DESIGN §6). Consensus
# timing and block limits in force at height H are those in state after block H−2.
PARAMS: dict[str, tuple[int, int, int]] = {
    "timeout_propose_ms": (100, 600_000, 3_000),
    "timeout_propose_delta_ms": (0, 600_000, 500),
    "timeout_prevote_ms": (100, 600_000, 1_000),
    "timeout_prevote_delta_ms": (0, 600_000, 500),
    "timeout_precommit_ms": (100, 600_000, 1_000),
    "timeout_precommit_delta_ms": (0, 600_000, 500),
    "heartbeat_ms": (0, 60_000, 1_000),  # 0: no idle wait (blocks as fast as they can be made)
    "precision_ms": (1, 60_000, 500),
    "message_delay_ms": (0, 60_000, 3_000),
    "max_block_bytes": (64 * 1024, 32 * 1024 * 1024, 4 * 1024 * 1024),  # txs + evidence bytes
    "max_block_txs": (1, 100_000, 2_000),
    "evidence_max_age": (1, 1_000_000, 100_000),
    "max_grants_per_cp": (1, 1_000, 64),
    "staleness_limit_ms": (1_000, 86_400_000, 60_000),
}
DEFAULT_PARAMS = {name: spec[2] for name, spec in sorted(PARAMS.items())}


def acct_key(pub: bytes) -> bytes:
    return ACCT + pub


def cp_key(cp: bytes) -> bytes:
    return CP + cp


def new_account() -> dict[str, Any]:
    return {"identity": None, "nonce": 0}


def new_cp(height: int, device: dict[str, Any]) -> dict[str, Any]:
    """A charge point's first record; `device` = {"issuer", "model"} from its attestation."""
    return {"device": device, "epoch": 0, "grants": [], "owner": None, "pending": None, "updated": height}


def anchors_of(value: Any, purpose: str) -> list[bytes]:
    """The DER anchors of one purpose in a decoded gov/anchors value (None: none at all)."""
    return [] if value is None else list(value.get(purpose, ()))


def encode_record(value: Any) -> bytes:
    """Canonical bytes of a state value built by the rules (the hot path of every block).

    Every record is built with its map keys inserted in sorted order (and decoded bodies and
    records keep their canonical order), so plain msgpack packing is already canonical; this
    skips codec.encode's re-sorting walk (~10x faster). The tests decode every write with the
    strict codec, which refuses non-canonical bytes, so a record built out of order is caught.
    """
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def decode_record(raw: bytes) -> Any:
    """Decode a state value we wrote ourselves (trusted: the state root already commits to it)."""
    return msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=False)


def grant_live(grant: dict[str, Any], now: int) -> bool:
    """A grant is live until its window ends (a not-yet-valid grant is live: it is still owed)."""
    return bool(grant["not_after"] > now)


def short(b: bytes | None) -> str:
    """A key in a message: the first 4 bytes as hex and an ellipsis."""
    return "nobody" if b is None else b[:4].hex() + "…"


def find_grant(grants: list[dict[str, Any]], gid: bytes) -> dict[str, Any] | None:
    for g in grants:
        if g["id"] == gid:
            return g
    return None


def drop_orphans(grants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Remove grants whose parent is gone, recursively (order kept)."""
    while True:
        ids = {g["id"] for g in grants}
        kept = [g for g in grants if g["parent"] is None or g["parent"] in ids]
        if len(kept) == len(grants):
            return kept
        grants = kept


def prune_grants(grants: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """Grants still live at `now` (DESIGN §4: pruned whenever a tx touches the record).

    Returns the same list object when nothing expired, so untouched records are not copied.
    """
    for g in grants:
        if g["not_after"] <= now:
            break
    else:
        return grants
    return drop_orphans([g for g in grants if g["not_after"] > now])
