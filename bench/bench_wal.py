"""Consensus WAL throughput: appends/s buffered and fsynced, CRC-32C MB/s, against raw limits.

    .venv/bin/python bench/bench_wal.py [--seconds 2] [--record 200] [--dir /var/tmp]

A record of `--record` bytes (about a signed vote) is appended to a FileWAL in a temporary
directory on the disk under `--dir`: with sync=False (buffered, flushed to the OS every 64 KiB)
and with sync=True (one fsync per record, as for our own votes). CRC-32C (pure Python,
slicing-by-8) is timed on 1 MiB. Beside them, in the same run: raw append+fsync/s on a plain
file and zlib.crc32 MB/s (C; the same work without the Python loop), or bench/limits.py's
`measure_limits()` if it exists. Prints one JSON line and one human line.
"""

from __future__ import annotations

import argparse
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

from ads_ledger.consensus.wal import DEFAULT_SEGMENT_BYTES, FileWAL, crc32c  # noqa: E402


def rate(fn: Callable[[], None], seconds: float, batch: int = 1) -> float:
    """Calls of `fn` per second over about `seconds` (at least one batch)."""
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def raw_fsyncs_per_s(directory: str, record: bytes, seconds: float) -> float:
    """os.write + os.fsync of `record` on a plain appended file: the disk's own ceiling."""
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        return rate(lambda: (os.write(fd, record), os.fsync(fd)) and None, seconds)
    finally:
        os.close(fd)
        os.unlink(path)


def limits(directory: str, record: bytes, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        from limits import measure_limits  # type: ignore[import-not-found]

        out = {f"limits_{k}": v for k, v in dict(measure_limits()).items()}
    except Exception:
        pass
    out["raw_fsync_per_s"] = round(raw_fsyncs_per_s(directory, record, seconds))
    mib = os.urandom(1 << 20)
    out["zlib_crc32_mb_per_s"] = round(rate(lambda: zlib.crc32(mib) and None, seconds / 4, 10))
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
        synced = rate(lambda: w.append(record, sync=True), a.seconds)
        w.append(record, sync=True)
        w.close()
        wal_bytes = sum(p.stat().st_size for p in Path(tmp, "wal").glob("*.wal"))
        t0 = time.perf_counter()
        w = FileWAL(os.path.join(tmp, "wal"))  # open scans and checks every frame
        replayed = w.replay()
        reopen_s = time.perf_counter() - t0
        w.close()
        mib = os.urandom(1 << 20)
        crc_mb = rate(lambda: crc32c(mib) and None, a.seconds)
        lim = limits(tmp, record, a.seconds)
    assert replayed[0] == 0 and replayed[1][-1] == record
    res: dict[str, Any] = {
        "bench": "wal",
        "record_bytes": a.record,
        "append_buffered_per_s": round(buffered),
        "append_fsync_per_s": round(synced),
        "crc32c_mb_per_s": round(crc_mb, 1),
        "open_replay_mb_per_s": round(wal_bytes / reopen_s / 1e6, 1),
        "open_1mib_segment_s": round(DEFAULT_SEGMENT_BYTES / (wal_bytes / reopen_s), 3),
        **lim,
    }
    print(json.dumps(res, sort_keys=True))
    print(
        f"WAL {a.record} B records: {buffered:,.0f} appends/s buffered, {synced:,.0f}/s fsynced "
        f"(raw write+fsync {lim['raw_fsync_per_s']:,}/s, {synced / lim['raw_fsync_per_s']:.0%}); "
        f"CRC-32C {crc_mb:.1f} MB/s pure Python (zlib.crc32 in C {lim['zlib_crc32_mb_per_s']:,} MB/s); "
        f"open+replay {res['open_replay_mb_per_s']} MB/s, {res['open_1mib_segment_s']} s per full segment"
    )


if __name__ == "__main__":
    main()
