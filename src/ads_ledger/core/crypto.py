"""Hashing, Ed25519 keys and sign bytes (DESIGN §3, normative).

Verification is libsodium's strict `crypto_sign_verify_detached` (via PyNaCl), the check
every party must agree on; the Wycheproof vectors pin its edge cases.
"""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ads_ledger.core import codec
from ads_ledger.core.errors import SignatureError

__all__ = [
    "H",
    "sign_bytes",
    "SigningKey",
    "verify",
    "verify_or_raise",
    "TAGS",
    "hexpub",
]

TAGS = frozenset(
    {
        "ads/tx/1",
        "ads/own/1",
        "ads/attest/1",
        "ads/device/1",
        "ads/proposal/1",
        "ads/vote/1",
        "ads/cmd/1",
        "ads/receipt/1",
    }
)


def H(data: bytes) -> bytes:
    """SHA-256, the one hash of the protocol."""
    return hashlib.sha256(data).digest()


def sign_bytes(tag: str, chain_id: str, body: codec.Value) -> bytes:
    """canonical([tag, chain_id, body]): the only bytes anything is ever signed over."""
    if tag not in TAGS:
        raise ValueError(f"unknown signing tag {tag!r}")  # our bug, not the peer's
    return codec.encode([tag, chain_id, body])


def verify(pub: bytes, sig: bytes, message: bytes) -> bool:
    """Strict Ed25519 verification; False for any malformed key or signature."""
    if type(pub) is not bytes or len(pub) != 32 or type(sig) is not bytes or len(sig) != 64:
        return False
    try:
        # crypto_sign_open runs libsodium's crypto_sign_verify_detached on sig || message
        nacl.bindings.crypto_sign_open(sig + message, pub)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


def verify_or_raise(pub: bytes, sig: bytes, message: bytes, what: str = "signature") -> None:
    if not verify(pub, sig, message):
        raise SignatureError(f"{what} does not verify under key {hexpub(pub)}")


def hexpub(pub: bytes) -> str:
    return pub.hex() if isinstance(pub, bytes) else repr(pub)


class SigningKey:
    """An Ed25519 private key, kept as its 32-byte seed."""

    __slots__ = ("seed", "_key", "_pub")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = seed
        self._key = nacl.signing.SigningKey(seed)
        self._pub = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def pub(self) -> bytes:
        return self._pub

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    def sign_tagged(self, tag: str, chain_id: str, body: codec.Value) -> bytes:
        return self.sign(sign_bytes(tag, chain_id, body))

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey(pub={self.pub.hex()})"
