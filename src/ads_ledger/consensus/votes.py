"""Vote bookkeeping for one height: first vote per validator and type and round wins.

A second, different vote by the same validator for the same (type, round) is not counted;
it is kept as evidence of equivocation (DESIGN §6, third local duty).
"""

from __future__ import annotations

from ..types import Vote

__all__ = ["Tally"]


class Tally:
    """Votes of one type in one round: who voted, and power per block id (None is nil)."""

    __slots__ = ("votes", "power", "total")

    def __init__(self) -> None:
        self.votes: dict[bytes, Vote] = {}
        self.power: dict[bytes | None, int] = {}
        self.total = 0  # power of every vote counted, whatever it is for (Alg.1 "*")

    def add(self, vote: Vote, power: int) -> None:
        """Count `vote` (the caller checked it is the validator's first for this round)."""
        self.votes[vote.validator] = vote
        self.power[vote.block] = self.power.get(vote.block, 0) + power
        self.total += power

    def power_for(self, block: bytes | None) -> int:
        return self.power.get(block, 0)

    def for_block(self, block: bytes | None) -> list[Vote]:
        return [v for v in self.votes.values() if v.block == block]

    def blocks_with(self, quorum: int) -> list[bytes]:
        """Non-nil block ids that carry at least `quorum` power here."""
        return [b for b, p in self.power.items() if b is not None and p >= quorum]
