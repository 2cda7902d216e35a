"""Encrypted, length-prefixed frames and the messages inside them (sans-IO).

Wire format of one frame, after the handshake (see `handshake`):

    length   4 bytes, big-endian, = len(ciphertext) (plaintext length + 16-byte tag)
    ciphertext  ChaCha20-Poly1305(key, nonce, plaintext, aad=length)

The nonce is 96 bits: 4 zero bytes then a 64-bit little-endian counter, one counter per
direction, starting at 0 and never sent on the wire. Each direction has its own key, so a
frame can be neither reflected back to its sender nor replayed, reordered or dropped without
the next authentication failing (the receiver's counter no longer matches).

The plaintext is canonical msgpack (DESIGN §3) of `{"t": type str, "b": body}`.

What can go wrong (all `RemoteError`s; the caller closes the connection):
`FrameTooLarge` as soon as a header announces more than `max_frame` bytes (nothing is
buffered for it), `FrameAuthError` on a failed tag, `MessageError` on a bad inner message.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ads_ledger.core import codec
from ads_ledger.node.p2p.errors import FrameAuthError, FrameTooLarge, MessageError

__all__ = [
    "HEADER",
    "TAG",
    "DEFAULT_MAX_FRAME",
    "Message",
    "FrameSealer",
    "FrameOpener",
    "encode_message",
    "decode_message",
]

HEADER = 4  # bytes of the length prefix
TAG = 16  # Poly1305 tag
DEFAULT_MAX_FRAME = 4 * 1024 * 1024 + 1024  # a 4 MiB block plus the message wrapper
_MAX_COUNTER = 2**64 - 1  # far beyond any connection's life; refuse rather than wrap
_TYPE_RE = re.compile(r"[a-z][a-z0-9_.]{0,31}\Z")


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message: its type and its body (any canonical msgpack value)."""

    type: str
    body: codec.Value


def encode_message(msg_type: str, body: codec.Value) -> bytes:
    """Canonical plaintext of a message. A bad type or body is our bug: ValueError/DecodeError."""
    if not isinstance(msg_type, str) or not _TYPE_RE.match(msg_type):
        raise ValueError(f"bad message type {msg_type!r}")
    return codec.encode({"b": body, "t": msg_type})


def decode_message(plaintext: bytes, *, max_size: int = DEFAULT_MAX_FRAME) -> Message:
    """Parse a frame's plaintext. Raises MessageError for anything but canonical {"t","b"}."""
    try:
        value = codec.decode(plaintext, max_size=max_size)
    except codec.DecodeError as e:
        raise MessageError(f"message is not canonical msgpack: {e}") from e
    if type(value) is not dict or set(value) != {"t", "b"}:
        raise MessageError('message must be a map with exactly the keys "t" and "b"')
    msg_type = value["t"]
    if type(msg_type) is not str or not _TYPE_RE.match(msg_type):
        raise MessageError(f"bad message type {msg_type!r}")
    return Message(msg_type, value["b"])


def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


class FrameSealer:
    """Seals plaintexts into frames for one direction. Not thread-safe; one writer per connection."""

    __slots__ = ("_aead", "_counter", "max_frame")

    def __init__(self, key: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if len(key) != 32:
            raise ValueError("a ChaCha20-Poly1305 key is 32 bytes")
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self.max_frame = max_frame

    def seal(self, plaintext: bytes) -> bytes:
        """Return header + ciphertext. ValueError if the frame would exceed `max_frame`."""
        n = len(plaintext) + TAG
        if n > self.max_frame:
            raise ValueError(f"frame of {n} bytes exceeds max_frame {self.max_frame}")
        if self._counter >= _MAX_COUNTER:
            raise RuntimeError("nonce counter exhausted; reconnect")
        header = struct.pack(">I", n)
        ct = self._aead.encrypt(_nonce(self._counter), plaintext, header)
        self._counter += 1
        return header + ct


class FrameOpener:
    """Buffers received bytes and opens complete frames for one direction, in order.

    Memory is bounded by the caller: feed more data only when `next_frame()` returns None,
    and the buffer never holds more than one maximal frame plus one read.
    """

    __slots__ = ("_aead", "_counter", "_buf", "max_frame", "_failed")

    def __init__(self, key: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if len(key) != 32:
            raise ValueError("a ChaCha20-Poly1305 key is 32 bytes")
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self._buf = bytearray()
        self.max_frame = max_frame
        self._failed = False

    def receive_data(self, data: bytes | bytearray) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> bytes | None:
        """The next plaintext, or None if a whole frame has not arrived yet.

        Raises FrameTooLarge / FrameAuthError; after an error the opener stays failed."""
        if self._failed:
            raise FrameAuthError("frame stream already failed")
        if len(self._buf) < HEADER:
            return None
        (n,) = struct.unpack_from(">I", self._buf, 0)
        if n > self.max_frame:
            self._failed = True
            raise FrameTooLarge(f"frame of {n} bytes announced; the limit is {self.max_frame}")
        if n < TAG:
            self._failed = True
            raise FrameAuthError(f"frame of {n} bytes is shorter than its tag")
        if len(self._buf) < HEADER + n:
            return None
        header = bytes(self._buf[:HEADER])
        ct = bytes(self._buf[HEADER : HEADER + n])
        del self._buf[: HEADER + n]
        if self._counter >= _MAX_COUNTER:
            self._failed = True
            raise FrameAuthError("nonce counter exhausted")
        try:
            pt = self._aead.decrypt(_nonce(self._counter), ct, header)
        except InvalidTag:
            self._failed = True
            raise FrameAuthError(
                f"frame {self._counter} fails authentication (tampered, replayed or reordered)"
            ) from None
        self._counter += 1
        return pt
