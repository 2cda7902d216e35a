"""Typed reasons a transaction is refused (DESIGN §4, §8: the `code` of a refused tx).

Every refusal is a `TxRejected` subclass (a `RemoteError`: the transaction is at fault) with a
stable snake_case `code` and a message a user can act on. The API returns the code as-is, so
codes never change meaning; new refusals get new codes.
"""

from __future__ import annotations

from ads_ledger.core.errors import RemoteError

__all__ = [
    "TxRejected",
    "Malformed",
    "TooLarge",
    "BadSignature",
    "BadNonce",
    "UnknownType",
    "NotOwner",
    "NotPending",
    "CpOwned",
    "CpUnknown",
    "NoOwner",
    "NoIdentity",
    "IdentityExpired",
    "ScopeUnknown",
    "ExclusiveHeld",
    "ExclusiveRequired",
    "NotAttenuated",
    "GrantUnknown",
    "NotGrantee",
    "NotAllowed",
    "BadWindow",
    "TooManyGrants",
    "BadDeviceSig",
    "Quorum",
    "NotMember",
    "BadGovArgs",
    "UntrustedChain",
    "CertExpired",
    "KeyUsage",
    "BadIssuerSig",
    "AttestationExpired",
    "AccountMismatch",
    "ChainTooLarge",
    "IssuerRevoked",
    "IdentityRevoked",
    "DeviceRequired",
    "DeviceMismatch",
    "RoleRequired",
    "Suspended",
    "CapacityCap",
    "CODES",
]


class TxRejected(RemoteError):
    """A transaction is refused. `code` is the stable reason; str(e) says what to do about it."""

    code = "rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Malformed(TxRejected):
    """The bytes or the body do not have the shape DESIGN §4 requires."""

    code = "malformed"


class TooLarge(TxRejected):
    code = "too_large"


class BadSignature(TxRejected):
    code = "bad_signature"


class BadNonce(TxRejected):
    code = "bad_nonce"


class UnknownType(TxRejected):
    code = "unknown_type"


class NotOwner(TxRejected):
    code = "not_owner"


class NotPending(TxRejected):
    """cp.accept by someone the charge point (or its owner) did not name."""

    code = "not_pending"


class CpOwned(TxRejected):
    code = "cp_owned"


class CpUnknown(TxRejected):
    code = "cp_unknown"


class NoOwner(TxRejected):
    code = "no_owner"


class NoIdentity(TxRejected):
    code = "no_identity"


class IdentityExpired(TxRejected):
    code = "identity_expired"


class ScopeUnknown(TxRejected):
    code = "scope_unknown"


class ExclusiveHeld(TxRejected):
    code = "exclusive_held"


class ExclusiveRequired(TxRejected):
    """A grant names an exclusive scope (§7: `flex`) without `exclusive: true`."""

    code = "exclusive_required"


class NotAttenuated(TxRejected):
    code = "not_attenuated"


class GrantUnknown(TxRejected):
    code = "grant_unknown"


class NotGrantee(TxRejected):
    """A sub-grant's parent is not held by the signer, or does not allow re-delegation."""

    code = "not_grantee"


class NotAllowed(TxRejected):
    """The signer is neither owner, issuer nor grantee of the grant it tries to revoke."""

    code = "not_allowed"


class BadWindow(TxRejected):
    code = "bad_window"


class TooManyGrants(TxRejected):
    code = "too_many_grants"


class BadDeviceSig(TxRejected):
    code = "bad_device_sig"


class Quorum(TxRejected):
    code = "quorum"


class NotMember(TxRejected):
    code = "not_member"


class BadGovArgs(TxRejected):
    code = "bad_gov_args"


# eID attestation (identity.py)


class UntrustedChain(TxRejected):
    code = "untrusted_chain"


class CertExpired(TxRejected):
    """A certificate of the issuer chain is not valid at block time (expired or not yet valid)."""

    code = "cert_expired"


class KeyUsage(TxRejected):
    code = "key_usage"


class BadIssuerSig(TxRejected):
    code = "bad_issuer_sig"


class AttestationExpired(TxRejected):
    """The attestation is expired, or not yet issued, at block time."""

    code = "attestation_expired"


class AccountMismatch(TxRejected):
    code = "account_mismatch"


class ChainTooLarge(TxRejected):
    """issuer_certs over 4 certificates or 16 KiB: refused before any signature is checked."""

    code = "chain_too_large"


class IssuerRevoked(TxRejected):
    """The leaf certificate (H(leaf DER)) is in gov/revoked: governance ended its issuer."""

    code = "issuer_revoked"


class IdentityRevoked(TxRejected):
    """An identity whose anchor left gov/anchors, or whose issuer was revoked: it no longer counts."""

    code = "identity_revoked"


# device attestation (device.py)


class DeviceRequired(TxRejected):
    """A new charge point record needs the manufacturer's device attestation."""

    code = "device_required"


class DeviceMismatch(TxRejected):
    """The device attestation vouches for another key than the charge point's."""

    code = "device_mismatch"


# regulator levers (levers.py, DESIGN §4)


class RoleRequired(TxRejected):
    """gov/params.scope_roles reserves a scope for registered providers with certain roles."""

    code = "role_required"


class Suspended(TxRejected):
    """The grantee (or the re-delegating signer) is a provider suspended by governance."""

    code = "suspended"


class CapacityCap(TxRejected):
    """The grant would take the grantee's live control power over its cap_w (or omits max_power_w)."""

    code = "capacity_cap"


def _all_codes() -> frozenset[str]:
    seen: set[str] = set()
    todo: list[type[TxRejected]] = [TxRejected]
    while todo:
        cls = todo.pop()
        seen.add(cls.code)
        todo.extend(cls.__subclasses__())
    return frozenset(seen)


CODES = _all_codes()
