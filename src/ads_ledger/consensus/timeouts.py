"""Consensus timing parameters: Algorithm 1's timeouts and the proposal-time precision.

`timeoutX(r) = initX + r × deltaX` (Alg.1 "timeoutPropose(round_p)" etc.), reset every
height. All times are integer milliseconds (DESIGN §3); the core never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConsensusParams"]


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """Timeouts (ms) per step, growing by a delta per round, and the clock precision (ms).

    `precision_ms`: a validator prevotes nil on a fresh proposal whose header time differs
    from its own clock, at the moment the proposal arrived, by more than this.
    `next_height_buffer`: how many messages for height h+1 are kept while still at h.
    `max_rounds_ahead`: messages for rounds further ahead than this are dropped (memory bound).
    """

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    precision_ms: int = 500
    message_delay_ms: int = 0  # a proposal may arrive this much later than its time (+precision)
    idle_interval_ms: int = 0  # >0: an idle round-0 proposer waits for txs up to this after the last block
    next_height_buffer: int = 1000
    max_rounds_ahead: int = 10_000

    def timeout_propose(self, round: int) -> int:
        return self.propose_ms + round * self.propose_delta_ms

    def timeout_prevote(self, round: int) -> int:
        return self.prevote_ms + round * self.prevote_delta_ms

    def timeout_precommit(self, round: int) -> int:
        return self.precommit_ms + round * self.precommit_delta_ms
