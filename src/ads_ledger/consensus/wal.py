"""Consensus write-ahead log (DESIGN §6, first local duty; implements `ports.WAL`).

`MemoryWAL` is for the simulator and the tests: it keeps records in a list and models a
power loss with `crash()`. `FileWAL` is the real thing: framed, checksummed records in
segment files, fsynced where the contract says, repaired after a torn tail and refusing
(with `WALCorrupt`) anything damaged before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AdsError

__all__ = ["MemoryWAL", "WALCorrupt", "MAX_RECORD"]

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
