"""Mutually authenticated key exchange between two nodes (sans-IO).

Identity: a node key is an Ed25519 `SigningKey`; its **node id is the 64-char lowercase hex of
its 32-byte public key** (not a hash of it). The public key is what validators are already
known by (DESIGN §3, §6), so a node id can be checked against a validator set without a
lookup table, and hex of the key is the text form DESIGN §3 gives keys anyway.

Protocol (`ads/p2p/1`), both sides act the same, there is no initiator role:

1. hello, plaintext, 48 bytes: `MAGIC` (8) || chain tag (8) || ephemeral X25519 public key (32).
   The chain tag `H("ads/p2p/1/chain\\0" || chain_id)[:8]` only makes a wrong-chain peer fail
   early with a clear `ChainMismatch`; the real binding to the chain is step 2.
2. shared = X25519(own ephemeral secret, peer ephemeral public); an all-zero result (a
   low-order point) is refused. transcript hash `th = H(canonical(["ads/p2p/1", chain_id, lo, hi]))`
   with `lo < hi` the two ephemeral keys sorted, and HKDF-SHA256(ikm=shared, salt=th,
   info="ads/p2p/1 keys") gives 64 bytes: the first 32 key the frames sent by the side whose
   ephemeral key is `lo`, the last 32 those sent by `hi`.
3. auth, the first encrypted frame (see `framing`) each way: message type "auth" with body
   `{"pub": node key, "sig": Ed25519(node key, canonical(["ads/p2p/1/auth", chain_id, th, own ephemeral]))}`.
   Each side verifies the other's signature, then pins the key (outbound: the expected node id;
   inbound: the allow-list, if any) and refuses its own key.

Why it holds (the design is SIGMA / STS as used by Tendermint's SecretConnection, and a
subset of Noise XX's guarantees):
- Confidentiality and integrity: only the two ephemeral secret holders know `shared`;
  identities travel inside the encrypted channel, so a passive observer does not learn them.
- Authentication and no man-in-the-middle: each node signs the transcript hash, which covers
  both ephemeral keys, so a signature cannot be moved to a session whose ephemerals a MITM
  chose; the signed bytes also name the signer's own ephemeral key, so a signature cannot be
  reflected back as the other side's.
- Reflection: the two directions use different keys (lo/hi split), and a hello echoing our own
  ephemeral key is refused (`SelfConnection`); a frame bounced back fails authentication.
- Replay: ephemeral keys are fresh per connection, so keys and transcript are fresh and
  recorded frames or auth messages from an old session never verify.
- Chains: chain_id is in the transcript and in the signed bytes, so nodes of different chains
  cannot complete a handshake even if the 8-byte tag were forged.
- Domain separation: the signed bytes start with "ads/p2p/1/auth", which is not a tag of
  `crypto.sign_bytes`, so no handshake signature is ever a valid vote, proposal or tx signature.
Not provided: identity hiding against an active prober (we send our signed auth before
checking theirs, so anyone who completes a hello learns our node key; validator keys are
public in a permissioned network anyway). Forward secrecy does hold: frames are keyed only by
ephemeral secrets, so a later theft of a node key does not decrypt recorded traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, verify
from ads_ledger.node.p2p.errors import (
    ChainMismatch,
    FrameError,
    HandshakeAuthError,
    HandshakeError,
    MessageError,
    PeerKeyMismatch,
    PeerNotAllowed,
    ProtocolMismatch,
    SelfConnection,
)
from ads_ledger.node.p2p.framing import (
    DEFAULT_MAX_FRAME,
    FrameOpener,
    FrameSealer,
    decode_message,
    encode_message,
)

__all__ = [
    "PROTOCOL",
    "MAGIC",
    "HELLO_SIZE",
    "node_id",
    "parse_node_id",
    "chain_tag",
    "Session",
    "Handshake",
]

PROTOCOL = "ads/p2p/1"
MAGIC = b"ADSP2P\x00\x01"  # the last byte is the protocol version
HELLO_SIZE = len(MAGIC) + 8 + 32
_AUTH_LABEL = PROTOCOL + "/auth"
AUTH_MAX_FRAME = 1024  # bytes an auth frame may announce (it needs about 130)
_KEYS_INFO = (PROTOCOL + " keys").encode()


def node_id(pub: bytes) -> str:
    """Text id of a node: lowercase hex of its Ed25519 public key."""
    if type(pub) is not bytes or len(pub) != 32:
        raise ValueError("a node key is 32 bytes")
    return pub.hex()


def parse_node_id(text: str) -> bytes:
    """Inverse of `node_id`. ValueError unless exactly 64 lowercase hex characters."""
    if not isinstance(text, str) or len(text) != 64 or text != text.lower():
        raise ValueError(f"a node id is 64 lowercase hex characters, got {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"a node id is 64 lowercase hex characters, got {text!r}") from None


def chain_tag(chain_id: str) -> bytes:
    return H(b"ads/p2p/1/chain\x00" + chain_id.encode("utf-8"))[:8]


def _auth_bytes(chain_id: str, th: bytes, eph: bytes) -> bytes:
    return codec.encode([_AUTH_LABEL, chain_id, th, eph])


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated channel: the peer's node key and the two frame directions.

    `opener` may already hold bytes the peer sent right after its auth frame."""

    remote_pub: bytes
    transcript_hash: bytes
    sealer: FrameSealer
    opener: FrameOpener

    @property
    def remote_id(self) -> str:
        return node_id(self.remote_pub)


