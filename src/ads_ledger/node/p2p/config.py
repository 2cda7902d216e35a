"""Peer addresses, transport limits and the reconnect backoff (plain data, sans-IO).

Nothing here touches a socket or a clock: `Backoff` returns delays, the trio shell sleeps them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ads_ledger.node.p2p.framing import DEFAULT_MAX_FRAME
from ads_ledger.node.p2p.handshake import parse_node_id

__all__ = ["GOSSIP_TYPES", "PeerAddr", "P2PConfig", "Backoff"]

GOSSIP_TYPES = frozenset({"tx", "txs", "proposal", "vote", "evidence"})


@dataclass(frozen=True, slots=True)
class PeerAddr:
    """A pinned peer: `node_id@host:port` (IPv6 hosts in brackets)."""

    node_id: str
    host: str
    port: int

    def __post_init__(self) -> None:
        parse_node_id(self.node_id)
        if not 0 < self.port < 65536:
            raise ValueError(f"bad port {self.port}")

    @classmethod
    def parse(cls, text: str) -> "PeerAddr":
        """Parse `node_id@host:port`; ValueError if any part is malformed."""
        nid, sep, hostport = text.partition("@")
        host, sep2, port = hostport.rpartition(":")
        if not sep or not sep2 or not host or not port.isdigit():
            raise ValueError(f"a peer is node_id@host:port, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(nid, host, int(port))

    @property
    def pub(self) -> bytes:
        return parse_node_id(self.node_id)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}"


@dataclass(frozen=True)
class P2PConfig:
    """Limits and timings; the defaults suit a validator network on a WAN."""

    max_frame: int = DEFAULT_MAX_FRAME
    handshake_timeout: float = 5.0
    idle_timeout: float = 30.0  # close if nothing at all arrives for this long
    ping_interval: float = 10.0  # send a ping when nothing was sent for this long
    write_timeout: float = 30.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    stable_after: float = 2.0  # a connection that lived this long resets the backoff
    queue_messages: int = 1024
    queue_bytes: int = 32 * 1024 * 1024
    max_inbound: int = 64
    max_pending_handshakes: int = 16
    seen_cache: int = 65536
    write_batch_bytes: int = 256 * 1024
    message_types: frozenset[str] = GOSSIP_TYPES
    relay_types: frozenset[str] = GOSSIP_TYPES
    drop_when_full: frozenset[str] = frozenset({"tx", "txs"})
    # relayed only to peers that did not report a link to the sender (see PeerManager.note_links)
    link_aware_types: frozenset[str] = frozenset({"tx", "txs"})


class Backoff:
    """Capped exponential backoff with jitter: the n-th delay is uniform in [d/2, d] with
    d = min(initial * 2**n, cap). Jitter keeps restarted validators from redialing in lockstep."""

    def __init__(self, initial: float, cap: float, rng: random.Random) -> None:
        if not 0 < initial <= cap:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial, self.cap, self._rng = initial, cap, rng
        self._next = initial

    def next_delay(self) -> float:
        d = self._next
        self._next = min(self._next * 2, self.cap)
        return d * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self._next = self.initial
