"""Transaction bodies (DESIGN §4) built from typed arguments, checked before signing where the
wallet can tell (scopes, windows, sizes), and the words that say what a committed one did.

Each builder returns `(type, body)` for `Ledger.submit`. The ledger checks everything again;
these checks only turn a sure refusal into an earlier, clearer error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ads_ledger.core import codec
from ads_ledger.state.records import EXCLUSIVE_SCOPES, SCOPES
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.units import format_power, format_when

__all__ = ["GrantSpec", "attest", "accept", "claim", "transfer", "grant", "revoke", "describe", "short",
           "parse_pub", "parse_id"]  # fmt: skip


def short(b: bytes | None) -> str:
    return "nobody" if b is None else b.hex()[:8] + "…"


def _hex(s: str, n: int, what: str, form: str) -> bytes:
    try:
        b = bytes.fromhex(s.strip())
    except ValueError:
        b = b""
    if len(b) != n:
        raise WalletError(f"{what} {s!r} is not {form}: expected {2 * n} hex characters")
    return b


def parse_pub(s: str, what: str = "key") -> bytes:
    """64 hex characters → 32 bytes, or a WalletError that says so."""
    return _hex(s, 32, what, "a public key")


def parse_id(s: str, what: str = "grant id") -> bytes:
    """A grant id: 32 hex characters → 16 bytes (`ads cp show CP` lists them)."""
    return _hex(s, 16, what, "a grant id (see `ads cp show CP`)")


def attest(body: dict[str, Any], account: bytes) -> tuple[str, dict[str, Any]]:
    """An eID broker's attestation body (`attestation`, `issuer_certs`, `issuer_sig`), for `account`."""
    if type(body) is not dict or set(body) != {"attestation", "issuer_certs", "issuer_sig"}:
        raise WalletError("the attestation file must hold {attestation, issuer_certs, issuer_sig}",
                          hint="get it from your eID broker (on a devnet: `ads eid issue`)")  # fmt: skip
    att = body["attestation"]
    if type(att) is not dict or att.get("account") != account:
        raise WalletError("the attestation names another account than this key", code="account_mismatch",
                          hint="attest with the key it was issued for, or get one for this key")  # fmt: skip
    return "attest", body


def accept(cp: bytes) -> tuple[str, dict[str, Any]]:
    return "cp.accept", {"cp": cp}


