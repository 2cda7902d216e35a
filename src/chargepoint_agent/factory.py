"""What a production line does once per device: the manufacturer signs the device statement
(DESIGN §4 device attestation) with its issuing certificate's key.

Used by `chargepoint-agent init --test-manufacturer DIR` with a testnet's TEST-ONLY `device-ca/`
(`test-manufacturer.pem` and its unencrypted key); a real charge point ships with the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ads_ledger.core.crypto import sign_bytes

__all__ = ["sign_device_statement", "MANUFACTURER_PEM", "MANUFACTURER_KEY_PEM"]

MANUFACTURER_PEM = "test-manufacturer.pem"
MANUFACTURER_KEY_PEM = "test-manufacturer.key.pem"


def sign_device_statement(ca_dir: Path, device: bytes, *, model: str, issued_at: int) -> dict[str, Any]:
    """The device attestation for `device`, signed with the manufacturer key in `ca_dir`."""
    cert = x509.load_pem_x509_certificate((ca_dir / MANUFACTURER_PEM).read_bytes())
    key = serialization.load_pem_private_key((ca_dir / MANUFACTURER_KEY_PEM).read_bytes(), None)
    statement = {"device": device, "issued_at": issued_at, "model": model}
    msg = sign_bytes("ads/device/1", "", statement)  # chain id "": valid on any ADS
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    else:
        raise ValueError(f"{ca_dir / MANUFACTURER_KEY_PEM}: the manufacturer key must be ECDSA P-256 or RSA")
    return {"issuer_certs": [cert.public_bytes(serialization.Encoding.DER)], "issuer_sig": sig,
            "statement": statement}  # fmt: skip
