"""Device attestation: a manufacturer vouches for a charge point key (DESIGN §4).

Anyone can make an Ed25519 key, so a `cp/` record is created only for a device whose
manufacturer signed `sign_bytes("ads/device/1", "", statement)` with the leaf key of a chain
that validates at block time to a `device` anchor in gov/anchors, and whose leaf is not in
gov/revoked. The chain id is empty: the factory does not know which ADS the device will join.
"""

from __future__ import annotations

from typing import Any, Sequence

from ads_ledger.core.crypto import sign_bytes
from ads_ledger.state.certs import verify_issued
from ads_ledger.state.reasons import AttestationExpired, DeviceMismatch
from ads_ledger.state.records import short

__all__ = ["DEVICE_TAG", "device_sign_bytes", "verify_device_attestation", "MAX_MODEL_BYTES"]

DEVICE_TAG = "ads/device/1"
MAX_MODEL_BYTES = 64


def device_sign_bytes(statement: dict[str, Any]) -> bytes:
    """What the manufacturer signs: chain id "" (a fact about the device, valid on any ADS)."""
    return sign_bytes(DEVICE_TAG, "", statement)


def verify_device_attestation(
    att: dict[str, Any],
    cp: bytes,
    anchors_der: Sequence[bytes],
    revoked: Sequence[bytes],
    at_ms: int,
) -> dict[str, Any]:
    """Check a shape-checked device attestation for charge point `cp`; return the record's
    `device` field `{"issuer": H(leaf DER), "model"}` or raise a TxRejected."""
    st = att["statement"]
    if st["device"] != cp:
        raise DeviceMismatch(
            f"the device attestation vouches for key {short(st['device'])}, not for charge "
            f"point {short(cp)}; send the attestation the manufacturer made for this device"
        )
    if st["issued_at"] > at_ms:
        raise AttestationExpired(
            f"the device statement is issued at {st['issued_at']} (ms), after block time {at_ms}"
        )
    chain = verify_issued(
        att["issuer_certs"], att["issuer_sig"], device_sign_bytes(st), anchors_der, revoked, at_ms,
        purpose="device", renew="the manufacturer must re-sign the device statement under a current certificate",
        signed='sign_bytes("ads/device/1", "", statement)',
        revoked_why="this manufacturer certificate can no longer put charge points on the ledger",
    )  # fmt: skip
    return {"issuer": chain.issuer, "model": st["model"]}
