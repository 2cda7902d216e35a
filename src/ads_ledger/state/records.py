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
    "GOV_PROVIDERS",
    "MAX_PROVIDERS",
    "ANCHOR_PURPOSES",
    "MAX_REVOKED",
    "anchors_of",
    "SCOPES",
    "EXCLUSIVE_SCOPES",
    "PARAMS",
    "DEFAULT_PARAMS",
    "DEFAULT_SCOPE_ROLES",
    "ROLES",
    "CONTROL_SCOPES",
    "PROV",
    "prov_key",
    "LEV_EXPIRY",
    "LEV_SUSPENDING",
    "lev_grantee_key",
    "lev_pg_key",
    "lev_gi_key",
    "lev_xn_key",
    "lev_x_key",
    "param_error",
    "control_watts",
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
GOV_PROVIDERS = b"gov/providers"  # [pub, ...] sorted: every key with a prov/ record
MAX_PROVIDERS = 4096  # gov/providers is one record
GOV_PARAMS = b"gov/params"  # {name: uint, "scope_roles": {scope: [role, ...]}}
PROV = b"prov/"  # + pub: {"cap_w", "height", "live_w", "name", "roles", "suspended"} (levers.py)

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
# DESIGN §4 regulator levers: scopes that control power (capped by a provider's cap_w) and roles
CONTROL_SCOPES = frozenset({"charging.control", "charging.profile", "flex"})
ROLES = ("aggregator", "cpo", "dso", "emsp", "supplier", "tso")  # sorted

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
    # regulator levers (levers.py): work done at the start of each block, in index entries
    "expiry_batch": (1, 100_000, 2_000),  # expired grants taken out of live_w and the indexes
    "suspension_batch": (1, 10_000, 256),  # cp/ records a suspension sweep rewrites
}
# `scope_roles` is the one map-valued parameter: {scope: [role, ...]}; a scope listed here may
# only be granted to a registered provider holding one of its roles. Unlisted scopes need none.
DEFAULT_SCOPE_ROLES: dict[str, list[str]] = {"flex": ["aggregator", "dso", "tso"]}
_DEFAULTS: dict[str, Any] = {**{name: spec[2] for name, spec in PARAMS.items()}, "scope_roles": DEFAULT_SCOPE_ROLES}
DEFAULT_PARAMS: dict[str, Any] = {name: _DEFAULTS[name] for name in sorted(_DEFAULTS)}


def param_error(name: str, value: Any) -> str | None:
    """Why `value` is not a valid gov/params `name` (None when it is). Strict: exact types,
    documented ranges; scope_roles must map known scopes to sorted, distinct, known roles."""
    if name == "scope_roles":
        if type(value) is not dict or any(type(k) is not str for k in value):
            return "scope_roles must be a map {scope: [role, ...]}"
        for scope, roles in value.items():
            if scope not in SCOPES:
                return f"scope_roles names unknown scope {scope!r}; known: {', '.join(sorted(SCOPES))}"
            if (type(roles) is not list or not 1 <= len(roles) <= len(ROLES)
                    or any(r not in ROLES for r in roles) or roles != sorted(set(roles))):  # fmt: skip
                return f"scope_roles[{scope!r}] must list 1..{len(ROLES)} distinct roles, sorted, of {', '.join(ROLES)}"
        return None
    spec = PARAMS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}; known: {', '.join(sorted([*PARAMS, 'scope_roles']))}"
    if type(value) is not int or not spec[0] <= value <= spec[1]:
        return f"parameter {name} must be an integer in {spec[0]}..{spec[1]}"
    return None


def prov_key(pub: bytes) -> bytes:
    return PROV + pub


# Lever indexes (levers.py): keys reached by get only, so every cost is O(1) state operations.
LEV_GRANTEE = b"lev/g/"  # + pub: {"n": grants indexed for this grantee, "w": their control W}
LEV_PG = b"lev/pg/"  # + pub + u32 i (dense, 0..n-1): [cp, gid] — the grantee's grants
LEV_GI = b"lev/gi/"  # + cp + gid: {"i", "p": grantee, "s": expiry second, "w", "x"} — back-pointers
LEV_XN = b"lev/xn/"  # + u64 second: how many grants end in that second
LEV_X = b"lev/x/"  # + u64 second + u32 x (dense): [cp, gid, not_after]
LEV_EXPIRY = b"lev/expiry"  # {"n": grants indexed, "next": first second not yet swept}; absent: none
LEV_SUSPENDING = b"lev/suspending"  # [pub, ...]: suspended providers whose grants are being revoked


def lev_grantee_key(pub: bytes) -> bytes:
    return LEV_GRANTEE + pub


def lev_pg_key(pub: bytes, i: int) -> bytes:
    return LEV_PG + pub + i.to_bytes(4, "big")


def lev_gi_key(cp: bytes, gid: bytes) -> bytes:
    return LEV_GI + cp + gid


def lev_xn_key(second: int) -> bytes:
    return LEV_XN + second.to_bytes(8, "big")


def lev_x_key(second: int, x: int) -> bytes:
    return LEV_X + second.to_bytes(8, "big") + x.to_bytes(4, "big")


def control_watts(grant: dict[str, Any]) -> int:
    """What a grant adds to its grantee's live_w: its max_power_w if it names a control scope."""
    if CONTROL_SCOPES.isdisjoint(grant["scopes"]):
        return 0
    return int(grant["limits"].get("max_power_w", 0))


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
