"""Stateless shape checks of each transaction body (DESIGN §4 table).

`check_body(type, body)` raises `Malformed` (or `UnknownType`, `ScopeUnknown`) for a body that
could never be valid whatever the state; rules in the family modules may then index it freely.
"""

from __future__ import annotations

from typing import Any, Callable

from ads_ledger.state.certs import check_chain_bounds
from ads_ledger.state.reasons import Malformed, ScopeUnknown, UnknownType
from ads_ledger.state.records import SCOPES

__all__ = ["check_body", "TX_TYPES", "GOV_ACTIONS", "MAX_UINT"]

MAX_UINT = 2**64 - 1
MAX_SCOPES = 16
MAX_MODEL_BYTES = 64
GOV_ACTIONS = frozenset(
    {"validators.set", "anchors.add", "anchors.remove", "issuers.revoke", "members.set", "params.set",
     "providers.set", "providers.suspend"}
)


def _keys(body: dict[str, Any], required: set[str], what: str) -> None:
    if set(body) != required:
        missing = sorted(required - set(body))
        extra = sorted(set(body) - required)
        raise Malformed(f"{what} body needs exactly {sorted(required)}; missing {missing}, unexpected {extra}")


def _bin(v: Any, n: int, what: str) -> None:
    if type(v) is not bytes or len(v) != n:
        raise Malformed(f"{what} must be {n} bytes")


def _uint(v: Any, what: str, hi: int = MAX_UINT) -> None:
    if type(v) is not int or not 0 <= v <= hi:
        raise Malformed(f"{what} must be an integer in 0..{hi}")


def _attest(b: dict[str, Any]) -> None:
    _keys(b, {"attestation", "issuer_certs", "issuer_sig"}, "attest")
    a = b["attestation"]
    if type(a) is not dict:
        raise Malformed("attestation must be a map")
    _keys(a, {"account", "subject", "level", "issued_at", "expires_at"}, "attestation")
    _bin(a["account"], 32, "attestation.account")
    _bin(a["subject"], 32, "attestation.subject")
    if a["level"] not in ("substantial", "high"):
        raise Malformed('attestation.level must be "substantial" or "high"')
    _uint(a["issued_at"], "attestation.issued_at")
    _uint(a["expires_at"], "attestation.expires_at")
    _issuer(b)


def _issuer(b: dict[str, Any]) -> None:
    """issuer_certs within the chain bounds (before any signature work) and an issuer_sig."""
    check_chain_bounds(b["issuer_certs"])
    sig = b["issuer_sig"]
    if type(sig) is not bytes or not 0 < len(sig) <= 1024:
        raise Malformed("issuer_sig must be 1..1024 bytes")


def _device(a: Any) -> None:
    """A device attestation (§4): the manufacturer's statement, chain and signature."""
    if type(a) is not dict:
        raise Malformed("device must be a device attestation map")
    _keys(a, {"statement", "issuer_certs", "issuer_sig"}, "device attestation")
    st = a["statement"]
    if type(st) is not dict:
        raise Malformed("device.statement must be a map")
    _keys(st, {"device", "model", "issued_at"}, "device statement")
    _bin(st["device"], 32, "device.statement.device")
    if type(st["model"]) is not str or not 0 < len(st["model"].encode()) <= MAX_MODEL_BYTES:
        raise Malformed(f"device.statement.model must be a string of 1..{MAX_MODEL_BYTES} bytes")
    _uint(st["issued_at"], "device.statement.issued_at")
    _issuer(a)


def _optional_device(b: dict[str, Any], required: set[str], what: str) -> None:
    _keys(b, required | ({"device"} if "device" in b else set()), what)
    if "device" in b:
        _device(b["device"])


def _propose(b: dict[str, Any]) -> None:
    _optional_device(b, {"owner"}, "cp.propose")
    _bin(b["owner"], 32, "owner")


def _accept(b: dict[str, Any]) -> None:
    _keys(b, {"cp"}, "cp.accept")
    _bin(b["cp"], 32, "cp")


def _claim(b: dict[str, Any]) -> None:
    _optional_device(b, {"cp", "device_sig"}, "cp.claim")
    _bin(b["cp"], 32, "cp")
    _bin(b["device_sig"], 64, "device_sig")


def _transfer(b: dict[str, Any]) -> None:
    _keys(b, {"cp", "to"}, "cp.transfer")
    _bin(b["cp"], 32, "cp")
    _bin(b["to"], 32, "to")


GRANT_KEYS = {
    "cp", "grantee", "scopes", "not_before", "not_after", "limits",
    "exclusive", "priority", "redelegate", "parent",
}  # fmt: skip


def _grant(b: dict[str, Any]) -> None:
    _keys(b, GRANT_KEYS, "grant")
    _bin(b["cp"], 32, "cp")
    _bin(b["grantee"], 32, "grantee")
    scopes = b["scopes"]
    if type(scopes) is not list or not 1 <= len(scopes) <= MAX_SCOPES:
        raise Malformed(f"scopes must list 1..{MAX_SCOPES} scope names")
    if any(type(s) is not str for s in scopes) or len(set(scopes)) != len(scopes):
        raise Malformed("scopes must be distinct strings")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ScopeUnknown(f"unknown scope {unknown[0]!r}; known scopes: {', '.join(sorted(SCOPES))}")
    _uint(b["not_before"], "not_before")
    _uint(b["not_after"], "not_after")
    limits = b["limits"]
    if type(limits) is not dict or not set(limits) <= {"max_power_w"}:
        raise Malformed('limits must be a map with at most "max_power_w"')
    if "max_power_w" in limits:
        _uint(limits["max_power_w"], "limits.max_power_w")
    if type(b["exclusive"]) is not bool:
        raise Malformed("exclusive must be a bool")
    _uint(b["priority"], "priority", 99)
    _uint(b["redelegate"], "redelegate", 255)
    if b["parent"] is not None:
        _bin(b["parent"], 16, "parent")


def _revoke(b: dict[str, Any]) -> None:
    _keys(b, {"cp", "grant"}, "revoke")
    _bin(b["cp"], 32, "cp")
    _bin(b["grant"], 16, "grant")


def _gov(b: dict[str, Any]) -> None:
    _keys(b, {"action", "args"}, "gov")
    if b["action"] not in GOV_ACTIONS:
        raise Malformed(f"unknown gov action {b['action']!r}; known: {', '.join(sorted(GOV_ACTIONS))}")
    if type(b["args"]) is not dict:
        raise Malformed("gov args must be a map")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "attest": _attest,
    "cp.propose": _propose,
    "cp.accept": _accept,
    "cp.claim": _claim,
    "cp.transfer": _transfer,
    "grant": _grant,
    "revoke": _revoke,
    "gov": _gov,
}
TX_TYPES = frozenset(_CHECKS)


def check_body(ttype: str, body: dict[str, Any]) -> None:
    """Raise a TxRejected unless `body` has the shape §4 gives for `ttype`."""
    check = _CHECKS.get(ttype)
    if check is None:
        raise UnknownType(f"unknown transaction type {ttype!r}; known: {', '.join(sorted(TX_TYPES))}")
    check(body)
