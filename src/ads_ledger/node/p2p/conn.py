"""One authenticated connection over a trio stream: the thin shell around `handshake` and `framing`.

`establish()` runs the handshake on a connected stream within a deadline and returns a
`PeerConnection`; `PeerConnection.receive()` and `.send_plaintexts()` move whole messages.
Network failures become `ConnectionLost` and timeouts `HandshakeTimeout`, so a caller handles
exactly one family of errors (`P2PError`) for everything a peer or the network can do.
The caller owns the stream's lifetime: `aclose()` always, in a `finally`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Collection

import trio

from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.p2p.errors import ConnectionLost, HandshakeError, HandshakeTimeout, IdleTimeout
from ads_ledger.node.p2p.framing import DEFAULT_MAX_FRAME, Message, decode_message
from ads_ledger.node.p2p.handshake import Handshake, Session

__all__ = ["PeerConnection", "establish", "RECV_CHUNK"]

RECV_CHUNK = 65536
_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class PeerConnection:
    """An established connection: whole messages in and out, with byte counters.

    One task may call `receive()` and one (other) task `send_plaintexts()` at a time."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        session: Session,
        *,
        outbound: bool,
        counters: Counter[str] | None = None,
    ) -> None:
        self.stream = stream
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.session = session
        self.outbound = outbound
        self.remote_pub = session.remote_pub
        self.remote_id = session.remote_id
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0

    async def receive(self, idle_timeout: float = math.inf) -> tuple[Message, bytes] | None:
        """The next message and its plaintext bytes, or None at a clean EOF.

        Raises FrameError subclasses for hostile bytes, ConnectionLost for network errors and
        IdleTimeout if no byte at all arrives for `idle_timeout` seconds (a large frame that
        keeps arriving slowly is not idle)."""
        plaintext = await self.receive_plaintext(idle_timeout)
        if plaintext is None:
            return None
        return decode_message(plaintext, max_size=self.session.opener.max_frame), plaintext

    async def receive_plaintext(self, idle_timeout: float = math.inf) -> bytes | None:
        """Like `receive()`, but the message is left undecoded (a caller that already has
        it, e.g. a gossip duplicate recognised by hash, skips the decoding)."""
        opener = self.session.opener
        while True:
            plaintext = opener.next_frame()
            if plaintext is not None:
                self.messages_in += 1
                return plaintext
            try:
                with trio.fail_after(idle_timeout):
                    data = await self.stream.receive_some(RECV_CHUNK)
            except trio.TooSlowError:
                raise IdleTimeout(f"nothing received for {idle_timeout} s") from None
            except _NETWORK_ERRORS as e:
                raise ConnectionLost(f"receive failed: {type(e).__name__}: {e}") from e
            if not data:
                if opener.buffered:
                    raise ConnectionLost(f"EOF inside a frame ({opener.buffered} bytes pending)")
                return None
            self.bytes_in += len(data)
            self.counters["bytes_in"] += len(data)
            opener.receive_data(data)

    async def send_plaintexts(self, plaintexts: list[bytes]) -> int:
        """Seal each plaintext into a frame and write them in one `send_all`; returns bytes sent."""
        sealer = self.session.sealer
        data = b"".join([sealer.seal(p) for p in plaintexts])
        try:
            await self.stream.send_all(data)
        except _NETWORK_ERRORS as e:
            raise ConnectionLost(f"send failed: {type(e).__name__}: {e}") from e
        self.bytes_out += len(data)
        self.counters["bytes_out"] += len(data)
        self.messages_out += len(plaintexts)
        return len(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def establish(
    stream: trio.abc.Stream,
    node_key: SigningKey,
    chain_id: str,
    *,
    outbound: bool,
    expected_peer: bytes | None = None,
    allowed: Collection[bytes] | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
    timeout: float = 5.0,
    counters: Counter[str] | None = None,
) -> PeerConnection:
    """Run the handshake on `stream`; raise a HandshakeError subclass or ConnectionLost on failure."""
    hs = Handshake(node_key, chain_id, expected_peer=expected_peer, allowed=allowed, max_frame=max_frame)
    counters = counters if counters is not None else Counter()
    try:
        with trio.fail_after(timeout):
            out = hs.data_to_send()
            while True:
                if out:
                    await stream.send_all(out)
                    counters["bytes_out"] += len(out)
                if hs.complete:
                    break
                data = await stream.receive_some(RECV_CHUNK)
                if not data:
                    raise HandshakeError("the peer closed the connection during the handshake")
                counters["bytes_in"] += len(data)
                hs.receive_data(data)
                out = hs.data_to_send()
    except trio.TooSlowError:
        raise HandshakeTimeout(f"no complete handshake within {timeout} s") from None
    except _NETWORK_ERRORS as e:
        raise ConnectionLost(f"during the handshake: {type(e).__name__}: {e}") from e
    return PeerConnection(stream, hs.session(), outbound=outbound, counters=counters)
