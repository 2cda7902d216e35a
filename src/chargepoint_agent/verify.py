"""Command verification (DESIGN §7): a pure function of (envelope bytes, access list, clock,
replay state) → a verdict with its receipt code. No IO: the service persists the replay state
and drives the charger only after an `ok` verdict.

Checks, in this order (the first failure is the code):
  malformed      the envelope or the command does not have §7's shape (canonical msgpack)
  bad_signature  the issuer's signature over sign_bytes("ads/cmd/1", chain_id, cmd)
  wrong_cp       the command is for another charge point
  expired        not within issued_at − skew ≤ now ≤ expires_at, or a window over 300 s
  stale_acl      no verified access list, or (delegates only) one older than the staleness limit
  no_grant       the owner speaks without being the owner, or the named grant is not the
                 issuer's (absent, revoked, someone else's)
  not_yet_valid / grant_expired   the grant's window at `now`
  scope          the action's scope is not in the grant
  limits         a power in the params exceeds the grant's max_power_w
  replay         seq not above the issuer's last accepted seq
A stale access list refuses delegates before their grant is looked at: a revoked grant may
still be in an old record. The owner is known from the record, so owner commands work with a
stale list (the owner can always stop the charger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, verify
from ads_ledger.core.errors import DecodeError

__all__ = [
    "ACTIONS",
    "CODES",
    "MAX_COMMAND_BYTES",
    "MAX_WINDOW_MS",
    "OWNER_STACK_LEVEL",
    "AccessList",
    "Verdict",
    "check_command",
    "command_powers",
]

CMD_TAG = "ads/cmd/1"
MAX_COMMAND_BYTES = 16 * 1024  # a command is a few hundred bytes; a profile of 24 periods < 1 KiB
MAX_WINDOW_MS = 300_000  # §7: expires_at − issued_at ≤ 300 s
OWNER_STACK_LEVEL = 100  # above every grant priority (0..99): the owner's plan wins
MAX_PERIODS = 48
CODES = (
    "ok", "malformed", "bad_signature", "wrong_cp", "no_grant", "not_yet_valid", "grant_expired",
    "scope", "limits", "replay", "expired", "stale_acl", "driver_error",
)  # fmt: skip
_CMD_KEYS = frozenset({"cp", "issuer", "grant", "seq", "issued_at", "expires_at", "action", "params"})
_U64 = 2**64 - 1


class _Bad(Exception):
    """A shape error: the verdict is `malformed` with this message."""


def _uint(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= _U64:
        raise _Bad(f"{what} must be an unsigned integer")
    return v


def _keys(m: Any, required: set[str], optional: set[str], what: str) -> dict[str, Any]:
    if type(m) is not dict or not required <= set(m) <= required | optional:
        raise _Bad(f"{what} must be a map with {sorted(required)}" + (f" and optionally {sorted(optional)}" if optional else ""))
    return m


def _p_connector(p: Any) -> None:
    p = _keys(p, set(), {"connector"}, "params")
    if "connector" in p:
        _uint(p["connector"], "params.connector")


def _p_profile(p: Any) -> None:
    prof = _keys(_keys(p, {"profile"}, set(), "params")["profile"], {"id", "valid_from", "valid_to", "periods"},
                 set(), "params.profile")  # fmt: skip
    _uint(prof["id"], "profile.id")
    if _uint(prof["valid_from"], "profile.valid_from") >= _uint(prof["valid_to"], "profile.valid_to"):
        raise _Bad("profile.valid_from must be before valid_to")
    periods = prof["periods"]
    if type(periods) is not list or not 1 <= len(periods) <= MAX_PERIODS:
        raise _Bad(f"profile.periods must list 1..{MAX_PERIODS} [start_offset_s, limit_w] pairs")
    last = -1
    for per in periods:
        if type(per) is not list or len(per) != 2:
            raise _Bad("each period is [start_offset_s, limit_w]")
        start = _uint(per[0], "period start_offset_s")
        _uint(per[1], "period limit_w")
        if start <= last or (last == -1 and start != 0):
            raise _Bad("periods start at offset 0 and rise strictly")
        last = start


def _p_clear(p: Any) -> None:
    _uint(_keys(p, {"id"}, set(), "params")["id"], "params.id")


def _p_activate(p: Any) -> None:
    p = _keys(p, {"limit_w", "duration_s"}, set(), "params")
    _uint(p["limit_w"], "params.limit_w")
    _uint(p["duration_s"], "params.duration_s")


def _p_arm(p: Any) -> None:
    p = _keys(p, {"below_mhz", "limit_w", "hold_s", "until"}, set(), "params")
    for k in ("below_mhz", "limit_w", "hold_s", "until"):
        _uint(p[k], f"params.{k}")


def _p_empty(p: Any) -> None:
    _keys(p, set(), set(), "params")


def _p_audit(p: Any) -> None:
    p = _keys(p, set(), {"since", "limit"}, "params")
    if "since" in p:
        _uint(p["since"], "params.since")
    if "limit" in p and not 1 <= _uint(p["limit"], "params.limit") <= MAX_AUDIT_READ:
        raise _Bad(f"params.limit must be 1..{MAX_AUDIT_READ}")


def _p_available(p: Any) -> None:
    if type(_keys(p, {"available"}, set(), "params")["available"]) is not bool:
        raise _Bad("params.available must be a bool")


# action -> (scope, params shape check)
ACTIONS: dict[str, tuple[str, Callable[[Any], None]]] = {
    "charging.start": ("charging.control", _p_connector),
    "charging.stop": ("charging.control", _p_connector),
    "charging.profile.set": ("charging.profile", _p_profile),
    "charging.profile.clear": ("charging.profile", _p_clear),
    "flex.activate": ("flex", _p_activate),
    "flex.arm": ("flex", _p_arm),
    "meter.read": ("meter.read", _p_empty),
    "status.read": ("status.read", _p_empty),
    "availability.set": ("availability", _p_available),
    # not in §7's table: how the audit log is read (docs/agent.md). The owner reads every entry,
    # a grantee holding status.read or meter.read its own.
    "audit.read": ("status.read", _p_audit),
}
AUDIT_SCOPES = frozenset({"status.read", "meter.read"})
MAX_AUDIT_READ = 100


def command_powers(action: str, params: dict[str, Any]) -> list[int]:
    """Every power (W) a shape-checked command asks for: what a grant's max_power_w caps."""
    if action == "charging.profile.set":
        return [per[1] for per in params["profile"]["periods"]]
    if action in ("flex.activate", "flex.arm"):
        return [params["limit_w"]]
    return []


