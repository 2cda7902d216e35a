"""PeerManager over real sockets on 127.0.0.1: connect, gossip, pinning, hostile peers, restarts, partitions.

Every test runs under trio.fail_after and cancels its managers at the end.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Awaitable, Callable

import pytest
import trio

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import DecodeError
from ads_ledger.node.p2p import P2PConfig, PeerAddr, PeerManager, encode_message, node_id
from ads_ledger.node.p2p.conn import establish

CHAIN = "ads-test"
CFG = P2PConfig(
    handshake_timeout=2.0,
    idle_timeout=5.0,
    ping_interval=1.0,
    backoff_initial=0.02,
    backoff_max=0.25,
    stable_after=0.5,
)
LIMIT = 15.0  # seconds for any one test


class Node:
    """A PeerManager plus an inbox, for tests."""

    def __init__(self, seed: int, peers: list[PeerAddr] | None = None, *, chain: str = CHAIN,
                 allowed: list[str] | None = None, cfg: P2PConfig = CFG, port: int = 0) -> None:
        self.key = SigningKey(bytes([seed]) * 32)
        self.id = node_id(self.key.pub)
        self.inbox: list[tuple[str, str, Any]] = []
        self.relay: bool = True
        self.reject: bool = False
        self.mgr = PeerManager(self.key, chain, ("127.0.0.1", port), peers or [], self.handle,
                               allowed=allowed, config=cfg)
        self.port = port

    async def handle(self, peer: str, msg_type: str, body: Any) -> bool:
        if self.reject:
            raise DecodeError("test handler refuses this body")
        self.inbox.append((peer, msg_type, body))
        return self.relay

    def addr(self) -> PeerAddr:
        return PeerAddr(self.id, "127.0.0.1", self.port)

    async def start(self, nursery: trio.Nursery) -> None:
        self.port = await nursery.start(self.mgr.run)

    def bodies(self, msg_type: str) -> list[Any]:
        return [b for _, t, b in self.inbox if t == msg_type]


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)


async def connected(a: Node, b: Node) -> None:
    await eventually(lambda: b.id in a.mgr.connected_peers() and a.id in b.mgr.connected_peers())


def run(test: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    async def main() -> None:
        with trio.fail_after(LIMIT):
            async with trio.open_nursery() as nursery:
                await test(nursery)
                nursery.cancel_scope.cancel()

    trio.run(main)


async def expect_closed(stream: trio.SocketStream) -> None:
    """Read until the manager closes the connection (EOF or reset)."""
    with trio.fail_after(5):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass


def test_two_managers_connect_and_exchange() -> None:
    async def t(nursery: trio.Nursery) -> None:
        b = Node(2)
        await b.start(nursery)
        a = Node(1, [b.addr()])
        await a.start(nursery)
        await connected(a, b)
        assert a.mgr.broadcast("vote", {"h": 1}) == 1
        assert a.mgr.send(b.id, "proposal", {"block": b"\x00" * 70_000})
        assert b.mgr.send(a.id, "tx", b"raw-tx")
        await eventually(lambda: len(b.inbox) == 2 and len(a.inbox) == 1)
        assert b.inbox == [(a.id, "vote", {"h": 1}), (a.id, "proposal", {"block": b"\x00" * 70_000})]
        assert a.inbox == [(b.id, "tx", b"raw-tx")]
        m = a.mgr.metrics()
        assert m["peers"] == 1 and m["bytes_out"] > 70_000 and m["bytes_in"] > 0
        assert b.mgr.metrics()["bytes_in"] >= m["bytes_out"] - 200  # pings in flight at most
        # Gossip dedup: accepted bytes are delivered once; refused ones again when re-sent.
        for _ in range(2):
            a.mgr.send(b.id, "vote", {"h": 1})
        b.relay = False
        for _ in range(2):
            a.mgr.send(b.id, "vote", {"h": 2})
        await eventually(lambda: b.bodies("vote").count({"h": 2}) == 2)
        assert b.bodies("vote").count({"h": 1}) == 1 and b.mgr.counters["duplicates_in"] == 2
        assert not a.mgr.send("00" * 32, "vote", 1)  # not connected
        assert a.mgr.queued_bytes("00" * 32) is None
        assert a.mgr.queued_bytes(b.id) is not None and a.mgr.queued_bytes(b.id) >= 0
        with pytest.raises(ValueError):
            a.mgr.broadcast("nonsense", 1)

    run(t)


def test_simultaneous_dials_keep_exactly_one_connection() -> None:
    async def t(nursery: trio.Nursery) -> None:
        a, b = Node(1), Node(2)
        await a.start(nursery)
        await b.start(nursery)
        a.mgr.add_peer(b.addr())
        b.mgr.add_peer(a.addr())
        await connected(a, b)
        await trio.sleep(0.5)  # let any duplicate settle
        assert a.mgr.connected_peers() == [b.id] and b.mgr.connected_peers() == [a.id]
        # Both ends kept the same connection: the one dialed by the smaller node id.
        pa, pb = a.mgr._conns[b.id], b.mgr._conns[a.id]
        assert pa.dialer == pb.dialer == min(a.key.pub, b.key.pub)
        a.mgr.broadcast("vote", 7)
        await eventually(lambda: b.bodies("vote") == [7])

    run(t)


def test_four_managers_gossip_each_message_once() -> None:
    async def t(nursery: trio.Nursery) -> None:
        nodes = [Node(i + 1) for i in range(4)]
        for n in nodes:
            await n.start(nursery)
        for i in range(4):  # a ring: every message has two paths to the opposite node
            nodes[i].mgr.add_peer(nodes[(i + 1) % 4].addr())
        for i in range(4):
            await connected(nodes[i], nodes[(i + 1) % 4])
        a, b, c, d = nodes
        assert c.id not in a.mgr.connected_peers()
        for mt in ("tx", "proposal", "vote", "evidence"):
            a.mgr.broadcast(mt, {"from": "a", "kind": mt})
        await eventually(lambda: all(len(n.inbox) == 4 for n in (b, c, d)))
        await trio.sleep(0.2)
        for n in (b, c, d):
            assert sorted(t for _, t, _ in n.inbox) == ["evidence", "proposal", "tx", "vote"]
        assert a.inbox == []  # echoes of our own messages are not delivered back
        assert sum(n.mgr.counters["duplicates_in"] for n in nodes) >= 4
        # A handler that returns False stops the relay there.
        b.relay = d.relay = False
        a.mgr.broadcast("tx", b"not relayed")
        await eventually(lambda: b"not relayed" in b.bodies("tx") and b"not relayed" in d.bodies("tx"))
        await trio.sleep(0.2)
        assert b"not relayed" not in c.bodies("tx")

    run(t)


def test_wrong_pinned_key_is_refused() -> None:
    async def t(nursery: trio.Nursery) -> None:
        b = Node(2)
        await b.start(nursery)
        impostor = PeerAddr(node_id(SigningKey(b"\x09" * 32).pub), "127.0.0.1", b.port)
        a = Node(1, [impostor])
        await a.start(nursery)
        await eventually(lambda: a.mgr.errors["PeerKeyMismatch"] >= 2)  # and it keeps retrying
        assert a.mgr.connected_peers() == [] and a.mgr.metrics()["error_PeerKeyMismatch"] >= 2

    run(t)


def test_inbound_allow_list_refuses_unknown_nodes() -> None:
    async def t(nursery: trio.Nursery) -> None:
        b = Node(2, allowed=[node_id(SigningKey(b"\x03" * 32).pub)])
        await b.start(nursery)
        a = Node(1, [b.addr()])
        await a.start(nursery)
        await eventually(lambda: b.mgr.errors["PeerNotAllowed"] >= 1)
        assert b.mgr.connected_peers() == []
        c = Node(3, [b.addr()])
        await c.start(nursery)
        await connected(b, c)
        d = Node(4)  # not in the allow-list, but configured as b's peer: allowed
        await d.start(nursery)
        b.mgr.add_peer(d.addr())
        await connected(b, d)
        e = Node(5, [d.addr()])  # d has no allow-list: anyone may connect
        await e.start(nursery)
        await connected(d, e)

    run(t)


def test_other_chain_is_refused() -> None:
    async def t(nursery: trio.Nursery) -> None:
        b = Node(2, chain="another-chain")
        await b.start(nursery)
        a = Node(1, [b.addr()])
        await a.start(nursery)
        await eventually(lambda: a.mgr.errors["ChainMismatch"] >= 1 and b.mgr.errors["ChainMismatch"] >= 1)
        assert a.mgr.connected_peers() == [] and b.mgr.connected_peers() == []

    run(t)


async def _serving_pair(nursery: trio.Nursery, cfg: P2PConfig = CFG) -> tuple[Node, Node]:
    b = Node(2, cfg=cfg)
    await b.start(nursery)
    a = Node(1, [b.addr()], cfg=cfg)
    await a.start(nursery)
    await connected(a, b)
    return a, b


async def _still_serves(a: Node, b: Node, tag: int) -> None:
    a.mgr.broadcast("vote", {"alive": tag})
    await eventually(lambda: {"alive": tag} in b.bodies("vote"))
    assert a.id in b.mgr.connected_peers()


def test_garbage_bytes_are_disconnected_and_the_manager_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ads_ledger.node.p2p")

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery)
        raw = await trio.open_tcp_stream("127.0.0.1", b.port)
        await raw.send_all(b"\x16\x03\x01 this is not our protocol" * 10)
        await expect_closed(raw)
        await raw.aclose()
        assert b.mgr.errors["ProtocolMismatch"] == 1
        assert "inbound peer 127.0.0.1" in caplog.text and "ProtocolMismatch" in caplog.text
        await _still_serves(a, b, 1)

    run(t)


async def _attacker(b: Node, seed: int = 7) -> tuple[trio.SocketStream, Any]:
    """A client that completes a real handshake with b, to send hostile frames afterwards."""
    stream = await trio.open_tcp_stream("127.0.0.1", b.port)
    conn = await establish(stream, SigningKey(bytes([seed]) * 32), CHAIN, outbound=True,
                           expected_peer=b.key.pub)
    await eventually(lambda: conn.remote_id == b.id and len(b.mgr.connected_peers()) == 2)
    return stream, conn


@pytest.mark.parametrize("attack", ["oversized", "bad_mac", "replay", "unknown_type", "not_msgpack", "handler_refuses"])
def test_hostile_frames_disconnect_the_sender_only(attack: str) -> None:
    expected = {
        "oversized": "FrameTooLarge",
        "bad_mac": "FrameAuthError",
        "replay": "FrameAuthError",
        "unknown_type": "UnknownMessageType",
        "not_msgpack": "MessageError",
        "handler_refuses": "DecodeError",
    }[attack]

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery)
        stream, conn = await _attacker(b)
        sealer = conn.session.sealer
        if attack == "oversized":
            await stream.send_all(struct.pack(">I", CFG.max_frame + 1) + b"\x00" * 1000)
        elif attack == "bad_mac":
            frame = bytearray(sealer.seal(encode_message("vote", 1)))
            frame[10] ^= 0x40
            await stream.send_all(bytes(frame))
        elif attack == "replay":
            frame = sealer.seal(encode_message("vote", {"once": True}))
            await stream.send_all(frame)
            await eventually(lambda: {"once": True} in b.bodies("vote"))
            await stream.send_all(frame)
        elif attack == "unknown_type":
            await stream.send_all(sealer.seal(encode_message("bogus", 1)))
        elif attack == "not_msgpack":
            await stream.send_all(sealer.seal(b"\xc1\xc1"))
        elif attack == "handler_refuses":
            b.reject = True
            await stream.send_all(sealer.seal(encode_message("tx", b"bad")))
        await expect_closed(stream)
        await stream.aclose()
        await eventually(lambda: b.mgr.errors[expected] == 1)
        assert b.mgr.connected_peers() == [a.id]
        b.reject = False
        await _still_serves(a, b, 2)
        assert sum(b.mgr.errors.values()) == 1

    run(t)


def test_idle_peer_times_out_but_pings_keep_a_quiet_link_alive() -> None:
    cfg = P2PConfig(handshake_timeout=2.0, idle_timeout=0.6, ping_interval=0.15)

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery, cfg)
        stream, _ = await _attacker(b)  # completes the handshake, then says nothing
        await expect_closed(stream)
        await stream.aclose()
        assert b.mgr.errors["IdleTimeout"] == 1
        await trio.sleep(1.0)  # a and b exchange nothing but pings for > idle_timeout
        assert b.mgr.connected_peers() == [a.id] and a.mgr.counters["connections_opened"] == 1

    run(t)


def test_a_slowly_arriving_frame_is_not_idle() -> None:
    cfg = P2PConfig(handshake_timeout=2.0, idle_timeout=0.4, ping_interval=0.1)

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery, cfg)
        stream, conn = await _attacker(b)
        frame = conn.session.sealer.seal(encode_message("proposal", b"p" * 6000))
        for i in range(0, len(frame), 1000):  # 7 pieces, 0.15 s apart: 0.9 s > idle_timeout
            await stream.send_all(frame[i : i + 1000])
            await trio.sleep(0.15)
        await eventually(lambda: b"p" * 6000 in b.bodies("proposal"))
        assert b.mgr.errors["IdleTimeout"] == 0
        await stream.aclose()

    run(t)


def test_handshake_timeout_on_a_silent_socket() -> None:
    cfg = P2PConfig(handshake_timeout=0.3)

    async def t(nursery: trio.Nursery) -> None:
        b = Node(2, cfg=cfg)
        await b.start(nursery)
        raw = await trio.open_tcp_stream("127.0.0.1", b.port)
        await expect_closed(raw)  # b sends its hello, waits, gives up
        await raw.aclose()
        assert b.mgr.errors["HandshakeTimeout"] == 1

    run(t)


def test_full_queue_drops_txs_and_disconnects_for_votes() -> None:
    cfg = P2PConfig(queue_messages=4, handshake_timeout=2.0)

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery, cfg)
        # No checkpoint between these calls, so the writer cannot drain: the queue holds 4
        # (plus one handed straight to the writer if it is waiting on the channel).
        taken = [a.mgr.broadcast("tx", i) for i in range(10)]
        n = sum(taken)
        assert n in (4, 5) and taken == [1] * n + [0] * (10 - n)
        assert a.mgr.dropped["tx"] == 10 - n and a.mgr.metrics()["dropped"] == 10 - n
        assert a.mgr.broadcast("vote", 1) == 0  # a vote is never dropped silently:
        await eventually(lambda: a.mgr.errors["SlowPeer"] == 1)  # the slow peer is cut instead
        assert a.mgr.counters["slow_disconnects"] == 1
        await connected(a, b)  # and reconnects
        await _still_serves(a, b, 3)

    run(t)


def test_reconnect_after_the_remote_restarts() -> None:
    async def t(nursery: trio.Nursery) -> None:
        b = Node(2)
        b_scope = trio.CancelScope()

        async def run_b(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with b_scope:
                await b.mgr.run(task_status=task_status)

        b.port = await nursery.start(run_b)
        a = Node(1, [b.addr()])
        await a.start(nursery)
        await connected(a, b)
        b_scope.cancel()
        await eventually(lambda: a.mgr.connected_peers() == [])
        await trio.sleep(0.3)  # a dials a closed port meanwhile
        assert a.mgr.counters["dial_failures"] >= 1
        b2 = Node(2, port=b.port)  # same key, same port
        await b2.start(nursery)
        await connected(a, b2)
        await _still_serves(a, b2, 4)
        assert a.mgr.counters["connections_opened"] == 2

    run(t)


def test_link_switch_partitions_and_heals() -> None:
    async def t(nursery: trio.Nursery) -> None:
        nodes = [Node(i + 1) for i in range(3)]
        for n in nodes:
            await n.start(nursery)
        a, b, c = nodes
        a.mgr.add_peer(b.addr())
        a.mgr.add_peer(c.addr())
        b.mgr.add_peer(c.addr())
        b.mgr.add_peer(a.addr())  # b also dials a, so a must refuse it while the link is down
        await connected(a, b)
        await connected(a, c)
        await connected(b, c)
        a.mgr.set_link(b.id, False)
        a.mgr.set_link(c.id, False)
        await eventually(lambda: a.mgr.connected_peers() == [] and a.id not in b.mgr.connected_peers())
        assert a.mgr.broadcast("vote", "from a") == 0
        b.mgr.broadcast("vote", "from b")
        await eventually(lambda: "from b" in c.bodies("vote"))
        await trio.sleep(0.5)  # b and c keep redialing a; a refuses them
        assert a.mgr.connected_peers() == [] and a.inbox == []
        assert a.mgr.counters["refused"] >= 1
        a.mgr.set_link(b.id, True)
        a.mgr.set_link(c.id, True)
        await connected(a, b)
        await connected(a, c)
        a.mgr.broadcast("vote", "healed")
        await eventually(lambda: "healed" in b.bodies("vote") and "healed" in c.bodies("vote"))

    run(t)


def test_peer_addr_parsing() -> None:
    nid = "ab" * 32
    p = PeerAddr.parse(f"{nid}@127.0.0.1:26656")
    assert (p.node_id, p.host, p.port) == (nid, "127.0.0.1", 26656) and str(p) == f"{nid}@127.0.0.1:26656"
    assert PeerAddr.parse(f"{nid}@[::1]:1").host == "::1"
    for bad in [f"{nid}127.0.0.1:1", f"{nid}@127.0.0.1", f"{nid}@:1", f"{nid[:-1]}@h:1", f"{nid}@h:0", f"{nid}@h:x"]:
        with pytest.raises(ValueError):
            PeerAddr.parse(bad)


def test_random_bytes_after_a_handshake_never_hurt_the_manager() -> None:
    import random

    rnd = random.Random(1234)

    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery)
        for i in range(12):
            stream, _ = await _attacker(b, seed=10 + i)
            await stream.send_all(rnd.randbytes(rnd.randint(1, 3000)))
            await stream.aclose()
            await eventually(lambda: b.mgr.connected_peers() == [a.id])
        assert b.mgr.counters["connections_closed"] == 12
        await _still_serves(a, b, 5)

    run(t)


def test_pending_handshake_limit_bounds_silent_sockets() -> None:
    cfg = P2PConfig(handshake_timeout=3.0, max_pending_handshakes=2)

    async def t(nursery: trio.Nursery) -> None:
        b = Node(2, cfg=cfg)
        await b.start(nursery)
        silent = [await trio.open_tcp_stream("127.0.0.1", b.port) for _ in range(2)]
        await eventually(lambda: b.mgr._pending_handshakes == 2)
        third = await trio.open_tcp_stream("127.0.0.1", b.port)
        await expect_closed(third)  # refused at once, no hello
        assert b.mgr.counters["inbound_refused"] == 1
        for s in silent + [third]:
            await s.aclose()
        a = Node(1, [b.addr()], cfg=cfg)  # the slots free up again
        await a.start(nursery)
        await connected(a, b)

    run(t)


def test_graceful_close_flushes_queued_messages() -> None:
    async def t(nursery: trio.Nursery) -> None:
        a, b = await _serving_pair(nursery)
        for i in range(300):  # queued, not yet written: stop() would lose them
            assert a.mgr.send(b.id, "vote", {"i": i, "pad": b"v" * 1000})
        with trio.fail_after(5):
            await a.mgr.aclose(grace=3.0)
        assert len(b.bodies("vote")) == 300
        assert a.mgr.connected_peers() == [] and a.mgr.errors == {}
        await eventually(lambda: b.mgr.connected_peers() == [])
        assert b.mgr.errors == {}

    run(t)


def test_batched_txs_gossip_is_relayed_and_droppable_by_default() -> None:
    cfg = P2PConfig()
    assert "txs" in cfg.relay_types and "txs" in cfg.message_types
    assert "txs" in cfg.drop_when_full and "vote" not in cfg.drop_when_full


def test_tx_gossip_is_not_relayed_to_a_peer_linked_to_its_sender() -> None:
    """A full triangle: a tx from A reaches B and C directly. Once C reports its link to A, B
    does not relay A's txs to C (A sent them to C itself); votes are relayed as always, and a
    peer that reported nothing (or whose link was to someone else) still gets the relay."""

    async def t(nursery: trio.Nursery) -> None:
        a, b, c = Node(1), Node(2), Node(3)
        for n in (a, b, c):
            await n.start(nursery)
        a.mgr.add_peer(b.addr())
        a.mgr.add_peer(c.addr())
        b.mgr.add_peer(c.addr())
        for x, y in ((a, b), (a, c), (b, c)):
            await connected(x, y)

        async def settled() -> None:
            await trio.sleep(0.3)

        a.mgr.broadcast("txs", [b"one"])  # no links reported: B and C both relay to each other
        await eventually(lambda: [b"one"] in b.bodies("txs") and [b"one"] in c.bodies("txs"))
        await settled()
        dup_c = c.mgr.counters["duplicates_in"]
        assert dup_c >= 1  # B's relay arrived at C as a second copy
        b.mgr.note_links(c.id, [a.id])  # C tells B: I am connected to A
        b.mgr.note_links(a.id, [c.id])
        c.mgr.note_links(b.id, [a.id])
        c.mgr.note_links(a.id, [b.id])
        out_b = b.mgr.counters["messages_out"]
        a.mgr.broadcast("txs", [b"two"])
        a.mgr.broadcast("vote", {"v": 2})
        await eventually(lambda: [b"two"] in b.bodies("txs") and [b"two"] in c.bodies("txs"))
        await eventually(lambda: {"v": 2} in b.bodies("vote") and {"v": 2} in c.bodies("vote"))
        await settled()
        # C got one more duplicate (the vote B relayed), none for the txs
        assert c.mgr.counters["duplicates_in"] == dup_c + 1
        assert b.mgr.counters["messages_out"] - out_b <= 1 + 2  # the vote, and pings at most
        b.mgr.note_links(c.id, ["00" * 32])  # C's links changed: it no longer reports A
        a.mgr.broadcast("txs", [b"three"])
        await eventually(lambda: [b"three"] in c.bodies("txs"))
        await settled()
        assert c.mgr.counters["duplicates_in"] >= dup_c + 2  # B relayed A's tx to C again
        b.mgr.note_links("ff" * 32, [a.id])  # a report from a node that is not a peer: ignored
        assert "ff" * 32 not in b.mgr._links

    run(t)
