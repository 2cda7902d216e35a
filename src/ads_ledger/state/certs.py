"""X.509 issuer chains of attestations: bounds, path validation, leaf signatures (DESIGN §4).

Both `attest` (an eID broker's seal) and device attestations (a manufacturer's certificate)
carry `issuer_certs` (leaf first) and an `issuer_sig` by the leaf's key. This module checks them
at block time against the trust anchors of one purpose:

- `check_chain_bounds` (stateless, before any parsing or signature): at most 4 certificates and
  16 KiB in all — a crafted chain of many self-issued intermediates cannot buy signature work;
- `validate_chain`: every certificate within its validity, RFC 5280 path validation to one of
  the anchors (`cryptography.x509.verification`), digitalSignature in the leaf's key usage;
  returns the leaf, H(anchor DER) and the chain's earliest `not_after` (ms);
- `check_leaf_signature`: ECDSA P-256/SHA-256 (DER) or RSA-PSS/SHA-256 by the leaf's key.

Path validation uses cryptography's client verifier (the only non-server verifier it has) with
the Web PKI CA profile, except that CA certificates may carry any extended key usage, and with
no profile on the leaf (a seal certificate has no SAN and no clientAuth EKU): the leaf's one
requirement, digitalSignature, is checked here. No CRL, OCSP or EU trusted-list lookup happens:
governance keeps `gov/anchors` and `gov/revoked` current (domain.md §3).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ads_ledger.core.crypto import H
from ads_ledger.state.reasons import (
    BadIssuerSig,
    CertExpired,
    ChainTooLarge,
    IssuerRevoked,
    KeyUsage,
    Malformed,
    UntrustedChain,
)

__all__ = [
    "MAX_CHAIN_CERTS",
    "MAX_CHAIN_BYTES",
    "Chain",
    "check_chain_bounds",
    "validate_chain",
    "check_leaf_signature",
    "is_revoked",
    "verify_issued",
    "parse_anchor",
    "ms_to_datetime",
    "datetime_to_ms",
]

MAX_CHAIN_CERTS = 4  # leaf + up to 3 intermediates (eIDAS: seal ← issuing CA ← root)
MAX_CHAIN_BYTES = 16 * 1024

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Block time (integer ms, UTC) as an aware datetime, without float rounding."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


def datetime_to_ms(t: dt.datetime) -> int:
    return (t - _EPOCH) // _MS


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


def check_chain_bounds(certs_der: Sequence[Any]) -> None:
    """Stateless: the chain's count and size limits, checked before any certificate is parsed."""
    if type(certs_der) is not list or not 1 <= len(certs_der) <= MAX_CHAIN_CERTS:
        n = len(certs_der) if type(certs_der) is list else "no"
        raise ChainTooLarge(
            f"issuer_certs must list 1..{MAX_CHAIN_CERTS} DER certificates, leaf first "
            f"(got {n}); send only the leaf and its intermediates, not the root"
        )
    total = 0
    for c in certs_der:
        if type(c) is not bytes or not c:
            raise Malformed("each issuer certificate must be non-empty DER bytes")
        total += len(c)
    if total > MAX_CHAIN_BYTES:
        raise ChainTooLarge(f"issuer_certs hold {total} bytes; the limit is {MAX_CHAIN_BYTES}")


@dataclass(frozen=True, slots=True)
class Chain:
    """A validated issuer chain: its leaf, H(leaf DER), H(anchor DER), earliest not_after (ms)."""

    leaf: x509.Certificate
    issuer: bytes
    anchor: bytes
    not_after_ms: int


def _verifier(anchors: Sequence[x509.Certificate], at: dt.datetime) -> Any:
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_CERTS)
        .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:  # a malformed name must not turn a refusal into a crash
        return "<unparsable subject>"


def _check_validity(certs: Sequence[x509.Certificate], at: dt.datetime, renew: str) -> None:
    for i, c in enumerate(certs):
        nb, na = c.not_valid_before_utc, c.not_valid_after_utc
        if not nb <= at <= na:
            what = "the leaf" if i == 0 else f"issuer certificate {i}"
            raise CertExpired(
                f"{what} ({_subject(c)}) is valid from {nb.isoformat()} to "
                f"{na.isoformat()}, not at block time {at.isoformat()}; {renew}"
            )


