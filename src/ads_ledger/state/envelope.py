"""The transaction envelope (DESIGN §4, normative): parse, id, sign and verify.

`{"type", "signer", "nonce", "body", "auth": [[pub, sig], ...]}`; every signature covers
`sign_bytes("ads/tx/1", chain_id, {type, signer, nonce, body})`, and the txid is the hash of
those bytes, so signatures can be added or stripped without changing the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify
from ads_ledger.core.errors import DecodeError, SignatureError

__all__ = ["MAX_TX_BYTES", "MAX_AUTH", "Envelope", "parse_envelope", "make_envelope"]

MAX_TX_BYTES = 32 * 1024
MAX_AUTH = 32  # more signatures than any governance quorum needs; bounds verification work
TX_TAG = "ads/tx/1"
ENVELOPE_KEYS = frozenset({"type", "signer", "nonce", "body", "auth"})


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    signer: bytes
    nonce: int
    body: dict[str, Any]
    auth: tuple[tuple[bytes, bytes], ...]
    raw: bytes

    def unsigned(self) -> dict[str, Any]:
        return {"type": self.type, "signer": self.signer, "nonce": self.nonce, "body": self.body}

    def sign_bytes(self, chain_id: str) -> bytes:
        """`sign_bytes(TX_TAG, chain_id, unsigned)`, cut from the raw bytes instead of re-encoding.

        `raw` is canonical (parse_envelope made sure), a 5-map whose first key is "auth" (keys
        sort), followed by body, nonce, signer, type — exactly the canonical 4-map of the unsigned
        fields. auth is n [bin32, bin64] pairs: 101 bytes each after a 1-byte (n <= 15) or 3-byte
        array header.
        """
        n = len(self.auth)
        return _sign_prefix(chain_id) + self.raw[1 + 5 + (1 if n <= 15 else 3) + 101 * n:]

    def txid(self, chain_id: str) -> bytes:
        return H(self.sign_bytes(chain_id))

    def signers(self) -> list[bytes]:
        return [pub for pub, _ in self.auth]

    def verify_signatures(self, chain_id: str) -> None:
        """Raise SignatureError unless every auth entry signs this tx under this chain id."""
        msg = self.sign_bytes(chain_id)
        for i, (pub, sig) in enumerate(self.auth):
            if not verify(pub, sig, msg):
                raise SignatureError(f"auth[{i}] signature by {pub.hex()} does not verify")


@lru_cache(maxsize=16)
def _sign_prefix(chain_id: str) -> bytes:
    return b"\x93" + codec.encode(TX_TAG) + codec.encode(chain_id) + b"\x84"


def _bin(obj: Any, n: int, what: str) -> bytes:
    if type(obj) is not bytes or len(obj) != n:
        raise DecodeError(f"{what} must be {n} bytes")
    return obj


def parse_envelope(raw: bytes) -> Envelope:
    """Decode and shape-check an envelope; DecodeError for anything off. Signatures unchecked."""
    if len(raw) > MAX_TX_BYTES:
        raise DecodeError(f"transaction is {len(raw)} bytes; the limit is {MAX_TX_BYTES}")
    obj = codec.decode(raw, max_size=MAX_TX_BYTES)
    if not isinstance(obj, dict) or set(obj) != ENVELOPE_KEYS:
        raise DecodeError("envelope must be a map with exactly type, signer, nonce, body, auth")
    ttype, signer, nonce, body, auth = (obj[k] for k in ("type", "signer", "nonce", "body", "auth"))
    if type(ttype) is not str or not ttype:
        raise DecodeError("type must be a non-empty str")
    _bin(signer, 32, "signer")
    if type(nonce) is not int or nonce < 0:
        raise DecodeError("nonce must be an unsigned integer")
    if type(body) is not dict:
        raise DecodeError("body must be a map")
    if type(auth) is not list or not 1 <= len(auth) <= MAX_AUTH:
        raise DecodeError(f"auth must hold 1..{MAX_AUTH} [pub, sig] pairs")
    pairs: list[tuple[bytes, bytes]] = []
    for entry in auth:
        if type(entry) is not list or len(entry) != 2:
            raise DecodeError("each auth entry must be [pub, sig]")
        pairs.append((_bin(entry[0], 32, "auth pub"), _bin(entry[1], 64, "auth sig")))
    if pairs[0][0] != signer:
        raise DecodeError("auth[0] must be the signer's signature")
    if len({p for p, _ in pairs}) != len(pairs):
        raise DecodeError("auth lists a key twice")
    return Envelope(ttype, signer, nonce, body, tuple(pairs), raw)


def make_envelope(
    chain_id: str,
    ttype: str,
    signer: SigningKey,
    nonce: int,
    body: dict[str, Any],
    cosigners: Sequence[SigningKey] = (),
) -> bytes:
    """Build and sign an envelope (signer first, then cosigners); returns its canonical bytes."""
    unsigned = {"type": ttype, "signer": signer.pub, "nonce": nonce, "body": body}
    msg = sign_bytes(TX_TAG, chain_id, unsigned)
    auth = [[k.pub, k.sign(msg)] for k in (signer, *cosigners)]
    return codec.encode({**unsigned, "auth": auth})
