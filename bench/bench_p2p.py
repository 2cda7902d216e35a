"""P2P transport throughput and handshake time over one loopback connection, against raw limits.

    .venv/bin/python bench/bench_p2p.py [--small-count 20000] [--big-count 600] [--handshakes 50]

Two PeerManagers in one trio process on 127.0.0.1; A sends `tx` messages (200-byte and 64 KiB
bodies) to B with at most `--window` messages in flight (so the bounded queue never overflows),
and B's handler counts them: the figure covers encode, seal, TCP, open, decode and dispatch,
with both ends sharing one CPU core (one Python thread). Handshake time is a full `establish()`
pair over a fresh loopback TCP connection (connect + X25519 + HKDF + 2 signs + 2 verifies).
Beside them, measured in the same run: raw ChaCha20-Poly1305 encryption MB/s on 64 KiB and
seals/s on 200 bytes (cryptography, the same AEAD the frames use) and Ed25519 verifies/s
(libsodium via ads_ledger.core.crypto), or bench/limits.py's `measure_limits()` if it exists.
Prints one JSON line and one human line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.core.crypto import SigningKey, verify  # noqa: E402
from ads_ledger.node.p2p import P2PConfig, PeerAddr, PeerManager  # noqa: E402
from ads_ledger.node.p2p.conn import establish  # noqa: E402
from limits import rate  # noqa: E402

CHAIN = "bench"




def raw_limits(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        from limits import measure_limits  # type: ignore[import-not-found, unused-ignore]

        out = {f"limits_{k}": v for k, v in dict(measure_limits()).items()}
    except Exception:
        pass
    aead = ChaCha20Poly1305(os.urandom(32))
    nonce = bytes(12)
    big, small = os.urandom(65536), os.urandom(200)
    out["raw_chacha_mb_per_s"] = round(rate(lambda: aead.encrypt(nonce, big, b""), seconds, 20)
                                       * len(big) / 1e6, 1)
    out["raw_chacha_200b_per_s"] = round(rate(lambda: aead.encrypt(nonce, small, b""), seconds, 200))
    k = SigningKey.generate()
    msg = os.urandom(100)
    sig = k.sign(msg)
    out["ed25519_verify_per_s"] = round(rate(lambda: verify(k.pub, sig, msg), seconds, 50))
    return out


async def throughput(body_size: int, count: int, window: int) -> dict[str, float]:
    cfg = P2PConfig(queue_messages=max(window * 2, 16), queue_bytes=(window * 2 + 2) * (body_size + 64))
    got = 0
    progressed = trio.Event()

    async def on_b(peer: str, t: str, body: Any) -> bool:
        nonlocal got, progressed
        got += 1
        progressed.set()
        progressed = trio.Event()
        return False

    async def on_a(peer: str, t: str, body: Any) -> bool:
        return False

    ka, kb = SigningKey.generate(), SigningKey.generate()
    async with trio.open_nursery() as nursery:
        b = PeerManager(kb, CHAIN, ("127.0.0.1", 0), [], on_b, config=cfg)
        port = await nursery.start(b.run)
        a = PeerManager(ka, CHAIN, ("127.0.0.1", 0), [PeerAddr(b.node_id, "127.0.0.1", port)], on_a, config=cfg)
        await nursery.start(a.run)
        await a.wait_until(lambda: b.node_id in a.connected_peers())
        body = os.urandom(body_size)
        frame_bytes = len(codec.encode({"b": body, "t": "tx"})) + 16 + 4
        sent = 0
        t0 = time.perf_counter()
        with trio.fail_after(120):
            while got < count:
                while sent < count and sent - got < window:
                    # distinct bodies: identical gossip messages are deduplicated by design
                    if not a.send(b.node_id, "tx", sent.to_bytes(8, "big") + body[8:]):
                        raise RuntimeError("message dropped; the window is larger than the queue")
                    sent += 1
                await progressed.wait()
        dt = time.perf_counter() - t0
        assert a.metrics().get("dropped", 0) == 0
        nursery.cancel_scope.cancel()
    return {"msgs_per_s": count / dt, "mb_per_s": count * frame_bytes / dt / 1e6}


async def handshake_ms(n: int) -> float:
    ka, kb = SigningKey.generate(), SigningKey.generate()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    total = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            async def server() -> None:
                s = await listeners[0].accept()
                c = await establish(s, kb, CHAIN, outbound=False)
                await c.aclose()

            nursery.start_soon(server)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            conn = await establish(stream, ka, CHAIN, outbound=True, expected_peer=kb.pub)
            await conn.aclose()
        total += time.perf_counter() - t0
    for lst in listeners:
        await lst.aclose()
    return total / n * 1000


async def run(a: argparse.Namespace) -> dict[str, Any]:
    small = await throughput(200, a.small_count, a.window)
    big = await throughput(65536, a.big_count, min(a.window, 32))
    hs = await handshake_ms(a.handshakes)
    return {
        "bench": "p2p",
        "small_200b_msgs_per_s": round(small["msgs_per_s"]),
        "small_200b_mb_per_s": round(small["mb_per_s"], 2),
        "big_64k_msgs_per_s": round(big["msgs_per_s"], 1),
        "big_64k_mb_per_s": round(big["mb_per_s"], 1),
        "handshake_ms": round(hs, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--small-count", type=int, default=20000)
    ap.add_argument("--big-count", type=int, default=600)
    ap.add_argument("--window", type=int, default=256, help="messages in flight")
    ap.add_argument("--handshakes", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=1.0, help="per raw-limit measurement")
    a = ap.parse_args()
    out = trio.run(run, a)
    out.update(raw_limits(a.seconds))
    print(json.dumps(out, sort_keys=True))
    print(
        f"p2p over loopback (both ends in one Python thread): "
        f"200 B: {out['small_200b_msgs_per_s']} msg/s ({out['small_200b_mb_per_s']} MB/s); "
        f"64 KiB: {out['big_64k_msgs_per_s']} msg/s ({out['big_64k_mb_per_s']} MB/s); "
        f"handshake {out['handshake_ms']} ms | raw ChaCha20-Poly1305 {out['raw_chacha_mb_per_s']} MB/s "
        f"(64 KiB), {out['raw_chacha_200b_per_s']} seals/s (200 B); "
        f"Ed25519 {out['ed25519_verify_per_s']} verifies/s"
    )


if __name__ == "__main__":
    main()
