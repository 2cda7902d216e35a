"""A one-validator test bench for `consensus.Core`: the other validators are played by hand."""

from __future__ import annotations

import random

from ads_ledger.consensus.core import Core
from ads_ledger.consensus.messages import ProposalMessage, VoteMessage
from ads_ledger.consensus.privval import DoubleSignGuard, MemorySignerState
from ads_ledger.consensus.timeouts import ConsensusParams
from ads_ledger.consensus.wal import MemoryWAL
from ads_ledger.core.crypto import SigningKey, verify
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Block, Proposal, ValidatorSet, Vote
from ads_ledger.sim.app import ToyApp, ValsetSchedule
from fixtures import KEYS

CHAIN = "test-chain"
GENESIS = 1_700_000_000_000
T0 = GENESIS + 10_000
PARAMS = ConsensusParams()


class Bench:
    """Core under test is validator `me`; `proposer(r)` etc. describe height 1."""

    def __init__(self, me: int | None = None, powers: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        self.valset = ValidatorSet(tuple((k.pub, p) for k, p in zip(KEYS, powers)))
        self.schedule = ValsetSchedule(self.valset)
        self.app = ToyApp(CHAIN, self.schedule, GENESIS, random.Random(1), verify)
        self.other_app = ToyApp(CHAIN, self.schedule, GENESIS, random.Random(2), verify)
        self.wal = MemoryWAL()
        self.by_pub = {k.pub: k for k in KEYS}
        probe = self._core(KEYS[0], MemoryWAL(), ToyApp(CHAIN, self.schedule, GENESIS,
                                                         random.Random(0), verify))  # fmt: skip
        self.proposers = [probe.proposer(r) for r in range(8)]
        if me is None:  # someone who does not propose in rounds 0..2
            me = next(i for i, k in enumerate(KEYS) if k.pub not in self.proposers[:3])
        self.me = me
        self.signer_state = MemorySignerState()
        self.signer = DoubleSignGuard(KEYS[me], self.signer_state)
        self.core = self._core(self.signer, self.wal, self.app)
        self.others = [i for i in range(4) if i != me]

    def _core(self, signer: object, wal: MemoryWAL, app: ToyApp) -> Core:
        if isinstance(signer, SigningKey):
            signer = DoubleSignGuard(signer, MemorySignerState())
        return Core(chain_id=CHAIN, signer=signer, app=app, wal=wal, height=app.height + 1,  # type: ignore[arg-type]
                    params=PARAMS, last_commit=app.commits[-1] if app.commits else None,
                    verify=verify)  # fmt: skip

    def fresh_core(self, wal: MemoryWAL) -> Core:
        """A new core over the same app and signer state (a restart)."""
        self.signer = DoubleSignGuard(KEYS[self.me], self.signer_state)
        return self._core(self.signer, wal, self.app)

    def proposer_key(self, r: int) -> SigningKey:
        return self.by_pub[self.proposers[r]]

    def block(self, r: int = 0, time: int = T0, txs_seed: int = 0) -> Block:
        self.other_app.rng = random.Random(txs_seed)
        h = self.app.height + 1
        return self.other_app.propose_block(h, r, time, self.proposers[r],
                                            self.app.commits[-1] if self.app.commits else None)  # fmt: skip

    def proposal(self, r: int, block: Block, pol: int = -1, key: SigningKey | None = None) -> ProposalMessage:
        key = key or self.proposer_key(r)
        p = Proposal(block.header.height, r, block.block_id(), pol, key.pub).signed(CHAIN, key)
        return ProposalMessage(p, block)

    def vote(self, i: int, vtype: int, r: int, block_id: bytes | None, height: int = 1) -> VoteMessage:
        return VoteMessage(Vote(vtype, height, r, block_id, KEYS[i].pub).signed(CHAIN, KEYS[i]))

    def prevotes(self, voters: list[int], r: int, block_id: bytes | None) -> None:
        for i in voters:
            self.core.on_message(self.vote(i, PREVOTE, r, block_id), T0)

    def precommits(self, voters: list[int], r: int, block_id: bytes | None, now: int = T0) -> None:
        for i in voters:
            self.core.on_message(self.vote(i, PRECOMMIT, r, block_id), now)

    def my_votes(self) -> list[Vote]:
        return [m.vote for m in self.core.outbox() if isinstance(m, VoteMessage)]

    def sync_other_app(self) -> None:
        """Let the block-making app follow the chain the core decided."""
        self.other_app.blocks = list(self.app.blocks)
        self.other_app.commits = list(self.app.commits)
        self.other_app.state_roots = list(self.app.state_roots)
