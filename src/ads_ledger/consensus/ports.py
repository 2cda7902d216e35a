"""The contracts between the sans-IO consensus core and what surrounds it.

The core (`consensus.core`) is driven by the trio node, the simulator and the tests alike.
It never does IO itself: it calls these ports, which are synchronous and local
(a file fsync in the WAL or the guard is the only blocking work they may do).
"""

from __future__ import annotations

from typing import Protocol

from ads_ledger.core.types import Block, Commit, Proposal, ValidatorSet, Vote

# Double-sign guard steps, as CometBFT's privval numbers them.
STEP_PROPOSE = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3


class WAL(Protocol):
    """Write-ahead log of consensus inputs and own messages (records are opaque bytes).

    `append(..., sync=True)` returns only after the record is durable (fsync).
    `end_height(h)` appends the end-of-height marker for h, durably, after block h is stored.
    After a crash, `replay()` returns (last ended height or 0, records appended after that marker)."""

    def append(self, record: bytes, *, sync: bool) -> None: ...

    def end_height(self, height: int) -> None: ...

    def replay(self) -> tuple[int, list[bytes]]: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class Signer(Protocol):
    """Signs for one validator key, refusing anything that could be a double sign.

    The last signed (height, round, step, sign_bytes) is persisted before a signature is
    returned; a regression raises `DoubleSignRefused`; the same step with the same sign bytes
    returns the same signature again (so WAL replay after a crash is harmless)."""

    @property
    def pub(self) -> bytes: ...

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal: ...

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote: ...


class Application(Protocol):
    """What consensus needs from the state machine (the ledger, or a toy in the simulator).

    All calls are deterministic functions of their arguments and the committed chain."""

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set that decides `height` (changes take effect at H+2)."""
        ...

    def propose_block(self, height: int, round: int, time_ms: int, proposer: bytes,
                      last_commit: Commit | None) -> Block:
        """A new block for `height`, executed, with `state_root` after its transactions."""
        ...

    def validate_block(self, block: Block) -> bool:
        """valid(v) of Algorithm 1: well-formed, extends our chain, re-executes to the same roots."""
        ...

    def commit_block(self, block: Block, commit: Commit) -> None:
        """Persist a decided block with its commit (one atomic write); then the WAL end-of-height."""
        ...

    def last_block_time(self) -> int:
        """Time (ms) of the last committed block, or the genesis time."""
        ...