class Handshake:
    """One side of the handshake. Feed bytes in, pull bytes out, until `complete`.

    `data_to_send()` returns what must be written (the hello at first, then the auth frame);
    `receive_data(data)` raises a `HandshakeError` subclass (or `FrameError`) on any failure,
    after which the object is dead and the connection must be closed.
    """

    def __init__(
        self,
        node_key: SigningKey,
        chain_id: str,
        *,
        expected_peer: bytes | None = None,
        allowed: Collection[bytes] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        self._key = node_key
        self._chain_id = chain_id
        self._expected = expected_peer
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._max_frame = max_frame
        self._eph = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
        self._eph_pub = self._eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._out = bytearray(MAGIC + chain_tag(chain_id) + self._eph_pub)
        self._inbuf = bytearray()
        self._remote_eph: bytes | None = None
        self._th: bytes | None = None
        self._sealer: FrameSealer | None = None
        self._opener: FrameOpener | None = None
        self._session: Session | None = None
        self._failed = False

    @property
    def complete(self) -> bool:
        return self._session is not None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("handshake not complete")
        return self._session

    def receive_data(self, data: bytes | bytearray) -> None:
        if self._failed:
            raise HandshakeError("handshake already failed")
        if self._session is not None:
            raise RuntimeError("handshake complete; feed the session's opener instead")
        try:
            self._receive(data)
        except BaseException:
            self._failed = True
            raise

    def _receive(self, data: bytes | bytearray) -> None:
        if self._opener is None:
            self._inbuf += data
            n = min(len(self._inbuf), len(MAGIC))
            if self._inbuf[:n] != MAGIC[:n]:  # refuse garbage at its first wrong byte
                raise ProtocolMismatch(f"bad hello: {bytes(self._inbuf[:n])!r} is not {MAGIC!r}")
            if len(self._inbuf) < HELLO_SIZE:
                return
            hello, rest = bytes(self._inbuf[:HELLO_SIZE]), bytes(self._inbuf[HELLO_SIZE:])
            self._inbuf.clear()
            self._on_hello(hello)
            assert self._opener is not None
            data = rest
        self._opener.receive_data(data)
        try:
            frame = self._opener.next_frame()
        except FrameError as e:  # keys differ (other chain, MITM) or the frame is forged
            raise HandshakeAuthError(f"auth frame refused: {type(e).__name__}: {e}") from e
        if frame is not None:
            self._on_auth(frame)

    def _on_hello(self, hello: bytes) -> None:
        tag = hello[len(MAGIC) : len(MAGIC) + 8]
        if tag != chain_tag(self._chain_id):
            raise ChainMismatch("the peer's hello names another chain id")
        remote_eph = hello[len(MAGIC) + 8 :]
        if remote_eph == self._eph_pub:
            raise SelfConnection("the peer reflected our own ephemeral key")
        try:
            shared = self._eph.exchange(X25519PublicKey.from_public_bytes(remote_eph))
        except ValueError:  # all-zero shared secret: a low-order point
            raise HandshakeAuthError("the peer's ephemeral key is a low-order point") from None
        lo, hi = sorted((self._eph_pub, remote_eph))
        th = H(codec.encode([PROTOCOL, self._chain_id, lo, hi]))
        okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=th, info=_KEYS_INFO).derive(shared)
        k_lo, k_hi = okm[:32], okm[32:]
        send_key, recv_key = (k_lo, k_hi) if self._eph_pub == lo else (k_hi, k_lo)
        self._remote_eph, self._th = remote_eph, th
        self._sealer = FrameSealer(send_key, max_frame=self._max_frame)
        # until the peer is authenticated it may announce no more than an auth frame needs:
        # an unauthenticated socket cannot make us buffer max_frame bytes
        self._opener = FrameOpener(recv_key, max_frame=min(AUTH_MAX_FRAME, self._max_frame))
        sig = self._key.sign(_auth_bytes(self._chain_id, th, self._eph_pub))
        self._out += self._sealer.seal(encode_message("auth", {"pub": self._key.pub, "sig": sig}))

    def _on_auth(self, frame: bytes) -> None:
        assert self._th is not None and self._remote_eph is not None
        assert self._sealer is not None and self._opener is not None
        try:
            msg = decode_message(frame, max_size=AUTH_MAX_FRAME)
        except MessageError as e:
            raise HandshakeAuthError(f"bad auth message: {e}") from e
        body = msg.body
        if msg.type != "auth" or type(body) is not dict or set(body) != {"pub", "sig"}:
            raise HandshakeAuthError("the first frame is not an auth message")
        pub, sig = body["pub"], body["sig"]
        if type(pub) is not bytes or len(pub) != 32 or type(sig) is not bytes or len(sig) != 64:
            raise HandshakeAuthError("auth message fields have the wrong types")
        if not verify(pub, sig, _auth_bytes(self._chain_id, self._th, self._remote_eph)):
            raise HandshakeAuthError(f"transcript signature of {pub.hex()} does not verify")
        if pub == self._key.pub:
            raise SelfConnection("connected to ourselves")
        if self._expected is not None and pub != self._expected:
            raise PeerKeyMismatch(
                f"expected node {self._expected.hex()}, the peer authenticated as {pub.hex()}"
            )
        if self._allowed is not None and pub not in self._allowed:
            raise PeerNotAllowed(f"node {pub.hex()} is not in the allow-list")
        self._opener.max_frame = self._max_frame  # authenticated: full-size frames from now on
        self._session = Session(pub, self._th, self._sealer, self._opener)
