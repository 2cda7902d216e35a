"""The peer manager: listens, dials, keeps one connection per peer, queues and gossips (trio).

`PeerManager.run()` owns a nursery: the listener, one dial loop per configured peer, and one
nursery per connection (a reader and a writer task). Inbound messages go to the node's
`on_message(peer_id, type, body)` coroutine; the node sends with `broadcast()` / `send()`,
which never block: they put the message in each peer's bounded queue.

Policies (the "why" is in the comments where they are applied):
- One connection per peer. If two exist (simultaneous dials), both ends keep the one dialed by
  the node with the smaller node id; a new connection from the same dialer replaces the old one.
- Outbound queue full (count or bytes): a `tx` or `txs` is dropped and counted (the mempool re-gossips and
  other peers relay it); any consensus message (`proposal`, `vote`, `evidence`, and any type not
  listed in `drop_when_full`) disconnects the slow peer with `SlowPeer` instead of being dropped
  silently: a peer that misses votes would stall, while a reconnected peer is brought up to date
  by consensus catch-up (votes and proposals are re-sent/re-requested for the current height).
- Gossip: for types in `relay_types`, a message (by hash of its bytes) that `on_message` accepted
  (returned True) is relayed to every other peer and never delivered again (a bounded LRU of
  hashes); one it did not accept (False/None, e.g. a vote for a height not reached yet) is
  forgotten, so the same bytes re-sent later by consensus catch-up are delivered again. Our own
  broadcasts are remembered so that their echoes are not delivered back to us. Raising a
  `RemoteError` in `on_message` disconnects the sender; any other exception is our bug and propagates.
- Link-aware relay of transactions: a peer may report the node ids it is connected to
  (`note_links`, from its `status`). A `tx`/`txs` message from peer A is not relayed to a peer C
  that reported a link to A: A sends what it gossips to all its peers, so C has it or will. In a
  full mesh no transaction is relayed, where each one went to every node three times over
  before. Only a peer's report of its own links is used (a lie starves only the liar), only for
  transactions (consensus messages are always relayed: liveness needs every honest node to see
  what one saw), and a transaction a Byzantine A withholds from C still reaches a proposer
  through every other node that has it.
- Allow-list: when `allowed` is given, inbound connections are accepted only from those node ids
  and from the configured peers; outbound connections are pinned to the configured node id.
- A peer that breaks the protocol is disconnected and logged with its typed error; the manager
  keeps serving everyone else. Dialing retries with capped exponential backoff and jitter.
- Liveness: a ping goes out after `ping_interval` without sending; a connection with no byte in
  for `idle_timeout`, or a write stalled for `write_timeout`, is closed.
- Stopping: `aclose()` flushes queues and half-closes (the peer sees EOF); `stop()` cuts at once.
- `set_link(peer_id, up)` severs or restores one link (no connection, no dial, inbound refused):
  the switch tests and the simulator use to partition a node.
- Counters for /metrics: `metrics()` (peers, bytes/messages in/out, dropped by type, errors by class).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Collection, Iterable

import trio

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.core.errors import RemoteError
from ads_ledger.node.p2p.config import GOSSIP_TYPES, Backoff, P2PConfig, PeerAddr
from ads_ledger.node.p2p.conn import PeerConnection, establish
from ads_ledger.node.p2p.errors import ConnectionLost, P2PError, SlowPeer, UnknownMessageType
from ads_ledger.node.p2p.framing import TAG, decode_message, encode_message
from ads_ledger.node.p2p.handshake import node_id, parse_node_id

__all__ = ["PeerManager", "MessageHandler", "PeerAddr", "P2PConfig", "GOSSIP_TYPES"]

log = logging.getLogger("ads_ledger.node.p2p")

_PING = encode_message("ping", None)

# on_message(peer_id, msg_type, body) -> relay?
MessageHandler = Callable[[str, str, codec.Value], Awaitable[bool | None]]


@dataclass
class _Peer:
    """A live connection registered in the manager."""

    conn: PeerConnection
    dialer: bytes
    send_ch: trio.MemorySendChannel[tuple[str, bytes]]
    recv_ch: trio.MemoryReceiveChannel[tuple[str, bytes]]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    queued_bytes: int = 0
    close_reason: BaseException | str | None = None

    def close(self, reason: BaseException | str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.scope.cancel()


class PeerManager:
    """Authenticated, encrypted links to the other validators (see the module docstring)."""

    def __init__(
        self,
        node_key: SigningKey,
        chain_id: str,
        listen_addr: tuple[str, int],
        peers: Iterable[PeerAddr],
        on_message: MessageHandler,
        *,
        allowed: Collection[str] | None = None,
        config: P2PConfig = P2PConfig(),
        rng: random.Random | None = None,
    ) -> None:
        self.node_key = node_key
        self.chain_id = chain_id
        self.node_id = node_id(node_key.pub)
        self.listen_addr = listen_addr
        self.config = config
        self.on_message = on_message
        self._rng = rng or random.Random()
        self._peers: dict[str, PeerAddr] = {}
        self._links: dict[str, frozenset[str]] = {}  # peer id -> the node ids it reports linked to
        for p in peers:
            self._peers[p.node_id] = p
        self._allowed: set[bytes] | None = None
        if allowed is not None:
            self._allowed = {parse_node_id(a) for a in allowed} | {p.pub for p in self._peers.values()}
        self._conns: dict[str, _Peer] = {}
        self._down: set[str] = set()
        self._sleeps: dict[str, trio.CancelScope] = {}
        self._changed = trio.Event()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._pending_handshakes = 0
        self._closing = False
        self._nursery: trio.Nursery | None = None
        self.listen_port: int | None = None
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and dial until cancelled or `stop()`; `task_status.started(port)` once listening."""
        host, port = self.listen_addr
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                listeners = await trio.open_tcp_listeners(port, host=host)
                self.listen_port = int(listeners[0].socket.getsockname()[1])
                nursery.start_soon(trio.serve_listeners, self._handle_inbound, listeners)
                for addr in list(self._peers.values()):
                    nursery.start_soon(self._dial_loop, addr)
                log.info("p2p %s listening on %s:%d", self.node_id[:12], host, self.listen_port)
                task_status.started(self.listen_port)
        finally:
            self._nursery = None

    def stop(self) -> None:
        """Close every connection now (queued messages are lost); `run()` returns."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def aclose(self, grace: float = 1.0) -> None:
        """Graceful stop: refuse new connections, let every writer flush its queue and close
        its side (the peer sees EOF), wait up to `grace` seconds for that, then `stop()`."""
        self._closing = True
        self._notify()
        for peer in list(self._conns.values()):
            peer.send_ch.close()  # the writer drains what is queued, then ends the connection
        with trio.move_on_after(grace):
            await self.wait_until(lambda: not self._conns)
        self.stop()

    def add_peer(self, addr: PeerAddr) -> None:
        """Pin and start dialing a peer (the manager must be running)."""
        if self._nursery is None:
            raise RuntimeError("add_peer needs a running manager")
        if addr.node_id in self._peers or addr.node_id == self.node_id:
            raise ValueError(f"peer {addr.node_id} is already configured or is this node")
        self._peers[addr.node_id] = addr
        if self._allowed is not None:
            self._allowed.add(addr.pub)
        self._nursery.start_soon(self._dial_loop, addr)

    # ---- queries ---------------------------------------------------------------------------

    def connected_peers(self) -> list[str]:
        return sorted(self._conns)

    def queued_bytes(self, peer_id: str) -> int | None:
        """Bytes waiting in a peer's outbound queue; None if not connected."""
        peer = self._conns.get(peer_id)
        return None if peer is None else peer.queued_bytes

    def metrics(self) -> dict[str, int]:
        """Flat counters for /metrics: peers, bytes and messages in/out, drops and errors."""
        m: dict[str, int] = {"peers": len(self._conns)}
        m.update(self.counters)
        m["dropped"] = sum(self.dropped.values())
        m.update({f"dropped_{k}": v for k, v in self.dropped.items()})
        m.update({f"error_{k}": v for k, v in self.errors.items()})
        return m

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked whenever a connection opens or closes."""
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ---- sending ---------------------------------------------------------------------------

    def broadcast(self, msg_type: str, body: codec.Value) -> int:
        """Queue a message to every connected peer; return how many peers took it."""
        plaintext = self._plaintext(msg_type, body)
        if msg_type in self.config.relay_types:
            self._mark_seen(H(plaintext))  # our own message echoed back is not delivered to us
        return self._enqueue_all(msg_type, plaintext, exclude=None)

    def send(self, peer_id: str, msg_type: str, body: codec.Value) -> bool:
        """Queue a message to one peer; False if not connected or the message was dropped."""
        plaintext = self._plaintext(msg_type, body)
        if msg_type in self.config.relay_types:
            self._mark_seen(H(plaintext))
        peer = self._conns.get(peer_id)
        return peer is not None and self._enqueue(peer, msg_type, plaintext)

    def send_encoded(self, peer_id: str, msg_type: str, plaintext: bytes) -> bool:
        """`send` of a message already encoded (`encode_message(msg_type, body)`'s bytes), for
        a caller that has its body's canonical bytes at hand; not for relayed types."""
        if msg_type not in self.config.message_types or msg_type in self.config.relay_types:
            raise ValueError(f"message type {msg_type!r} is not configured or is relayed")
        if len(plaintext) + TAG > self.config.max_frame:
            raise ValueError(f"{msg_type} of {len(plaintext)} bytes exceeds max_frame")
        peer = self._conns.get(peer_id)
        return peer is not None and self._enqueue(peer, msg_type, plaintext)

    def _plaintext(self, msg_type: str, body: codec.Value) -> bytes:
        if msg_type not in self.config.message_types:
            raise ValueError(f"message type {msg_type!r} is not configured")
        plaintext = encode_message(msg_type, body)
        if len(plaintext) + TAG > self.config.max_frame:
            raise ValueError(f"{msg_type} of {len(plaintext)} bytes exceeds max_frame")
        return plaintext

    def _enqueue_all(self, msg_type: str, plaintext: bytes, exclude: str | None) -> int:
        # a relay of a transaction skips peers linked to its sender (see the module doc)
        links = self._links if exclude is not None and msg_type in self.config.link_aware_types else {}
        return sum(self._enqueue(p, msg_type, plaintext) for pid, p in list(self._conns.items())
                   if pid != exclude and exclude not in links.get(pid, ()))  # fmt: skip

    def note_links(self, peer_id: str, linked: Collection[str]) -> None:
        """`peer_id` reports being connected to the node ids `linked` (its `status`): the
        transactions another of them relays to us need not be relayed to it."""
        if peer_id in self._conns:
            self._links[peer_id] = frozenset(linked)

    def _enqueue(self, peer: _Peer, msg_type: str, plaintext: bytes) -> bool:
        if peer.close_reason is not None:
            return False
        full = peer.queued_bytes + len(plaintext) > self.config.queue_bytes
        if not full:
            try:
                peer.send_ch.send_nowait((msg_type, plaintext))
            except trio.WouldBlock:
                full = True
            except trio.ClosedResourceError:  # closing gracefully: takes nothing new
                return False
        if full:
            if msg_type in self.config.drop_when_full:
                self.dropped[msg_type] += 1  # cheap to lose: re-gossiped by the mempool and others
            else:
                self.counters["slow_disconnects"] += 1
                peer.close(SlowPeer(f"outbound queue full with a {msg_type!r} that must not be dropped"))
            return False
        peer.queued_bytes += len(plaintext)
        return True

    def _mark_seen(self, h: bytes) -> bool:
        """Remember a gossip message by the hash of its bytes; False if it was already seen."""
        if h in self._seen:
            self._seen.move_to_end(h)
            return False
        self._seen[h] = None
        if len(self._seen) > self.config.seen_cache:
            self._seen.popitem(last=False)
        return True

    # ---- link switch (tests, partitions) ---------------------------------------------------

    def set_link(self, peer_id: str, up: bool) -> None:
        """Sever (up=False) or restore the link to a peer: no connection, no dials, inbound refused."""
        if up:
            self._down.discard(peer_id)
            scope = self._sleeps.get(peer_id)
            if scope is not None:
                scope.cancel()  # redial now instead of after the backoff
        else:
            self._down.add(peer_id)
            peer = self._conns.get(peer_id)
            if peer is not None:
                peer.close("link switched down")
        self._notify()

    # ---- dialing ---------------------------------------------------------------------------

    async def _dial_loop(self, addr: PeerAddr) -> None:
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, self._rng)
        pid = addr.node_id
        while True:
            await self.wait_until(lambda: pid not in self._down and pid not in self._conns)
            if self._closing:
                await trio.sleep_forever()  # until stop() cancels us
            started = trio.current_time()
            lived = 0.0
            try:
                with trio.fail_after(cfg.handshake_timeout):
                    stream = await trio.open_tcp_stream(addr.host, addr.port)
            except (OSError, trio.TooSlowError) as e:
                self.counters["dial_failures"] += 1
                log.info("p2p %s: dial %s failed: %s", self.node_id[:12], addr, e)
            else:
                if await self._serve(stream, outbound=True, expected=addr.pub, label=str(addr)):
                    lived = trio.current_time() - started
            if lived >= cfg.stable_after:
                backoff.reset()  # a flapping peer (accept, then drop) still backs off
            with trio.CancelScope() as scope:
                self._sleeps[pid] = scope
                await trio.sleep(backoff.next_delay())
            self._sleeps.pop(pid, None)
            if scope.cancelled_caught:
                backoff.reset()

    # ---- accepting -------------------------------------------------------------------------

    async def _handle_inbound(self, stream: trio.SocketStream) -> None:
        if self._pending_handshakes >= self.config.max_pending_handshakes:
            self.counters["inbound_refused"] += 1  # bounds what unauthenticated sockets can hold
            await trio.aclose_forcefully(stream)
            return
        try:
            peername = stream.socket.getpeername()
            label = f"{peername[0]}:{peername[1]}"
        except OSError:
            label = "?"
        await self._serve(stream, outbound=False, expected=None, label=label)

    # ---- one connection --------------------------------------------------------------------

    async def _serve(
        self, stream: trio.abc.Stream, *, outbound: bool, expected: bytes | None, label: str
    ) -> bool:
        """Handshake, register, run reader and writer until the connection ends.

        Returns True if the connection was established and registered (used for backoff)."""
        cfg = self.config
        pending = 0 if outbound else 1  # only inbound handshakes count against the limit
        self._pending_handshakes += pending
        try:
            conn = await establish(
                stream, self.node_key, self.chain_id, outbound=outbound, expected_peer=expected,
                allowed=None if outbound else self._allowed, max_frame=cfg.max_frame,
                timeout=cfg.handshake_timeout, counters=self.counters,
            )
        except P2PError as e:
            self._record_error(label, outbound, e)
            await trio.aclose_forcefully(stream)
            return False
        finally:
            self._pending_handshakes -= pending
        pid = conn.remote_id
        refusal = self._refusal(pid, outbound)
        if refusal is not None:
            log.info("p2p %s: refused %s (%s): %s", self.node_id[:12], pid[:12], label, refusal)
            self.counters["refused"] += 1
            await conn.aclose()
            return False
        send_ch, recv_ch = trio.open_memory_channel[tuple[str, bytes]](cfg.queue_messages)
        dialer = self.node_key.pub if outbound else conn.remote_pub
        peer = _Peer(conn, dialer, send_ch, recv_ch)
        existing = self._conns.get(pid)
        if existing is not None:
            if not self._keep_new(existing, peer):
                log.info("p2p %s: duplicate connection with %s closed", self.node_id[:12], pid[:12])
                self.counters["duplicates_closed"] += 1
                await conn.aclose()
                return False
            existing.close("replaced by a newer connection")
        self._conns[pid] = peer
        self.counters["connections_opened"] += 1
        log.info("p2p %s: connected to %s (%s, %s)", self.node_id[:12], pid[:12], label,
                 "out" if outbound else "in")
        self._notify()
        try:
            with peer.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, peer, self._reader)
                    nursery.start_soon(self._guard, peer, self._writer)
        finally:
            if self._conns.get(pid) is peer:
                del self._conns[pid]
                self._links.pop(pid, None)  # a new connection reports its links again
            self.counters["connections_closed"] += 1
            peer.send_ch.close()
            reason = peer.close_reason
            if isinstance(reason, BaseException) and not isinstance(reason, ConnectionLost):
                self._record_error(pid[:12], outbound, reason)
            else:
                log.info("p2p %s: disconnected from %s: %s", self.node_id[:12], pid[:12], reason or "closed")
            self._notify()
            await conn.aclose()
        return True

    def _refusal(self, pid: str, outbound: bool) -> str | None:
        if self._closing:
            return "shutting down"
        if pid in self._down:
            return "link is switched down"
        if not outbound and sum(not p.conn.outbound for p in self._conns.values()) >= self.config.max_inbound:
            return "too many inbound connections"
        return None

    def _keep_new(self, existing: _Peer, new: _Peer) -> bool:
        """Deterministic tie-break both ends agree on."""
        if existing.dialer == new.dialer:
            return True  # the dialer redialed: it saw the old connection die
        return new.dialer == min(self.node_key.pub, new.conn.remote_pub)

    def _record_error(self, who: str, outbound: bool, e: BaseException) -> None:
        self.errors[type(e).__name__] += 1
        log.warning("p2p %s: %s peer %s dropped: %s: %s", self.node_id[:12],
                    "outbound" if outbound else "inbound", who, type(e).__name__, e)

    async def _guard(self, peer: _Peer, task: Callable[[_Peer], Awaitable[None]]) -> None:
        """Run a connection task; a peer's fault (or EOF) closes this connection only."""
        try:
            await task(peer)
        except RemoteError as e:  # P2PError, or on_message refusing what the peer sent
            peer.close(e)

    async def _reader(self, peer: _Peer) -> None:
        cfg = self.config
        conn = peer.conn
        while True:
            plaintext = await conn.receive_plaintext(cfg.idle_timeout)
            if plaintext is None:
                peer.close("closed by the peer")
                return
            self.counters["messages_in"] += 1
            h = H(plaintext)
            if h in self._seen:  # only relayed types are remembered: a gossip copy, not decoded again
                self._seen.move_to_end(h)
                self.counters["duplicates_in"] += 1
                continue
            msg = decode_message(plaintext, max_size=conn.session.opener.max_frame)
            if msg.type == "ping":
                continue
            if msg.type not in cfg.message_types:
                raise UnknownMessageType(f"message type {msg.type!r}")
            relay = msg.type in cfg.relay_types
            if relay and not self._mark_seen(h):  # also covers copies arriving meanwhile
                self.counters["duplicates_in"] += 1
                continue
            ok = await self.on_message(conn.remote_id, msg.type, msg.body)
            if relay:
                if ok:
                    self._enqueue_all(msg.type, plaintext, exclude=conn.remote_id)
                else:
                    self._seen.pop(h, None)  # not accepted now: may be valid when re-sent

    async def _writer(self, peer: _Peer) -> None:
        cfg = self.config
        conn = peer.conn
        while True:
            batch: list[bytes] = []
            try:  # under load the queue is rarely empty: no timed wait (a cancel scope) then
                batch.append(peer.recv_ch.receive_nowait()[1])
            except trio.WouldBlock:
                with trio.move_on_after(cfg.ping_interval):
                    try:
                        batch.append((await peer.recv_ch.receive())[1])
                    except trio.EndOfChannel:  # aclose(): the queue is flushed, end our side
                        await self._send_eof(peer)
                        return
            except trio.EndOfChannel:
                await self._send_eof(peer)
                return
            dequeued = sum(map(len, batch))
            if not batch:
                batch.append(_PING)  # keeps the peer's idle timer from firing
            while dequeued < cfg.write_batch_bytes:  # one send_all for a burst of small messages
                try:
                    _, more = peer.recv_ch.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                batch.append(more)
                dequeued += len(more)
            peer.queued_bytes -= dequeued
            with trio.move_on_after(cfg.write_timeout) as stalled:
                await conn.send_plaintexts(batch)
                self.counters["messages_out"] += len(batch)
            if stalled.cancelled_caught:
                raise SlowPeer(f"a write stalled for {cfg.write_timeout} s")

    async def _send_eof(self, peer: _Peer) -> None:
        stream = peer.conn.stream
        if isinstance(stream, trio.abc.HalfCloseableStream):
            with trio.move_on_after(self.config.write_timeout):
                try:
                    await stream.send_eof()
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        # Not closing yet: the reader waits for the peer's EOF, so no unread byte turns our
        # close into a reset that could destroy what we just flushed.
        peer.close_reason = peer.close_reason or "closed gracefully"
