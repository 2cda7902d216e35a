"""Counts per key with the largest found cheaply: the mempool's fair-share bookkeeping (sans-IO).

Keys sit in buckets by count; the largest non-empty bucket is tracked and, when it empties, found
again by scanning down. Counts move by one at a time, so the scan is amortised O(1) per change.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Tally"]

K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    """`count(k)`, `add(k, ±1)`, and `busiest()`: a key with the largest count, in O(1) amortised."""

    def __init__(self) -> None:
        self._counts: dict[K, int] = {}
        self._buckets: dict[int, dict[K, None]] = {}  # count -> keys (insertion-ordered)
        self._top = 0  # ≥ the largest count; its bucket may have emptied

    def __len__(self) -> int:
        return len(self._counts)

    def count(self, key: K) -> int:
        return self._counts.get(key, 0)

    def add(self, key: K, delta: int) -> None:
        old = self._counts.get(key, 0)
        new = old + delta
        if new < 0:
            raise ValueError(f"count of {key!r} would go below zero")
        if old:
            bucket = self._buckets[old]
            del bucket[key]
            if not bucket:
                del self._buckets[old]
        if new:
            self._counts[key] = new
            self._buckets.setdefault(new, {})[key] = None
            self._top = max(self._top, new)
        else:
            self._counts.pop(key, None)

    def busiest(self) -> tuple[K, int] | None:
        """A key with the largest count (the first to reach it), or None when all are zero."""
        while self._top > 0 and self._top not in self._buckets:
            self._top -= 1
        if self._top == 0:
            return None
        return next(iter(self._buckets[self._top])), self._top

    def as_dict(self) -> dict[K, int]:
        return dict(self._counts)
