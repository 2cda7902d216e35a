"""Validator-to-validator transport: authenticated, encrypted TCP links and a peer manager.

Layering (each module imports only those above it):
    errors      typed `RemoteError`s of the transport
    framing     sans-IO: ChaCha20-Poly1305 length-prefixed frames, `{"t","b"}` messages
    handshake   sans-IO: X25519 + HKDF + Ed25519 transcript signatures; node ids
    config      sans-IO: `PeerAddr` (node_id@host:port), `P2PConfig` limits, `Backoff`
    conn        trio: one authenticated connection over a stream
    peers       trio: `PeerManager` (listen, dial with backoff, queues, gossip, link switch)
The package may import `ads_ledger.core.codec`, `.crypto` and `.errors`, PyNaCl/cryptography and trio;
it knows nothing of consensus or the mempool, which talk to it through `on_message` and
`broadcast`/`send`.
"""

from ads_ledger.node.p2p.config import GOSSIP_TYPES, Backoff, P2PConfig, PeerAddr
from ads_ledger.node.p2p.errors import (
    ChainMismatch,
    ConnectionLost,
    FrameAuthError,
    FrameError,
    FrameTooLarge,
    HandshakeAuthError,
    HandshakeError,
    HandshakeTimeout,
    IdleTimeout,
    MessageError,
    P2PError,
    PeerKeyMismatch,
    PeerNotAllowed,
    ProtocolMismatch,
    SelfConnection,
    SlowPeer,
    UnknownMessageType,
)
from ads_ledger.node.p2p.framing import (
    FrameOpener,
    FrameSealer,
    Message,
    decode_message,
    encode_message,
)
from ads_ledger.node.p2p.handshake import Handshake, Session, node_id, parse_node_id
from ads_ledger.node.p2p.peers import MessageHandler, PeerManager

__all__ = [
    "ChainMismatch",
    "ConnectionLost",
    "FrameAuthError",
    "FrameError",
    "FrameTooLarge",
    "HandshakeAuthError",
    "HandshakeError",
    "HandshakeTimeout",
    "IdleTimeout",
    "MessageError",
    "P2PError",
    "PeerKeyMismatch",
    "PeerNotAllowed",
    "ProtocolMismatch",
    "SelfConnection",
    "SlowPeer",
    "UnknownMessageType",
    "FrameOpener",
    "FrameSealer",
    "Message",
    "decode_message",
    "encode_message",
    "Handshake",
    "Session",
    "node_id",
    "parse_node_id",
    "Backoff",
    "GOSSIP_TYPES",
    "MessageHandler",
    "P2PConfig",
    "PeerAddr",
    "PeerManager",
]
