"""A toy Application for the simulator: blocks of random bytes, a hash-chained state root.

It still checks validity as the ledger would: chain id, height, parent, strictly
increasing time, validator-set hashes, txs/evidence roots, the last commit (signatures
and >2/3 power of the previous height's set) and the state root after "execution".
Validator-set changes come from a fixed schedule, a change listed at height k taking
effect at k+2 (as if block k carried it).
"""

from __future__ import annotations

import random
from typing import Callable, Mapping

from ads_ledger.core.crypto import H
from ads_ledger.core.merkle import list_root
from ads_ledger.core.types import ZERO32, Block, Commit, Header, ValidatorSet

__all__ = ["ToyApp", "ValsetSchedule", "Verify"]

Verify = Callable[[bytes, bytes, bytes], bool]


class ValsetSchedule:
    """The validator set of each height: `genesis`, then `changes[k]` from height k+2 on."""

    def __init__(self, genesis: ValidatorSet, changes: Mapping[int, ValidatorSet] | None = None):
        self.genesis = genesis
        self.changes = dict(sorted((changes or {}).items()))

    def at(self, height: int) -> ValidatorSet:
        vs = self.genesis
        for k, change in self.changes.items():
            if k + 2 <= height:
                vs = change
        return vs


class ToyApp:
    """`ports.Application` over an in-memory chain (kept across simulated crashes, as a
    store whose block write is atomic). `rng` draws the transactions of our proposals."""

    def __init__(self, chain_id: str, schedule: ValsetSchedule, genesis_time: int,
                 rng: random.Random, verify: Verify) -> None:  # fmt: skip
        self.chain_id = chain_id
        self.schedule = schedule
        self.genesis_time = genesis_time
        self.rng = rng
        self.verify = verify
        self.blocks: list[Block] = []
        self.commits: list[Commit] = []
        self.state_roots: list[bytes] = [H(b"genesis/" + chain_id.encode())]

    @property
    def height(self) -> int:
        return len(self.blocks)

    def validators_at(self, height: int) -> ValidatorSet:
        return self.schedule.at(height)

    def last_block_time(self) -> int:
        return self.blocks[-1].header.time if self.blocks else self.genesis_time


    def _header(self, height: int, time: int, txs: tuple[bytes, ...], proposer: bytes,
                last_commit: Commit | None) -> Header:  # fmt: skip
        txs_root = list_root([H(t) for t in txs])
        return Header(
            chain_id=self.chain_id, height=height, time=time,
            prev=self.blocks[-1].block_id() if self.blocks else ZERO32,
            txs_root=txs_root, evidence_root=list_root([]),
            state_root=H(self.state_roots[-1] + txs_root),
            validators=self.schedule.at(height).hash(),
            next_validators=self.schedule.at(height + 1).hash(),
            proposer=proposer,
            last_commit=ZERO32 if last_commit is None else last_commit.hash(),
        )  # fmt: skip

    def propose_block(self, height: int, round: int, time_ms: int, proposer: bytes,
                      last_commit: Commit | None) -> Block:  # fmt: skip
        txs = tuple(self.rng.randbytes(self.rng.randint(4, 24)) for _ in range(self.rng.randint(0, 3)))
        lc = last_commit if height > 1 else None
        return Block(self._header(height, time_ms, txs, proposer, lc), txs, (), lc)

    def commit_ok(self, commit: Commit | None, height: int) -> bool:
        if height == 1:
            return commit is None
        if commit is None or commit.height != height - 1:
            return False
        if commit.block != self.blocks[height - 2].block_id():
            return False
        vs = self.schedule.at(height - 1)
        msg = commit.vote_sign_bytes(self.chain_id)
        power, last = 0, -1
        for idx, sig in commit.sigs:
            if not last < idx < len(vs) or not self.verify(vs.validators[idx][0], sig, msg):
                return False  # unsorted, repeated, unknown or forged
            last = idx
            power += vs.validators[idx][1]
        return power >= vs.quorum()

    def validate_block(self, block: Block) -> bool:
        """valid(v): extends our chain and re-executes to the same roots."""
        h = block.header
        if h.height != self.height + 1 or h.time <= self.last_block_time():
            return False
        if block.evidence or not self.commit_ok(block.last_commit, h.height):
            return False
        if self.schedule.at(h.height).index_of(h.proposer) is None:
            return False
        return h == self._header(h.height, h.time, block.txs, h.proposer, block.last_commit)

    def commit_block(self, block: Block, commit: Commit) -> None:
        if block.header.height != self.height + 1:
            raise ValueError(f"commit of height {block.header.height} at {self.height}")  # our bug
        self.blocks.append(block)
        self.commits.append(commit)
        self.state_roots.append(block.header.state_root)
