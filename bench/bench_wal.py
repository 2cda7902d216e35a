"""Consensus WAL throughput: appends/s buffered and fsynced, CRC-32C MB/s, against raw limits.

    .venv/bin/python bench/bench_wal.py [--seconds 2] [--record 200] [--dir /var/tmp]

A record of `--record` bytes (about a signed vote) is appended to a FileWAL in a temporary
directory on the disk under `--dir`: with sync=False (buffered, flushed to the OS every 64 KiB)
and with sync=True (one fsync per record, as for our own votes). CRC-32C (the `crc32c`
package the WAL uses, and the pure-Python reference table) is timed on 1 MiB, and so is opening (scan + checks) and replaying the log,
and the double-sign guard's signatures/s with its file state (temp, fsync, rename, dir fsync).
Beside them, in the same run: raw write+fsync/s on a plain file (timed in slices alternating
with the fsynced appends, so disk noise hits both), zlib.crc32 MB/s (C, a CRC without the
Python loop), and bench/limits.py's `measure_limits()` if it exists. One JSON line, one human line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.consensus.privval import DoubleSignGuard, FileSignerState  # noqa: E402
from ads_ledger.consensus.wal import DEFAULT_SEGMENT_BYTES, FileWAL, crc32c, crc32c_py  # noqa: E402
from ads_ledger.core.crypto import SigningKey  # noqa: E402
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Vote  # noqa: E402
from limits import rate  # noqa: E402


def interleaved(a: Callable[[], object], b: Callable[[], object], seconds: float,
                slices: int = 8) -> tuple[float, float]:  # fmt: skip
    """Rates of `a` and `b` measured in alternating slices, so disk noise hits both alike."""
    na = nb = 0
    ta = tb = 0.0
    for _ in range(slices):
        for fn, is_a in ((a, True), (b, False)):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / (2 * slices):
                fn()
                n += 1
            dt = time.perf_counter() - t0
            if is_a:
                na, ta = na + n, ta + dt
            else:
                nb, tb = nb + n, tb + dt
    return na / ta, nb / tb


def raw_fsync(directory: str, record: bytes) -> tuple[Callable[[], None], Callable[[], None]]:
    """os.write + os.fsync of `record` on a plain appended file (the disk's own ceiling),
    and a cleanup."""
    fd, path = tempfile.mkstemp(dir=directory)

    def one() -> None:
        os.write(fd, record)
        os.fsync(fd)

    def done() -> None:
        os.close(fd)
        os.unlink(path)

    return one, done


def limits(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:  # bench/limits.py, when present: the machine's general raw rates
        measure = importlib.import_module("limits").measure_limits
        out = {f"limits_{k}": v for k, v in dict(measure(seconds / 2)).items()}
    except Exception:
        pass
    mib = os.urandom(1 << 20)
    out["zlib_crc32_mb_per_s"] = round(rate(lambda: zlib.crc32(mib), seconds / 4, 10))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--record", type=int, default=200, help="record size in bytes")
    ap.add_argument("--dir", default=None, help="where to put the temporary WAL")
    a = ap.parse_args()
    record = os.urandom(a.record)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        w = FileWAL(os.path.join(tmp, "wal"), segment_bytes=64 * 1024 * 1024)
        buffered = rate(lambda: w.append(record, sync=False), a.seconds, 500)
        w.sync()
        raw_one, raw_done = raw_fsync(tmp, record)
        synced, raw = interleaved(lambda: w.append(record, sync=True), raw_one, 2 * a.seconds)
        raw_done()
        w.append(record, sync=True)
        w.close()
        wal_bytes = sum(p.stat().st_size for p in Path(tmp, "wal").glob("*.wal"))
        t0 = time.perf_counter()
        w = FileWAL(os.path.join(tmp, "wal"))  # open scans and checks every frame
        replayed = w.replay()
        reopen_s = time.perf_counter() - t0
        w.close()
        guard = DoubleSignGuard(SigningKey(bytes(32)), FileSignerState(os.path.join(tmp, "g")))
        height = iter(range(1, 1 << 62))

        def two_votes() -> None:  # a prevote and a precommit: two persisted states
            h = next(height)
            guard.sign_vote("bench", Vote(PREVOTE, h, 0, None, guard.pub))
            guard.sign_vote("bench", Vote(PRECOMMIT, h, 0, None, guard.pub))

        guard_signs = 2 * rate(two_votes, a.seconds)
        mib = os.urandom(1 << 20)
        crc_mb = rate(lambda: crc32c(mib), a.seconds)
        crc_py_mb = rate(lambda: crc32c_py(mib), a.seconds)
        lim = {"raw_fsync_per_s": round(raw), **limits(a.seconds)}
    assert replayed[0] == 0 and replayed[1][-1] == record
    res: dict[str, Any] = {
        "bench": "wal",
        "record_bytes": a.record,
        "append_buffered_per_s": round(buffered),
        "append_fsync_per_s": round(synced),
        "guard_file_signs_per_s": round(guard_signs),
        "crc32c_mb_per_s": round(crc_mb, 1),
        "crc32c_py_mb_per_s": round(crc_py_mb, 1),
        "open_replay_mb_per_s": round(wal_bytes / reopen_s / 1e6, 1),
        "open_1mib_segment_s": round(DEFAULT_SEGMENT_BYTES / (wal_bytes / reopen_s), 3),
        **lim,
    }
    print(json.dumps(res, sort_keys=True))
    print(
        f"WAL {a.record} B records: {buffered:,.0f} appends/s buffered, {synced:,.0f}/s fsynced "
        f"(raw write+fsync {lim['raw_fsync_per_s']:,}/s, {synced / lim['raw_fsync_per_s']:.0%}); "
        f"guard {guard_signs:,.0f} signs/s (file state: one slot write + fdatasync each); "
        f"CRC-32C {crc_mb:,.0f} MB/s (pure-Python reference {crc_py_mb:.1f} MB/s) "
        f"(zlib.crc32 in C {lim['zlib_crc32_mb_per_s']:,} MB/s); "
        f"open+replay {res['open_replay_mb_per_s']} MB/s, "
        f"{res['open_1mib_segment_s']} s per full segment"
    )


if __name__ == "__main__":
    main()
