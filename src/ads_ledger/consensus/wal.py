"""Consensus write-ahead log (DESIGN §6, first local duty; implements `ports.WAL`).

`MemoryWAL` is for the simulator and the tests: it keeps records in a list and models a
power loss with `crash()`. `FileWAL` is the real thing: framed, checksummed records in
segment files, fsynced where the contract says, repaired after a torn tail and refusing
(with `WALCorrupt`) anything damaged before it.

Why one module of ~500 lines: the in-memory model and the file WAL implement the same
contract and are tested against each other (tests/consensus/test_wal_model.py).
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass

from ads_ledger.core.errors import AdsError

__all__ = [
    "MemoryWAL",
    "FileWAL",
    "WALCorrupt",
    "WALBroken",
    "MAX_RECORD",
    "DEFAULT_SEGMENT_BYTES",
    "crc32c",
]

# One record (a proposal with its block is the largest thing logged) must fit in this.
MAX_RECORD = 16 * 1024 * 1024


class WALCorrupt(AdsError):
    """The log is damaged before its last record: replaying it could make us sign a fork.

    Not a torn tail (that is repaired silently); an operator must look at the file, move it
    aside and restart (the double-sign guard still refuses any conflicting signature).
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"consensus WAL {path} is corrupt at byte offset {offset}: {reason}. "
            "This is not a torn last write, so it will not be repaired automatically. "
            "Stop the node, keep a copy of the file for inspection, then move the WAL "
            "directory aside and restart (the node resyncs the current height; the "
            "double-sign guard state keeps it from signing anything conflicting)."
        )


class WALBroken(AdsError):
    """A write or fsync of the log failed; what reached the disk is unknown, so the log
    refuses further use (retrying an fsync after a failure can report success falsely)."""


# ---------------------------------------------------------------- CRC-32C (Castagnoli)

_POLY = 0x82F63B78  # reflected Castagnoli polynomial (iSCSI, RFC 3720)


def _tables() -> list[list[int]]:
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tables


_T = _tables()
_PAIRS = struct.Struct("<II")


