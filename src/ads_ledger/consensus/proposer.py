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
from typing import Any, Callable

from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import ValidatorSet

__all__ = ["ProposerPriorities", "priorities_for_height"]

WINDOW_FACTOR = 2  # priorities are kept within 2 × total power of each other


def _tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` on int64."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class _Row:
    """One validator's mutable priority while priorities are being updated."""

    __slots__ = ("pub", "power", "prio")

    def __init__(self, pub: bytes, power: int, prio: int) -> None:
        self.pub, self.power, self.prio = pub, power, prio

    def rank(self) -> tuple[int, tuple[int, ...]]:
        # highest priority first; on a tie the smaller key (negated bytes compare reversed)
        return (self.prio, tuple(-b for b in self.pub))


def _increment(rows: list[_Row], times: int) -> bytes:
    """CometBFT `IncrementProposerPriority(times)`, in place; returns the last proposer."""
    total = sum(r.power for r in rows)
    _rescale(rows, WINDOW_FACTOR * total)
    _shift_by_average(rows)
    proposer = b""
    for _ in range(times):
        for r in rows:
            r.prio += r.power
        best = max(rows, key=_Row.rank)
        best.prio -= total
        proposer = best.pub
    return proposer


def _rescale(rows: list[_Row], diff_max: int) -> None:
    """Scale priorities down so that max − min ≤ diff_max (Go division semantics)."""
    if diff_max <= 0:
        return
    diff = max(r.prio for r in rows) - min(r.prio for r in rows)
    if diff > diff_max:
        ratio = (diff + diff_max - 1) // diff_max
        for r in rows:
            r.prio = _tdiv(r.prio, ratio)


def _shift_by_average(rows: list[_Row]) -> None:
    avg = sum(r.prio for r in rows) // len(rows)  # big.Int Div is floor division here
    for r in rows:
        r.prio -= avg


@dataclass(frozen=True, slots=True)
class ProposerPriorities:
    """Priorities at the start of a height: `proposer` is the proposer of round 0."""

    entries: tuple[tuple[bytes, int, int], ...]  # (pub, power, priority) in set order
    proposer: bytes

    @classmethod
    def _from_rows(cls, rows: list[_Row], times: int) -> "ProposerPriorities":
        proposer = _increment(rows, times)
        return cls(tuple((r.pub, r.power, r.prio) for r in rows), proposer)

    @classmethod
    def genesis(cls, valset: ValidatorSet) -> "ProposerPriorities":
        """Height 1: all priorities 0, incremented once (as CometBFT's NewValidatorSet)."""
        return cls._from_rows([_Row(pub, power, 0) for pub, power in valset.validators], 1)

    def to_obj(self) -> list[Any]:
        """`[[[pub, power, priority], ...], proposer]`: codec-encodable while every priority
        fits msgpack's −2^63…2^64−1. Priorities stay within ±3·P (P the total power): the
        rescale keeps max − min ≤ 2P and centres them before each increment of +power / −P."""
        return [[[pub, power, prio] for pub, power, prio in self.entries], self.proposer]

    @classmethod
    def from_obj(cls, obj: Any) -> "ProposerPriorities":
        """The inverse of `to_obj`; DecodeError if `obj` does not have its shape."""
        if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not list or not obj[0]:
            raise DecodeError("priorities must be [[[pub, power, priority], ...], proposer]")
        entries = []
        for e in obj[0]:
            if (
                type(e) is not list or len(e) != 3 or type(e[0]) is not bytes or len(e[0]) != 32
                or type(e[1]) is not int or e[1] <= 0 or type(e[2]) is not int
            ):  # fmt: skip
                raise DecodeError("a priority entry must be [32-byte pub, power > 0, priority]")
            entries.append((e[0], e[1], e[2]))
        proposer = obj[1]
        if type(proposer) is not bytes or proposer not in {pub for pub, _, _ in entries}:
            raise DecodeError("the proposer of round 0 is not one of the entries")
        return cls(tuple(entries), proposer)

    def proposer_at(self, round: int) -> bytes:
        """proposer(h, round): `round` further increments from this height's start."""
        if round == 0:
            return self.proposer
        return _increment([_Row(p, w, a) for p, w, a in self.entries], round)

    def next_height(self, valset: ValidatorSet) -> "ProposerPriorities":
        """Priorities for the next height, whose validator set is `valset`.

        Members keep their priority (with their new power); removed members are dropped;
        new members start at −(P + P/8), P the total power counting removed members
        (CometBFT's "after updates, before removals"); then one increment."""
        old = {p: a for p, _, a in self.entries}
        removed_power = sum(w for p, w, _ in self.entries if valset.index_of(p) is None)
        tvp = valset.total_power + removed_power
        rows = [_Row(pub, power, old.get(pub, -(tvp + (tvp >> 3))))
                for pub, power in valset.validators]  # fmt: skip
        _rescale(rows, WINDOW_FACTOR * valset.total_power)
        _shift_by_average(rows)
        return self._from_rows(rows, 1)


def priorities_for_height(validators_at: Callable[[int], ValidatorSet], height: int) -> ProposerPriorities:
    """The priorities at the start of `height`, walking from height 1 (O(height · n))."""
    pr = ProposerPriorities.genesis(validators_at(1))
    for h in range(2, height + 1):
        pr = pr.next_height(validators_at(h))
    return pr

