"""Vote bookkeeping for one height, counted as Algorithm 1 counts messages.

"2f+1 ⟨PREVOTE, h, r, id(v)⟩" is the power of the validators that sent a prevote for
id(v); "2f+1 ⟨PREVOTE, h, r, *⟩" the power of the validators that sent any. A validator
that equivocates therefore counts towards each value it voted for (as in the paper; a node
must be able to confirm a polka another correct node saw, whichever of the two votes it
got first), and once towards "*". Distinct votes kept per validator are bounded.
"""

from __future__ import annotations

from ads_ledger.core.types import Vote

__all__ = ["Tally", "MAX_VOTES_PER_VALIDATOR"]

# An equivocator's distinct votes per (type, round) we keep; more only cost memory.
MAX_VOTES_PER_VALIDATOR = 4


class Tally:
    """Votes of one type in one round: who voted for what, power per block id (None: nil)."""

    __slots__ = ("votes", "by_block", "power", "total")

    def __init__(self) -> None:
        self.votes: dict[bytes, list[Vote]] = {}  # validator -> its distinct votes, in order
        self.by_block: dict[bytes | None, list[Vote]] = {}
        self.power: dict[bytes | None, int] = {}
        self.total = 0  # power of the validators that voted at all (Alg.1 "*")

    def has(self, validator: bytes, block: bytes | None) -> bool:
        return any(v.block == block for v in self.votes.get(validator, ()))

    def count_of(self, validator: bytes) -> int:
        return len(self.votes.get(validator, ()))

    def add(self, vote: Vote, power: int) -> None:
        """Count `vote` (the caller checked it is new for this validator and block)."""
        mine = self.votes.setdefault(vote.validator, [])
        if not mine:
            self.total += power
        mine.append(vote)
        self.by_block.setdefault(vote.block, []).append(vote)
        self.power[vote.block] = self.power.get(vote.block, 0) + power

    def power_for(self, block: bytes | None) -> int:
        return self.power.get(block, 0)

    def for_block(self, block: bytes | None) -> list[Vote]:
        return list(self.by_block.get(block, ()))

    def blocks_with(self, quorum: int) -> list[bytes]:
        """Non-nil block ids that carry at least `quorum` power here."""
        return [b for b, p in self.power.items() if b is not None and p >= quorum]