def crc32c_py(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of `data` (continuing from `crc`), slicing-by-8 in pure Python.

    About 15 MB/s on one core here (bench/bench_wal.py); ample for votes, slow for
    multi-megabyte records."""
    crc ^= 0xFFFFFFFF
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    mv = memoryview(data).cast("B")
    n = len(mv) & ~7
    for lo, hi in _PAIRS.iter_unpack(mv[:n]):
        lo ^= crc
        crc = (
            t7[lo & 0xFF] ^ t6[(lo >> 8) & 0xFF] ^ t5[(lo >> 16) & 0xFF] ^ t4[lo >> 24]
            ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24]
        )  # fmt: skip
    for b in mv[n:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the `crc32c` package computes the same function in C (SSE4.2/ARMv8 where present)
    from crc32c import crc32c as _crc32c_c

    def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
        """CRC-32C of `data` (continuing from `crc`); GB/s, vs ~15 MB/s for `crc32c_py`."""
        return int(_crc32c_c(data, crc))

except ImportError:  # pragma: no cover - the package is a declared dependency
    crc32c = crc32c_py


@dataclass(frozen=True, slots=True)
class _Entry:
    ended: int | None  # an end-of-height marker for this height, or None for a record
    record: bytes


def _replay(entries: list[_Entry]) -> tuple[int, list[bytes]]:
    last, out = 0, []
    for e in entries:
        if e.ended is None:
            out.append(e.record)
        else:
            last, out = e.ended, []
    return last, out


class MemoryWAL:
    """An in-memory `ports.WAL` that knows which records a power loss would keep.

    Records appended with `sync=True`, or followed by `sync()` or `end_height()`, are
    durable; `crash()` returns the log as it would be found after a power loss (only those).
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._durable = 0  # entries[:durable] survive a crash
        self._last_ended = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("WAL is closed")  # our bug: a closed log must not be written

    def append(self, record: bytes, *, sync: bool) -> None:
        """Append one opaque record; with `sync` it is durable when this returns."""
        self._check_open()
        if type(record) is not bytes:
            raise TypeError("a WAL record is bytes")
        if len(record) > MAX_RECORD:
            raise ValueError(f"WAL record of {len(record)} bytes exceeds {MAX_RECORD}")
        self._entries.append(_Entry(None, record))
        if sync:
            self._durable = len(self._entries)

    def end_height(self, height: int) -> None:
        """Durably mark `height` as decided and stored; its records are no longer replayed.

        Raises ValueError if `height` is not above the last ended height (a caller bug)."""
        self._check_open()
        if type(height) is not int or height <= self._last_ended:
            raise ValueError(f"end_height({height!r}) after height {self._last_ended} ended")
        self._entries.append(_Entry(height, b""))
        self._durable = len(self._entries)
        self._last_ended = height
        # memory bound, as FileWAL's rotation: what precedes a durable marker is never replayed
        self._entries = self._entries[-1:]
        self._durable = 1

    def sync(self) -> None:
        """Make every record appended so far durable."""
        self._check_open()
        self._durable = len(self._entries)

    def replay(self) -> tuple[int, list[bytes]]:
        """(last ended height or 0, records appended after that marker), in order."""
        return _replay(self._entries)

    def close(self) -> None:
        """Flush (a clean stop loses nothing) and refuse further writes."""
        if not self._closed:
            self._durable = len(self._entries)
            self._closed = True

    def crash(self) -> "MemoryWAL":
        """A fresh, open log holding only what a power loss now would leave behind."""
        w = MemoryWAL()
        w._entries = list(self._entries[: self._durable])
        w._durable = len(w._entries)
        w._last_ended = _replay(w._entries)[0]
        return w

    @property
    def pending(self) -> int:
        """How many appended records are not durable yet."""
        return len(self._entries) - self._durable


# ---------------------------------------------------------------- the file-backed log
#
# A log is a directory of segments `000000000001.wal`, `000000000002.wal`, ... Each segment
# is a sequence of frames:  length u32 | crc32c(body) u32 | crc32c(the 8 bytes before) u32 | body
# (big-endian), body = kind u8 | payload. Kind 0 is an opaque record, kind 1 an end-of-height
# marker whose payload is the height as u64. The header checksum lets a flipped length in
# the middle be told apart from a torn last write. A new segment starts with a copy of the
# last marker, so once it is durable every older segment can go.

_HDR = struct.Struct(">III")
_HEIGHT = struct.Struct(">Q")
_KIND_RECORD = 0
_KIND_END = 1
_SUFFIX = ".wal"
_BUFFER_LIMIT = 64 * 1024  # unsynced appends beyond this go to the OS (not to the disk)
DEFAULT_SEGMENT_BYTES = 1024 * 1024  # a restart scans at most this plus one height


def _frame(kind: int, payload: bytes) -> bytes:
    body = bytes((kind,)) + payload
    head = struct.pack(">II", len(body), crc32c(body))
    return head + struct.pack(">I", crc32c(head)) + body


def _all_zero(data: bytes, start: int) -> bool:
    # a file extended before its data reached the disk reads back as zeros
    return data.count(0, start) == len(data) - start


def _scan(path: str, data: bytes, *, tail: bool) -> tuple[list[_Entry], int]:
    """Parse one segment: (entries, length of the good prefix).

    With `tail` (the last segment) a torn last frame ends the scan; elsewhere, and for any
    damage followed by more data, WALCorrupt is raised."""
    entries: list[_Entry] = []
    off, n = 0, len(data)
    while off < n:
        if n - off < _HDR.size:
            if tail:
                return entries, off
            raise WALCorrupt(path, off, "the segment ends inside a record header")
        length, body_crc, head_crc = _HDR.unpack_from(data, off)
        if crc32c(data[off : off + 8]) != head_crc:
            if tail and _all_zero(data, off):
                return entries, off
            raise WALCorrupt(path, off, "record header checksum mismatch")
        if not 1 <= length <= MAX_RECORD + 1:
            raise WALCorrupt(path, off, f"record length {length} is out of range")
        end = off + _HDR.size + length
        if end > n:
            if tail:
                return entries, off
            raise WALCorrupt(path, off, "the segment ends inside a record")
        body = data[off + _HDR.size : end]
        if crc32c(body) != body_crc:
            if tail and (end == n or _all_zero(data, end)):
                return entries, off
            raise WALCorrupt(path, off, "record checksum mismatch before the last record")
        if body[0] == _KIND_RECORD:
            entries.append(_Entry(None, body[1:]))
        elif body[0] == _KIND_END and length == 1 + _HEIGHT.size:
            entries.append(_Entry(_HEIGHT.unpack_from(body, 1)[0], b""))
        else:
            raise WALCorrupt(path, off, f"unknown record kind {body[0]}")
        off = end
    return entries, off


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWAL:
    """The durable `ports.WAL`: a directory of checksummed segment files.

    Opening repairs a torn last record (truncating the file after the last good one) and
    raises `WALCorrupt` for damage anywhere before it. `append(sync=False)` buffers;
    `append(sync=True)`, `sync()` and `end_height()` return after fsync. After an
    `end_height` that leaves the segment above `segment_bytes`, a new segment is started
    and the older ones are deleted. Any failed write or fsync raises `WALBroken` and the
    log refuses further use. One process at a time: a second opener gets `WALBroken`.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:  # fmt: skip
        self.path = os.fspath(path)
        self.segment_bytes = segment_bytes
        self._buf = bytearray()
        self._fd = -1
        self._index = 0
        self._size = 0
        self._last_ended = 0
        self._broken: str | None = None
        if not os.path.isdir(self.path):
            os.makedirs(self.path, exist_ok=True)
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._lock = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock)
            raise WALBroken(f"consensus WAL {self.path} is in use by another process") from e
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------ opening and reading

    def _segments(self) -> list[int]:
        idx = []
        for name in os.listdir(self.path):
            stem = name[: -len(_SUFFIX)]
            if name.endswith(_SUFFIX) and len(stem) == 12 and stem.isascii() and stem.isdigit():
                idx.append(int(stem))
        return sorted(idx)

    def _seg_path(self, index: int) -> str:
        return os.path.join(self.path, f"{index:012d}{_SUFFIX}")

    def _open(self) -> None:
        segs = self._segments()
        if not segs:
            self._index = 1
            self._create_segment(self._index, b"")
            self._last_ended = 0
            return
        self._index = segs[-1]
        last_path = self._seg_path(self._index)
        with open(last_path, "rb") as f:
            data = f.read()
        entries, good = _scan(last_path, data, tail=True)
        self._fd = os.open(last_path, os.O_WRONLY | os.O_APPEND)
        if good < len(data):  # torn last write: cut it so new records follow the last good one
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self._size = good
        if good == 0 and len(segs) > 1:
            # a crash after creating the next segment, before its marker was written: the
            # marker is already durable in the previous one, so drop the empty file and go on there
            prev = self._seg_path(segs[-2])
            with open(prev, "rb") as f:
                _scan(prev, f.read(), tail=False)  # it was whole before the next one existed
            os.close(self._fd)
            self._fd = -1
            os.unlink(last_path)
            _fsync_dir(self.path)
            self._open()
            return
        if len(segs) > 1 and entries and entries[0].ended is not None:
            # a crash during rotation left older segments after the new one was durable
            self._delete_before(self._index)
        self._last_ended = self._read_all(entries)[0]

    def _read_all(self, tail_entries: list[_Entry] | None = None) -> tuple[int, list[bytes]]:
        """Replay every segment (the last one's entries may be passed in, already scanned)."""
        segs = self._segments()
        entries: list[_Entry] = []
        for i, index in enumerate(segs):
            if i == len(segs) - 1 and tail_entries is not None:
                entries.extend(tail_entries)
                break
            p = self._seg_path(index)
            with open(p, "rb") as f:
                part, _ = _scan(p, f.read(), tail=i == len(segs) - 1)
            entries.extend(part)
        last = 0
        for e in entries:
            if e.ended is not None:
                if e.ended < last:
                    raise WALCorrupt(self.path, 0, f"end-of-height {e.ended} follows {last}")
                last = e.ended
        return _replay(entries)

    def replay(self) -> tuple[int, list[bytes]]:
        """(last ended height or 0, records appended after that marker), read from the files."""
        self._check()
        self._flush()
        return self._read_all()

    # ------------------------------------------------------------ writing

    def _check(self) -> None:
        if self._broken is not None:
            raise WALBroken(f"consensus WAL {self.path} is unusable: {self._broken}")
        if self._fd < 0:
            raise ValueError("WAL is closed")  # our bug: a closed log must not be used

    def _fail(self, what: str, e: OSError) -> WALBroken:
        self._broken = f"{what} failed: {e}"
        return WALBroken(f"consensus WAL {self.path}: {self._broken}")

    def _flush(self) -> None:
        if not self._buf:
            return
        data = memoryview(bytes(self._buf))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as e:
            raise self._fail("write", e) from e
        self._buf.clear()

    def _fsync(self) -> None:
        self._flush()
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise self._fail("fsync", e) from e

    def append(self, record: bytes, *, sync: bool) -> None:
        """Append one opaque record; with `sync` it is on disk when this returns."""
        self._check()
        if type(record) is not bytes:
            raise TypeError("a WAL record is bytes")
        if len(record) > MAX_RECORD:
            raise ValueError(f"WAL record of {len(record)} bytes exceeds {MAX_RECORD}")
        frame = _frame(_KIND_RECORD, record)
        self._buf += frame
        self._size += len(frame)
        if sync:
            self._fsync()
        elif len(self._buf) >= _BUFFER_LIMIT:
            self._flush()

    def sync(self) -> None:
        """Make every record appended so far durable."""
        self._check()
        self._fsync()

    def end_height(self, height: int) -> None:
        """Durably mark `height` decided and stored; then rotate if the segment is large.

        Raises ValueError if `height` is not above the last ended height (a caller bug)."""
        self._check()
        if type(height) is not int or not self._last_ended < height < 2**64:
            raise ValueError(f"end_height({height!r}) after height {self._last_ended} ended")
        marker = _frame(_KIND_END, _HEIGHT.pack(height))
        self._buf += marker
        self._size += len(marker)
        self._fsync()
        self._last_ended = height
        if self._size > self.segment_bytes:
            self._rotate(marker)

    def _create_segment(self, index: int, first: bytes) -> None:
        p = self._seg_path(index)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, first)
                os.fsync(fd)
                _fsync_dir(self.path)
            except BaseException:
                os.close(fd)
                raise
        except OSError as e:
            raise self._fail(f"creating segment {p}", e) from e
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._index, self._size = fd, index, len(first)

    def _rotate(self, marker: bytes) -> None:
        # the new segment holds the marker durably before anything older is deleted
        self._create_segment(self._index + 1, marker)
        self._delete_before(self._index)

    def _delete_before(self, index: int) -> None:
        try:
            for old in self._segments():
                if old < index:
                    os.unlink(self._seg_path(old))
            _fsync_dir(self.path)
        except OSError as e:
            raise self._fail("deleting old segments", e) from e

    # ------------------------------------------------------------ closing

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock >= 0:
            os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = -1

    def close(self) -> None:
        """Flush and fsync what is buffered, then release the files. Idempotent."""
        if self._fd < 0:
            return
        try:
            if self._broken is None:
                self._fsync()
        finally:
            self._release()

    def abandon(self) -> None:
        """Drop unflushed appends and release the files without syncing, as a kill -9 would
        (for tests and the simulator; a real node calls `close`)."""
        self._buf.clear()
        self._release()

    def __enter__(self) -> "FileWAL":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def last_ended(self) -> int:
        return self._last_ended

    @property
    def segment_index(self) -> int:
        return self._index
