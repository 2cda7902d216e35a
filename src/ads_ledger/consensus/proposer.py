"""Weighted round-robin proposer selection with priorities (CometBFT's algorithm).

Each validator i holds a priority A(i). One increment: A(i) += VP(i) for all i; the
validator with the highest A proposes (ties: the smaller public key); its A -= P (total
power). Before incrementing, priorities are scaled so that max − min ≤ 2P and centred on
their average. A new height increments once from the previous height's priorities (after
applying validator-set changes: new members start at −1.125·P); round r of a height is r
further increments from the height's start. Only arithmetic: no IO, deterministic.

Differences from CometBFT, on purpose: ties break on the public key (we have no
addresses), and Python integers do not overflow (no int64 clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..types import ValidatorSet

__all__ = ["ProposerPriorities", "priorities_for_height"]

WINDOW_FACTOR = 2  # priorities are kept within 2 × total power of each other


def _tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` on int64."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _increment(entries: list[list[object]], times: int) -> bytes:
    """CometBFT `IncrementProposerPriority(times)` on [pub, power, priority] rows, in place."""
    total = sum(int(e[1]) for e in entries)  # type: ignore[call-overload]
    _rescale(entries, WINDOW_FACTOR * total)
    _shift_by_average(entries)
    proposer = b""
    for _ in range(times):
        for e in entries:
            e[2] = int(e[2]) + int(e[1])  # type: ignore[call-overload]
        best = max(entries, key=lambda e: (e[2], _neg_key(e[0])))
        best[2] = int(best[2]) - total  # type: ignore[call-overload]
        proposer = best[0]  # type: ignore[assignment]
    return proposer


def _neg_key(pub: object) -> tuple[int, ...]:
    # max() with a tie on priority must pick the smaller key: compare negated bytes
    return tuple(-b for b in pub)  # type: ignore[attr-defined]


def _rescale(entries: list[list[object]], diff_max: int) -> None:
    if diff_max <= 0:
        return
    prios = [int(e[2]) for e in entries]  # type: ignore[call-overload]
    diff = max(prios) - min(prios)
    if diff > diff_max:
        ratio = (diff + diff_max - 1) // diff_max
        for e in entries:
            e[2] = _tdiv(int(e[2]), ratio)  # type: ignore[call-overload]


def _shift_by_average(entries: list[list[object]]) -> None:
    avg = sum(int(e[2]) for e in entries) // len(entries)  # type: ignore[call-overload]
    for e in entries:
        e[2] = int(e[2]) - avg  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class ProposerPriorities:
    """Priorities at the start of a height: `proposer` is the proposer of round 0."""

    entries: tuple[tuple[bytes, int, int], ...]  # (pub, power, priority) in set order
    proposer: bytes

    @classmethod
    def _from_rows(cls, rows: list[list[object]], times: int) -> "ProposerPriorities":
        proposer = _increment(rows, times)
        return cls(tuple((r[0], r[1], r[2]) for r in rows), proposer)  # type: ignore[misc]

    @classmethod
    def genesis(cls, valset: ValidatorSet) -> "ProposerPriorities":
        """Height 1: all priorities 0, incremented once (as CometBFT's NewValidatorSet)."""
        return cls._from_rows([[pub, power, 0] for pub, power in valset.validators], 1)

    def proposer_at(self, round: int) -> bytes:
        """proposer(h, round): `round` further increments from this height's start."""
        if round == 0:
            return self.proposer
        rows = [[p, w, a] for p, w, a in self.entries]
        return _increment(rows, round)  # type: ignore[arg-type]

    def next_height(self, valset: ValidatorSet) -> "ProposerPriorities":
        """Priorities for the next height, whose validator set is `valset`.

        Members keep their priority (with their new power); removed members are dropped;
        new members start at −(P + P/8), P the total power counting removed members
        (CometBFT's "after updates, before removals"); then one increment."""
        old = {p: a for p, _, a in self.entries}
        removed_power = sum(w for p, w, _ in self.entries if valset.index_of(p) is None)
        tvp = valset.total_power + removed_power
        rows: list[list[object]] = [
            [pub, power, old.get(pub, -(tvp + (tvp >> 3)))] for pub, power in valset.validators
        ]
        _rescale(rows, WINDOW_FACTOR * valset.total_power)
        _shift_by_average(rows)
        return self._from_rows(rows, 1)


def priorities_for_height(validators_at: Callable[[int], ValidatorSet], height: int) -> ProposerPriorities:
    """The priorities at the start of `height`, walking from height 1 (O(height · n))."""
    pr = ProposerPriorities.genesis(validators_at(1))
    for h in range(2, height + 1):
        pr = pr.next_height(validators_at(h))
    return pr