def claim(cp: bytes, device_sig: bytes, device: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    if len(device_sig) != 64:
        raise WalletError("--device-sig must be 128 hex characters (from `chargepoint-agent sign-ownership`)")
    body: dict[str, Any] = {"cp": cp, "device_sig": device_sig}
    if device is not None:
        body["device"] = device
    return "cp.claim", body


def transfer(cp: bytes, to: bytes) -> tuple[str, dict[str, Any]]:
    return "cp.transfer", {"cp": cp, "to": to}


@dataclass(frozen=True)
class GrantSpec:
    cp: bytes
    grantee: bytes
    scopes: tuple[str, ...]
    not_before: int
    not_after: int
    max_power_w: int | None = None
    exclusive: bool = False
    priority: int = 0
    redelegate: int = 0
    parent: bytes | None = None


def grant(g: GrantSpec, now_ms: int) -> tuple[str, dict[str, Any]]:
    unknown = sorted(set(g.scopes) - SCOPES)
    if not g.scopes or unknown:
        raise WalletError(f"unknown scope(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(sorted(SCOPES))}",
                          code="scope_unknown")  # fmt: skip
    if len(set(g.scopes)) != len(g.scopes):
        raise WalletError("a scope is given twice")
    if set(g.scopes) & EXCLUSIVE_SCOPES and not g.exclusive:
        raise WalletError(f"{', '.join(sorted(set(g.scopes) & EXCLUSIVE_SCOPES))} is exclusive: add --exclusive",
                          code="exclusive_required")  # fmt: skip
    if not g.not_before < g.not_after or g.not_after <= now_ms:
        raise WalletError(f"the window {format_when(g.not_before)} → {format_when(g.not_after)} is empty or over",
                          code="bad_window", hint="give a --from before the end, and a --for that ends in the future")  # fmt: skip
    if not 0 <= g.priority <= 99:
        raise WalletError("--priority must be 0..99")
    if not 0 <= g.redelegate <= 255:
        raise WalletError("--redelegate must be 0..255 (how many more levels the grantee may pass it on)")
    limits: dict[str, int] = {}
    if g.max_power_w is not None:
        limits["max_power_w"] = g.max_power_w
    return "grant", {"cp": g.cp, "grantee": g.grantee, "scopes": sorted(g.scopes), "not_before": g.not_before,
                     "not_after": g.not_after, "limits": limits, "exclusive": g.exclusive, "priority": g.priority,
                     "redelegate": g.redelegate, "parent": g.parent}  # fmt: skip


def revoke(cp: bytes, gid: bytes) -> tuple[str, dict[str, Any]]:
    return "revoke", {"cp": cp, "grant": gid}


def describe(ttype: str, body: dict[str, Any], signer: bytes, txid: bytes) -> str:
    """What a committed transaction did, in words."""
    if ttype == "attest":
        a = body["attestation"]
        return f"identity of {short(signer)} attested at level {a['level']} until {format_when(a['expires_at'])}"
    if ttype == "cp.accept":
        return f"{short(signer)} now owns charge point {short(body['cp'])}"
    if ttype == "cp.claim":
        return f"{short(signer)} claimed charge point {short(body['cp'])} (device signature checked)"
    if ttype == "cp.transfer":
        return (f"charge point {short(body['cp'])} offered to {short(body['to'])}; it becomes theirs when "
                f"they run `ads cp accept {body['cp'].hex()}` (grants are dropped then)")  # fmt: skip
    if ttype == "grant":
        lim = body["limits"].get("max_power_w")
        extra = f", ≤ {format_power(lim)}" if lim is not None else ""
        extra += ", exclusive" if body["exclusive"] else ""
        extra += f", priority {body['priority']}" if body["priority"] else ""
        extra += f", may re-delegate {body['redelegate']}×" if body["redelegate"] else ""
        return (f"granted {', '.join(body['scopes'])} on cp {short(body['cp'])} to {short(body['grantee'])} "
                f"until {format_when(body['not_after'])}{extra} (grant {txid[:16].hex()})")  # fmt: skip
    if ttype == "revoke":
        return f"revoked grant {body['grant'].hex()} on cp {short(body['cp'])} (and any sub-grants)"
    if ttype == "gov":
        return f"governance: {body['action']} {describe_gov_args(body['action'], body['args'])}"
    return f"{ttype} committed"


def describe_gov_args(action: str, args: dict[str, Any]) -> str:
    if action == "validators.set":
        return "; ".join(f"{short(p)} → power {w}" + (" (removed)" if w == 0 else "") for p, w in args.get("updates", []))
    if action in ("anchors.add", "anchors.remove"):
        from ads_ledger.core.crypto import H

        cert = args.get("cert", b"")
        return f"{args.get('purpose')} anchor {H(cert).hex()[:16]}… ({len(cert)} bytes DER)"
    if action == "issuers.revoke":
        return f"issuer {args.get('issuer', b'').hex()}"
    if action == "members.set":
        return f"{len(args.get('members', []))} members, threshold {args.get('threshold')}"
    if action == "params.set":
        return ", ".join(f"{k} = {v}" for k, v in sorted(args.items()))
    if action == "providers.set":
        cap = args.get("cap_w")
        roles = ", ".join(args.get("roles", [])) or "no roles"
        return (f"provider {short(args.get('pub', b''))} {args.get('name')!r}: {roles}; "
                f"cap {'none' if cap is None else format_power(cap)}")  # fmt: skip
    if action == "providers.suspend":
        verb = "suspend" if args.get("suspended") else "lift the suspension of"
        return f"{verb} provider {short(args.get('pub', b''))}"
    return codec.encode(args).hex()[:64]
