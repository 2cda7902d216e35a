"""Raw machine limits, measured in the same run as a benchmark so that ratios survive noise.

`measure_limits(seconds)` returns, each measured for about `seconds` on one core:
- `ed25519_verify_per_s`: strict Ed25519 verifications/s (PyNaCl / libsodium, 200-byte message);
- `ed25519_verify_cpu_us`: the CPU time of one such verification (the thread's own CPU clock,
  so other processes on a busy machine do not inflate it; the unit for CPU-per-tx ratios);
- `sha256_32b_per_s`: SHA-256 digests/s of 32-byte inputs, called from a Python loop (the
  unit cost of a Merkle proof step in Python);
- `lmdb_put_per_s`: puts/s of random 32-byte keys (32-byte values) batched in one write
  transaction, committed with fsync, into a fresh LMDB under /tmp.

Run alone: `.venv/bin/python bench/limits.py` prints one JSON line and a human line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Sequence

import lmdb
import nacl.bindings
import nacl.signing

__all__ = ["measure_limits", "limits_or_error", "pct", "rate"]


def rate(fn: Callable[[], object], seconds: float, batch: int = 1) -> float:
    """Calls of `fn` per second over about `seconds` (`batch` calls between clock reads)."""
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _ed25519(seconds: float) -> float:
    key = nacl.signing.SigningKey(b"\x07" * 32)
    msg = b"m" * 200
    sig = key.sign(msg).signature
    pub = bytes(key.verify_key)
    signed = sig + msg
    check = nacl.bindings.crypto_sign_open  # libsodium's strict verify on sig || message

    def batch() -> None:
        for _ in range(100):
            check(signed, pub)

    return rate(batch, seconds) * 100  # each call does 100


def ed25519_cpu_us(seconds: float) -> float:
    """CPU µs (this thread) of one strict Ed25519 verification, averaged over `seconds`."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    msg = b"m" * 200
    pub, signed = bytes(key.verify_key), key.sign(msg).signature + msg
    check = nacl.bindings.crypto_sign_open
    n, c0, t0 = 0, time.thread_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            check(signed, pub)
        n += 100
    return (time.thread_time() - c0) * 1e6 / n


def _sample_verify_cpu(stop: Any, out: Any) -> None:  # a multiprocessing Event and Connection
    samples: list[float] = []
    while not stop.wait(0.25):
        samples.append(ed25519_cpu_us(0.02))
    out.send(samples)


class VerifyDuringRun:
    """One Ed25519 verify's CPU time sampled in a side process *while* a benchmark runs (a
    few ms of verifies every 250 ms), so it sees the same contention as the measured nodes:
    on a shared VM the CPU time of the same work moves ±30% with the load beside it.
    `median_us` after the `with` block (None if nothing was sampled)."""

    def __enter__(self) -> "VerifyDuringRun":
        import multiprocessing as mp

        self._stop = mp.Event()
        self._recv, send = mp.Pipe(duplex=False)
        self._proc = mp.Process(target=_sample_verify_cpu, args=(self._stop, send), daemon=True)
        self._proc.start()
        self.median_us: float | None = None
        self.samples: list[float] = []
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._recv.poll(30):
            self.samples = self._recv.recv()
        self._proc.join(10)
        if self.samples:
            s = sorted(self.samples)
            self.median_us = round(s[len(s) // 2], 1)


def _sha256(seconds: float) -> float:
    data = [os.urandom(32) for _ in range(1000)]
    sha = hashlib.sha256

    def batch() -> None:
        for d in data:
            sha(d).digest()

    return rate(batch, seconds) * 1000  # each call does 1000


def _lmdb_puts(seconds: float) -> float:
    d = tempfile.mkdtemp(prefix="limits-lmdb-", dir="/tmp")
    try:
        env = lmdb.open(d, map_size=1 << 34, sync=True)
        try:
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                items = [(os.urandom(32), b"v" * 32) for _ in range(50_000)]
                with env.begin(write=True) as txn:
                    for k, v in items:
                        txn.put(k, v)
                n += len(items)
            return n / (time.perf_counter() - t0)
        finally:
            env.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def measure_limits(seconds: float = 1.0) -> dict[str, float]:
    """Raw rates of this machine right now (see the module docstring)."""
    return {
        "ed25519_verify_per_s": round(_ed25519(seconds)),
        "ed25519_verify_cpu_us": round(ed25519_cpu_us(seconds), 1),
        "sha256_32b_per_s": round(_sha256(seconds)),
        "lmdb_put_per_s": round(_lmdb_puts(seconds)),
    }


def limits_or_error(seconds: float = 0.5) -> dict[str, object]:
    """`measure_limits`, or {"error"} (a benchmark's figures are still useful without them)."""
    try:
        return dict(measure_limits(seconds=seconds))
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def pct(xs: Sequence[float], p: float) -> float:
    """The p-quantile (0..1) of xs, nearest rank."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


if __name__ == "__main__":
    lim = measure_limits()
    print(json.dumps(lim))
    print(
        f"limits: Ed25519 verify {lim['ed25519_verify_per_s']:,}/s, SHA-256(32 B) "
        f"{lim['sha256_32b_per_s']:,}/s, LMDB batched puts {lim['lmdb_put_per_s']:,}/s"
    )
