"""eID attestation verification (DESIGN §4 `attest`; research/domain.md §3).

`verify_attestation(chain_id, body, signer, anchors_der, at_ms, revoked)` checks, at block
time: the attestation names the signer and is within its validity; the issuer chain is within
its bounds and validity and builds to one of the `eid` trust anchors (certs.py); the leaf is not
revoked; the leaf key signs `sign_bytes("ads/attest/1", chain_id, attestation)`. It returns the
account's identity record, which remembers its issuer and anchor and whose `expires_at` is capped
by the chain's earliest `not_after` (an identity never outlives the certificates behind it).
Each failure is a typed `TxRejected`.
"""

from __future__ import annotations

from typing import Any, Sequence

from ads_ledger.core.crypto import sign_bytes
from ads_ledger.state.certs import is_revoked, ms_to_datetime, parse_anchor, verify_issued
from ads_ledger.state.reasons import AccountMismatch, AttestationExpired

__all__ = ["verify_attestation", "ms_to_datetime", "parse_anchor", "is_revoked"]


def verify_attestation(
    chain_id: str,
    body: dict[str, Any],
    signer: bytes,
    anchors_der: Sequence[bytes],
    at_ms: int,
    revoked: Sequence[bytes] = (),
) -> dict[str, Any]:
    """Verify a shape-checked `attest` body; return the identity record or raise TxRejected."""
    att = body["attestation"]
    if att["account"] != signer:
        raise AccountMismatch(
            f"the attestation is for account {att['account'].hex()}, but the tx is signed by "
            f"{signer.hex()}; submit it from the attested account"
        )
    if not att["issued_at"] <= at_ms < att["expires_at"]:
        raise AttestationExpired(
            f"the attestation is valid from {att['issued_at']} to {att['expires_at']} (ms), "
            f"not at block time {at_ms}; get a fresh attestation from the eID broker"
        )
    chain = verify_issued(
        body["issuer_certs"], body["issuer_sig"], sign_bytes("ads/attest/1", chain_id, att), anchors_der,
        revoked, at_ms, purpose="eid", renew="ask the broker for an attestation under a current certificate",
        signed='sign_bytes("ads/attest/1", chain_id, attestation)',
        revoked_why="this broker's attestations no longer count — get one from another eID broker",
    )  # fmt: skip
    return {
        "anchor": chain.anchor,
        "expires_at": min(att["expires_at"], chain.not_after_ms),
        "issuer": chain.issuer,
        "level": att["level"],
        "subject": att["subject"],
    }