# Validated chains: (certs, anchors) -> (Chain, from_ms, to_ms). Path validation depends on the
# time only through the validity windows of the path's certificates, so within [from, to] the
# result is the same; this spares the path work when one chain signs many statements (a
# factory's certificate, a broker's seal) or is replayed with forged signatures.
_VALIDATED: dict[tuple[tuple[bytes, ...], tuple[bytes, ...]], tuple[Chain, int, int]] = {}
_VALIDATED_MAX = 512


def validate_chain(
    certs_der: Sequence[bytes],
    anchors_der: Sequence[bytes],
    at_ms: int,
    *,
    purpose: str,
    renew: str,
) -> Chain:
    """Validate a bounded chain (leaf first) to one of `anchors_der` at block time `at_ms`.

    `purpose` names the anchors in messages ("eid", "device"); `renew` says what to do when a
    certificate is out of its validity."""
    check_chain_bounds(list(certs_der))
    cache_key = (tuple(certs_der), tuple(anchors_der))
    hit = _VALIDATED.get(cache_key)
    if hit is not None and hit[1] <= at_ms <= hit[2]:
        return hit[0]
    chain, window = _validate(certs_der, anchors_der, at_ms, purpose, renew)
    if len(_VALIDATED) >= _VALIDATED_MAX:
        _VALIDATED.pop(next(iter(_VALIDATED)))  # oldest first: a bounded FIFO is enough here
    _VALIDATED[cache_key] = (chain, *window)
    return chain


def _validate(
    certs_der: Sequence[bytes], anchors_der: Sequence[bytes], at_ms: int, purpose: str, renew: str
) -> tuple[Chain, tuple[int, int]]:
    try:
        certs = [_load_der(d) for d in certs_der]
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is not a ValueError
        raise Malformed(f"issuer_certs holds something that is not a DER certificate: {e}") from e
    at = ms_to_datetime(at_ms)
    _check_validity(certs, at, renew)
    anchors = [parse_anchor(d) for d in anchors_der]
    if not anchors:
        raise UntrustedChain(f"the chain has no trust anchors (gov/anchors has no {purpose!r} anchor)")
    leaf = certs[0]
    try:
        verified = _verifier(anchors, at).verify(leaf, certs[1:])
    except (VerificationError, ValueError) as e:
        raise UntrustedChain(
            f"the issuer chain of {_subject(leaf)} does not validate to a {purpose!r} trust "
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
    path: list[x509.Certificate] = list(verified.chain)
    anchor = path[-1].public_bytes(serialization.Encoding.DER)
    not_after = min(datetime_to_ms(c.not_valid_after_utc) for c in path)
    every = [*certs, *path]  # the window in which this outcome holds: all of them valid
    window = (max(datetime_to_ms(c.not_valid_before_utc) for c in every),
              min(datetime_to_ms(c.not_valid_after_utc) for c in every))  # fmt: skip
    return Chain(leaf, H(certs_der[0]), H(anchor), not_after), window


def check_leaf_signature(leaf: x509.Certificate, sig: bytes, msg: bytes, what: str) -> None:
    """`sig` is the leaf key's ECDSA P-256/SHA-256 (DER) or RSA-PSS/SHA-256 signature of `msg`."""
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
        raise BadIssuerSig(f"issuer_sig does not verify under the leaf certificate's key over {what}") from e


def is_revoked(revoked: Sequence[bytes], issuer: bytes) -> bool:
    """`revoked` is gov/revoked: sorted, so a lookup is a bisection."""
    i = bisect_left(revoked, issuer)
    return i < len(revoked) and revoked[i] == issuer


def verify_issued(certs_der: Sequence[bytes], sig: bytes, msg: bytes, anchors_der: Sequence[bytes],
                  revoked: Sequence[bytes], at_ms: int, *, purpose: str, renew: str, signed: str,
                  revoked_why: str) -> Chain:  # fmt: skip
    """A statement issued under a chain: the chain validates to a `purpose` anchor, its leaf is
    not revoked (IssuerRevoked: `revoked_why`), and the leaf's key signed `msg` (`signed` names
    it in the refusal). Returns the validated chain."""
    chain = validate_chain(certs_der, anchors_der, at_ms, purpose=purpose, renew=renew)
    if is_revoked(revoked, chain.issuer):
        raise IssuerRevoked(f"governance revoked the certificate {chain.issuer.hex()[:16]}…: {revoked_why}")
    check_leaf_signature(chain.leaf, sig, msg, signed)
    return chain
