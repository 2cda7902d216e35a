"""A Byzantine validator for the simulator: it signs any message the protocol allows in shape.

The adversary of Tendermint's TLA+ model: proposals with any `pol_round` (−1, an earlier
round, a lie), with another valid block, an invalid block or an untimely one; prevotes and
precommits for any block id, nil or an unknown id, in this round or rounds ahead;
equivocation; and to each peer its own message. It rides on a shadow `Core` (unmodified
code, its own key) that tells it the height, round, proposer schedule and the blocks seen;
the shadow's own messages are what it starts from, forwarded, altered or withheld per peer.

Modes: "silent" (never sends: a crash that never ends), "equivocate" (each own message goes
to a random part of the peers, a conflicting one to the rest), "noisy" (own messages as they
are, plus random messages on what it hears), "mixed" (both). Every (height, round) gets at
most `per_round` extra sends, so a run stays small. Deterministic given its `rng`.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from ..consensus.core import Core
from ..consensus.messages import Message, ProposalMessage, VoteMessage
from ..crypto import SigningKey
from ..types import PRECOMMIT, PREVOTE, Block, Proposal, Vote

__all__ = ["Adversary", "MODES"]

MODES = ("silent", "equivocate", "noisy", "mixed")

Send = tuple[int, Message]  # (destination node, message)


class Adversary:
    """What Byzantine node `me` sends, given what its shadow core does and hears.

    `peers` are the other nodes' indices; `chain_id` signs with `key` directly (no
    double-sign guard: equivocation is the point)."""

    def __init__(self, key: SigningKey, chain_id: str, mode: str, rng: random.Random,
                 peers: Sequence[int], *, per_round: int = 24, noise_pm: int = 300) -> None:  # fmt: skip
        if mode not in MODES:
            raise ValueError(f"unknown adversary mode {mode!r}")
        self.key = key
        self.chain_id = chain_id
        self.mode = mode
        self.rng = rng
        self.peers = list(peers)
        self.per_round = per_round
        self.noise_pm = noise_pm
        self.sent: dict[tuple[int, int], int] = {}  # (height, round) -> extra sends
        self.made: dict[int, list[Block]] = {}  # height -> blocks we built for lies

    # ------------------------------------------------------------------ events

    def own(self, core: Core, msgs: Sequence[Message]) -> list[Send]:
        """The shadow core's outbox: forwarded, split or withheld."""
        if self.mode == "silent":
            return []
        out: list[Send] = []
        for m in msgs:
            if self.mode in ("equivocate", "mixed") and not self._spent(m.height, m.round):
                other = self._variant(core, m)
                keep = self.rng.random()
                for dst in self.peers:
                    roll = self.rng.random()
                    if roll < 0.1:
                        continue  # withheld from this peer
                    out.append((dst, m if roll < keep else other))
                self._spend(m.height, m.round, len(self.peers))
            else:
                out.extend((dst, m) for dst in self.peers)
        return out

    def heard(self, core: Core, msg: Message) -> list[Send]:
        """A message reached us: maybe answer it with noise (its round or one ahead)."""
        if self.mode not in ("noisy", "mixed") or self.rng.randrange(1000) >= self.noise_pm:
            return []
        h = core.height
        if msg.height != h:
            return []
        r = max(msg.round, core.round) + (1 if self.rng.random() < 0.15 else 0)
        if self._spent(h, r):
            return []
        m = self._random_message(core, r)
        if m is None:
            return []
        dsts = [d for d in self.peers if self.rng.random() < 0.6]
        self._spend(h, r, len(dsts))
        return [(d, m) for d in dsts]

    def gossip(self, core: Core, msgs: Sequence[Message]) -> list[Send]:
        """The shadow core's retransmit set: as honest nodes do, unless silent."""
        if self.mode == "silent":
            return []
        return [(d, m) for m in msgs for d in self.peers]

    # ------------------------------------------------------------------ building lies

    def _spent(self, h: int, r: int) -> bool:
        return self.sent.get((h, r), 0) >= self.per_round

    def _spend(self, h: int, r: int, n: int) -> None:
        self.sent[(h, r)] = self.sent.get((h, r), 0) + n

    def _block_ids(self, core: Core) -> list[bytes | None]:
        ids: list[bytes | None] = [None, *core.log.blocks]
        ids.extend(b.block_id() for b in self.made.get(core.height, ()))
        if self.rng.random() < 0.1:
            ids.append(self.rng.randbytes(32))  # a block nobody has
        return ids

    def _vote(self, vtype: int, h: int, r: int, bid: bytes | None) -> VoteMessage:
        return VoteMessage(Vote(vtype, h, r, bid, self.key.pub).signed(self.chain_id, self.key))

    def _proposal(self, h: int, r: int, block: Block, pol_round: int) -> ProposalMessage:
        p = Proposal(h, r, block.block_id(), pol_round, self.key.pub)
        return ProposalMessage(p.signed(self.chain_id, self.key), block)

    def _variant(self, core: Core, m: Message) -> Message:
        """A message conflicting with our own `m` (same height, round and type)."""
        if isinstance(m, VoteMessage):
            v = m.vote
            choices = [b for b in self._block_ids(core) if b != v.block] or [self.rng.randbytes(32)]
            return self._vote(v.type, v.height, v.round, self.rng.choice(choices))
        if isinstance(m, ProposalMessage):
            return self._lying_proposal(core, m.height, m.round, m.block)
        return m

    def _lying_proposal(self, core: Core, h: int, r: int, block: Block | None) -> ProposalMessage:
        """A proposal for (h, r): another valid block, a known block, an invalid or untimely
        one, each with a pol_round drawn from −1 and the earlier rounds."""
        rng = self.rng
        kind = rng.randrange(5)
        known = [b for b in core.log.blocks.values() if block is None or b != block]
        if kind == 0 and known:
            new = rng.choice(known)
        elif kind == 1 and block is not None:
            new = block  # the same block, another pol_round
        else:
            last = core.app.last_block_time()
            new = core.app.propose_block(h, r, last + 1 + rng.randrange(2000), core.me,
                                         core.last_commit)  # fmt: skip
            if kind == 3:  # invalid: roots that re-execution does not reproduce
                new = dataclasses.replace(new, header=dataclasses.replace(
                    new.header, state_root=rng.randbytes(32)))  # fmt: skip
            elif kind == 4:  # valid but untimely: far in the future
                new = dataclasses.replace(new, header=dataclasses.replace(
                    new.header, time=new.header.time + 60_000))  # fmt: skip
            for old in [k for k in self.made if k < h]:
                del self.made[old]
            self.made.setdefault(h, []).append(new)
        pol = rng.randrange(-1, r) if r > 0 and rng.random() < 0.7 else -1
        return self._proposal(h, r, new, pol)

    def _random_message(self, core: Core, r: int) -> Message | None:
        h = core.height
        if core.proposer(r) == core.me and self.rng.random() < 0.3:
            return self._lying_proposal(core, h, r, None)
        vtype = PREVOTE if self.rng.random() < 0.5 else PRECOMMIT
        return self._vote(vtype, h, r, self.rng.choice(self._block_ids(core)))
