"""Typed errors of the P2P layer.

Every class here is a `RemoteError`: the peer (or the network) is at fault, the connection is
closed and logged, and the node keeps going. Misuse of the API by our own code raises plain
`ValueError`/`RuntimeError` instead, because a bug of ours is not a Byzantine peer.
"""

from __future__ import annotations

from ads_ledger.core.errors import RemoteError

__all__ = [
    "P2PError",
    "HandshakeError",
    "ProtocolMismatch",
    "ChainMismatch",
    "HandshakeAuthError",
    "PeerKeyMismatch",
    "PeerNotAllowed",
    "SelfConnection",
    "FrameError",
    "FrameTooLarge",
    "FrameAuthError",
    "MessageError",
    "UnknownMessageType",
    "IdleTimeout",
    "HandshakeTimeout",
    "ConnectionLost",
    "SlowPeer",
]


class P2PError(RemoteError):
    """A peer broke the transport protocol; its connection is dropped."""


class HandshakeError(P2PError):
    """The authenticated key exchange failed."""


class ProtocolMismatch(HandshakeError):
    """The first bytes are not our hello (garbage, another protocol, or another version)."""


class ChainMismatch(HandshakeError):
    """The peer belongs to another chain id; nodes of different chains never talk."""


class HandshakeAuthError(HandshakeError):
    """The peer's key-exchange or transcript signature is invalid."""


class PeerKeyMismatch(HandshakeError):
    """Outbound: the authenticated node key is not the one pinned in `node_id@host:port`."""


class PeerNotAllowed(HandshakeError):
    """Inbound: the authenticated node key is not in the configured allow-list."""


class SelfConnection(HandshakeError):
    """The remote end is this node (its own key or its own ephemeral key reflected back)."""


class HandshakeTimeout(HandshakeError):
    """The handshake did not finish within the configured time."""


class FrameError(P2PError):
    """An encrypted frame is malformed."""


class FrameTooLarge(FrameError):
    """A frame header announces more bytes than the configured maximum."""


class FrameAuthError(FrameError):
    """A frame fails ChaCha20-Poly1305 authentication (tampered, replayed, reordered or forged)."""


class MessageError(FrameError):
    """A frame decrypted but its message is not canonical `{"t": str, "b": body}`."""


class UnknownMessageType(MessageError):
    """A well-formed message of a type this node does not speak."""


class IdleTimeout(P2PError):
    """Nothing (not even a ping) arrived from the peer within the idle timeout."""


class ConnectionLost(P2PError):
    """The peer closed the connection, or the network failed (EOF, reset, broken pipe)."""


class SlowPeer(P2PError):
    """The peer does not read fast enough: its outbound queue overflowed with a message that
    must not be dropped, or a write stalled longer than the write timeout."""
