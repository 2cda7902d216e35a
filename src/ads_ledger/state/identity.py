"""eID attestation verification (DESIGN §4 `attest`; research/domain.md §3).

`verify_attestation(chain_id, body, signer, anchors_der, at_ms)` checks, at block time:
the attestation names the signer and is within its validity; every certificate of the issuer
chain is within its validity; the chain (leaf first) builds to one of the trust anchors under
RFC 5280 path validation (`cryptography.x509.verification`); the leaf's key usage includes
digitalSignature; the leaf key signs `sign_bytes("ads/attest/1", chain_id, attestation)` with
ECDSA P-256/SHA-256 (DER) or RSA-PSS/SHA-256. It returns the account's identity record.

Path validation uses cryptography's client verifier (the only non-server verifier it has) with
the Web PKI CA profile, except that CA certificates may carry any extended key usage, and with
no profile on the leaf (a seal certificate has no SAN and no clientAuth EKU): the leaf's one
requirement, digitalSignature, is checked here. No CRL, OCSP or EU trusted-list lookup happens:
governance keeps `gov/anchors` current (domain.md §3). Each failure is a typed `TxRejected`.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ads_ledger.core.crypto import H, sign_bytes
from ads_ledger.state.reasons import (
    AccountMismatch,
    AttestationExpired,
    BadIssuerSig,
    CertExpired,
    KeyUsage,
    Malformed,
    UntrustedChain,
)

__all__ = ["verify_attestation", "ms_to_datetime", "parse_anchor"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Block time (integer ms, UTC) as an aware datetime, without float rounding."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


@lru_cache(maxsize=256)
def _load_der(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def parse_anchor(der: bytes) -> x509.Certificate:
    """Parse a trust anchor; Malformed unless it is a DER CA certificate."""
    try:
        cert = _load_der(der)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound, x509.InvalidVersion) as e:
        raise Malformed(f"trust anchor is not a DER CA certificate: {e}") from e
    if not bc.ca:
        raise Malformed("trust anchor must be a CA certificate (basicConstraints cA=true)")
    return cert


def _verifier(anchors: Sequence[x509.Certificate], at: dt.datetime) -> Any:
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .max_chain_depth(8)
        .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:  # a malformed name must not turn a refusal into a crash
        return "<unparsable subject>"


def _check_validity(certs: Sequence[x509.Certificate], at: dt.datetime) -> None:
    for i, c in enumerate(certs):
        nb, na = c.not_valid_before_utc, c.not_valid_after_utc
        if not nb <= at <= na:
            what = "the leaf" if i == 0 else f"issuer certificate {i}"
            raise CertExpired(
                f"{what} ({_subject(c)}) is valid from {nb.isoformat()} to "
                f"{na.isoformat()}, not at block time {at.isoformat()}; ask the broker for an "
                "attestation under a current certificate"
            )


def _check_signature(leaf: x509.Certificate, sig: bytes, msg: bytes) -> None:
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise BadIssuerSig(f"the leaf certificate's key cannot be used: {e}") from e
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise BadIssuerSig(f"issuer key curve {key.curve.name} is not P-256")
            key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(sig, msg, pss, hashes.SHA256())
        else:
            raise BadIssuerSig(f"issuer key type {type(key).__name__} is not ECDSA P-256 or RSA")
    except InvalidSignature as e:
        raise BadIssuerSig(
            "issuer_sig does not verify under the leaf certificate's key over "
            "sign_bytes(\"ads/attest/1\", chain_id, attestation)"
        ) from e


def verify_attestation(
    chain_id: str,
    body: dict[str, Any],
    signer: bytes,
    anchors_der: Sequence[bytes],
    at_ms: int,
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
    try:
        certs = [_load_der(d) for d in body["issuer_certs"]]
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is not a ValueError
        raise Malformed(f"issuer_certs holds something that is not a DER certificate: {e}") from e
    at = ms_to_datetime(at_ms)
    _check_validity(certs, at)
    anchors = [parse_anchor(d) for d in anchors_der]
    if not anchors:
        raise UntrustedChain("the chain has no trust anchors (gov/anchors is empty)")
    leaf = certs[0]
    try:
        _verifier(anchors, at).verify(leaf, certs[1:])
    except (VerificationError, ValueError) as e:
        raise UntrustedChain(
            f"the issuer chain of {_subject(leaf)} does not validate to a trust "
            f"anchor in gov/anchors: {e}"
        ) from e
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        ok = ku.digital_signature
    except x509.ExtensionNotFound:
        ok = False
    except ValueError as e:  # a malformed extension the path validator tolerated
        raise Malformed(f"leaf certificate extensions do not parse: {e}") from e
    if not ok:
        raise KeyUsage("the leaf certificate's key usage must include digitalSignature")
    _check_signature(leaf, body["issuer_sig"], sign_bytes("ads/attest/1", chain_id, att))
    return {
        "expires_at": att["expires_at"],
        "issuer": H(body["issuer_certs"][0]),
        "level": att["level"],
        "subject": att["subject"],
    }