@dataclass(frozen=True, slots=True)
class AccessList:
    """The charge point's verified `cp/` record and the header it was verified against."""

    owner: bytes | None
    grants: tuple[dict[str, Any], ...]
    height: int  # the verified header's height
    header_time_ms: int  # the verified header's time: staleness = now − this
    staleness_limit_ms: int  # gov/params in force (§6)

    def grant(self, gid: bytes) -> dict[str, Any] | None:
        for g in self.grants:
            if g["id"] == gid:
                return g
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome: `code` ("ok" or a §7 refusal), the parsed command when there is one, its
    hash for the receipt (H(canonical cmd), or H(request body) when it did not parse)."""

    code: str
    message: str
    cmd_hash: bytes
    cmd: dict[str, Any] | None = None
    grant: dict[str, Any] | None = field(default=None)
    stack_level: int = 0

    @property
    def ok(self) -> bool:
        return self.code == "ok"


_ENV_HEAD = b"\x82\xa3cmd"  # a canonical {"cmd", "sig"}: the map header, then the key "cmd"
_ENV_TAIL = len(b"\xa3sig\xc4\x40") + 64  # "sig" and its bin 64 close the envelope


@lru_cache(maxsize=8)
def _sign_prefix(chain_id: str) -> bytes:
    return b"\x93" + codec.encode(CMD_TAG) + codec.encode(chain_id)


def _parse(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_COMMAND_BYTES:
        raise _Bad(f"the envelope is {len(raw)} bytes; the limit is {MAX_COMMAND_BYTES}")
    try:
        env = codec.decode(raw, max_size=MAX_COMMAND_BYTES)
    except DecodeError as e:
        raise _Bad(f"the envelope is not canonical msgpack: {e}") from e
    env = _keys(env, {"cmd", "sig"}, set(), "the envelope")
    if type(env["sig"]) is not bytes or len(env["sig"]) != 64:
        raise _Bad("sig must be 64 bytes")
    cmd = env["cmd"]
    if type(cmd) is not dict or set(cmd) != _CMD_KEYS:
        raise _Bad(f"cmd must be a map with exactly {sorted(_CMD_KEYS)}")
    for k in ("cp", "issuer"):
        if type(cmd[k]) is not bytes or len(cmd[k]) != 32:
            raise _Bad(f"cmd.{k} must be 32 bytes")
    if cmd["grant"] is not None and (type(cmd["grant"]) is not bytes or len(cmd["grant"]) != 16):
        raise _Bad("cmd.grant must be 16 bytes or nil")
    for k in ("seq", "issued_at", "expires_at"):
        _uint(cmd[k], f"cmd.{k}")
    spec = ACTIONS.get(cmd["action"]) if type(cmd["action"]) is str else None
    if spec is None:
        raise _Bad(f"unknown action {cmd['action']!r}; known: {', '.join(sorted(ACTIONS))}")
    spec[1](cmd["params"])
    return env  # type: ignore[no-any-return]


def check_command(
    raw: bytes,
    *,
    chain_id: str,
    cp: bytes,
    acl: AccessList | None,
    now_ms: int,
    last_seq: Callable[[bytes], int | None],
    skew_ms: int = 30_000,
) -> Verdict:
    """The verdict on one command envelope (see the module doc for the order of checks).

    `last_seq(issuer)` is the issuer's last accepted seq (None: never accepted one)."""
    try:
        env = _parse(raw)
    except _Bad as e:
        return Verdict("malformed", str(e), H(raw))
    cmd = env["cmd"]
    # the envelope decoded strictly, so it is canonical: cmd's canonical bytes are a slice of it
    cmd_bytes = raw[len(_ENV_HEAD) : len(raw) - _ENV_TAIL]
    chash = H(cmd_bytes)

    def no(code: str, message: str) -> Verdict:
        return Verdict(code, message, chash, cmd)

    issuer = cmd["issuer"]
    if not verify(issuer, env["sig"], _sign_prefix(chain_id) + cmd_bytes):  # = sign_bytes(CMD_TAG, …)
        return no("bad_signature", f"sig is not {issuer.hex()[:8]}…'s signature over the command "
                  f"(tag {CMD_TAG}, chain {chain_id!r})")  # fmt: skip
    if cmd["cp"] != cp:
        return no("wrong_cp", f"the command is for charge point {cmd['cp'].hex()[:8]}…, this is {cp.hex()[:8]}…")
    if not cmd["issued_at"] - skew_ms <= now_ms <= cmd["expires_at"] or cmd["expires_at"] - cmd["issued_at"] > MAX_WINDOW_MS:
        return no("expired", f"valid {cmd['issued_at']}..{cmd['expires_at']} (ms, at most {MAX_WINDOW_MS // 1000} s, "
                  f"skew {skew_ms} ms); the charge point's clock says {now_ms}")  # fmt: skip
    if acl is None:
        return no("stale_acl", "this charge point has no verified access list yet")
    stale = now_ms - acl.header_time_ms > acl.staleness_limit_ms
    scope, _ = ACTIONS[cmd["action"]]
    gid = cmd["grant"]
    grant = None
    if gid is None:
        if issuer != acl.owner:
            return no("no_grant", "only the owner may speak without naming a grant")
        level = OWNER_STACK_LEVEL
    else:
        if stale:
            return no("stale_acl", f"the access list was verified at a header {now_ms - acl.header_time_ms} ms "
                      f"old (limit {acl.staleness_limit_ms} ms); delegates wait until it is fresh again")  # fmt: skip
        grant = acl.grant(gid)
        if grant is None or grant["grantee"] != issuer:
            return no("no_grant", f"grant {gid.hex()} is not a live grant to {issuer.hex()[:8]}… "
                      f"in the access list at height {acl.height}")  # fmt: skip
        if now_ms < grant["not_before"]:
            return no("not_yet_valid", f"grant {gid.hex()} starts at {grant['not_before']}")
        if now_ms >= grant["not_after"]:
            return no("grant_expired", f"grant {gid.hex()} ended at {grant['not_after']}")
        if scope not in grant["scopes"] and not (cmd["action"] == "audit.read" and AUDIT_SCOPES & set(grant["scopes"])):
            return no("scope", f"{cmd['action']} needs scope {scope}; grant {gid.hex()} holds {grant['scopes']}")
        cap = grant["limits"].get("max_power_w")
        if cap is not None:
            over = [w for w in command_powers(cmd["action"], cmd["params"]) if w > cap]
            if over:
                return no("limits", f"{max(over)} W exceeds the grant's max_power_w {cap} W")
        level = grant["priority"]
    last = last_seq(issuer)
    if last is not None and cmd["seq"] <= last:
        return no("replay", f"seq {cmd['seq']} is not above {last}, the last accepted from this issuer")
    return Verdict("ok", "", chash, cmd, grant, level)
