"""A Byzantine validator for the simulator: it signs any message the protocol allows in shape.

The adversary of Tendermint's TLA+ model: proposals with any `pol_round` (−1, an earlier
round, a lie), with another valid block, an invalid block or an untimely one; prevotes and
precommits for any block id, nil or an unknown id, in this round or rounds ahead;
equivocation; and to each peer its own message. It rides on a shadow `Core` (unmodified
code, its own key) that tells it the height, round, proposer schedule and the blocks seen;
the shadow's own messages are what it starts from, forwarded, altered or withheld per peer.

Modes: "silent" (never sends: a crash that never ends); "echo" (proposals as they are;
each peer gets back a vote for what it voted, so every peer sees us agree with it, and
our own vote if it has not voted yet); "equivocate" (per (height, round, type) a plan
splits the peers: some get our message, some a conflicting one, some both, some nothing;
or the plan is an echo); "noisy" (our messages as they are, plus random ones on what we
hear); "mixed" (both).
Noise is bounded per (height, round) by `per_round` sends, so a run stays small; with
`votes_cap`, no more distinct votes per (type, height, round) than that are signed.
Deterministic given its `rng`.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from ads_ledger.consensus.core import Core
from ads_ledger.consensus.messages import Message, ProposalMessage, VoteMessage
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Block, Proposal, Vote

__all__ = ["Adversary", "MODES"]

MODES = ("silent", "echo", "equivocate", "noisy", "mixed")

Send = tuple[int, Message]  # (destination node, message)


class Adversary:
    """What a Byzantine validator's node sends, given what its shadow core does and hears.

    `peers` are the other nodes' indices; `chain_id` signs with `key` directly (no
    double-sign guard: equivocation is the point)."""

    def __init__(self, key: SigningKey, chain_id: str, mode: str, rng: random.Random,
                 peers: Sequence[int], *, per_round: int = 24, noise_pm: int = 300,
                 votes_cap: int = 0) -> None:  # fmt: skip
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
        self.plans: dict[tuple[int, int, int], _Plan] = {}  # (height, round, type) -> split
        self.now = 0  # our clock at the event being handled
        self.votes_cap = votes_cap
        self.voted: dict[tuple[int, int, int], list[bytes | None]] = {}  # (type, h, r) -> ids

    # ------------------------------------------------------------------ events

    def own(self, core: Core, msgs: Sequence[Message], now: int) -> list[Send]:
        """The shadow core's outbox: forwarded, or split per peer as the round's plan says.
        `now` is our clock (for the time of the blocks we make up)."""
        self.now = now
        if self.mode == "silent":
            return []
        out: list[Send] = []
        for m in msgs:
            if isinstance(m, VoteMessage):  # the shadow's vote counts towards the cap too
                v = m.vote
                if self._within_cap(v.type, v.height, v.round, v.block) != v.block:
                    m = self._vote(v.type, v.height, v.round, v.block)
            if (self.mode == "noisy" or not isinstance(m, (VoteMessage, ProposalMessage))
                    or (self.mode == "echo" and isinstance(m, ProposalMessage))):  # fmt: skip
                out.extend((dst, m) for dst in self.peers)
                continue
            plan = self._plan(core, m)
            if plan.echo:  # peers we did not echo yet get our vote (and the echo later)
                out.extend((dst, m) for dst in self.peers if dst not in plan.echoed)
                continue
            alt = self._alt(core, m, plan)
            for dst in self.peers:
                camp = plan.camps[dst]
                if camp == 0 or camp == 3:
                    out.append((dst, m))
                if camp == 1 or camp == 3:
                    out.append((dst, alt))
            self._spend(m.height, m.round, len(self.peers))
        return out

    def heard(self, core: Core, src: int, msg: Message, now: int) -> list[Send]:
        """A message from `src` reached us: echo its vote back to it under an "echo" plan;
        maybe add noise (its round or one ahead)."""
        self.now = now
        out: list[Send] = []
        if self.mode in ("echo", "equivocate", "mixed") and isinstance(msg, VoteMessage):
            v = msg.vote
            plan = self._plan(core, msg) if v.height == core.height else None
            if plan is not None and plan.echo and src not in plan.echoed:
                plan.echoed.add(src)
                out.append((src, self._vote(v.type, v.height, v.round, v.block)))
        if self.mode not in ("noisy", "mixed") or self.rng.randrange(1000) >= self.noise_pm:
            return out
        h = core.height
        if msg.height != h:
            return out
        r = max(msg.round, core.round) + (1 if self.rng.random() < 0.15 else 0)
        if self._spent(h, r):
            return out
        m = self._random_message(core, r)
        if m is None:
            return out
        dsts = [d for d in self.peers if self.rng.random() < 0.6]
        self._spend(h, r, len(dsts))
        return out + [(d, m) for d in dsts]

    def gossip(self, core: Core, msgs: Sequence[Message]) -> list[Send]:
        """The shadow core's retransmit set; our own messages only in "noisy" mode (a
        splitting adversary must not undo its split)."""
        if self.mode == "silent":
            return []
        me = core.me
        return [(d, m) for m in msgs if self.mode == "noisy" or _signer(m) != me
                for d in self.peers]  # fmt: skip

    # ------------------------------------------------------------------ plans

    def _plan(self, core: Core, m: Message) -> "_Plan":
        """The (height, round, type)'s split: per peer our message (0), the alternative (1),
        nothing (2) or both (3); or, for votes, "echo" each peer's own vote back to it."""
        kind = m.vote.type if isinstance(m, VoteMessage) else 0
        key = (m.height, m.round, kind)
        plan = self.plans.get(key)
        if plan is not None:
            return plan
        for old in [k for k in self.plans if k[0] < m.height]:
            del self.plans[old]
        rng = self.rng
        before = self.plans.get((m.height, m.round, kind - 1)) if kind else None
        if before is not None and not before.echo and rng.random() < 0.6:
            camps = dict(before.camps)  # the same split as the step before
        else:
            camps = {d: rng.choices((0, 1, 2, 3), (5, 4, 1, 1))[0] for d in self.peers}
        plan = _Plan(camps, echo=kind > 0 and (self.mode == "echo" or rng.random() < 0.4))
        plan.alt_id = before.alt_id if before is not None else None
        self.plans[key] = plan
        return plan

    def _alt(self, core: Core, m: Message, plan: "_Plan") -> Message:
        """The conflicting message the plan's camp 1 gets instead of `m`."""
        if isinstance(m, ProposalMessage):
            lie = self._lying_proposal(core, m.height, m.round, m.block)
            plan.alt_id = lie.block_id
            return lie
        assert isinstance(m, VoteMessage)
        v = m.vote
        if plan.alt_id is None or plan.alt_id == v.block or self.rng.random() < 0.3:
            choices = [b for b in self._block_ids(core) if b != v.block] or [self.rng.randbytes(32)]
            plan.alt_id = self.rng.choice(choices)
        return self._vote(v.type, v.height, v.round, plan.alt_id)

    # ------------------------------------------------------------------ building lies

    def _spent(self, h: int, r: int) -> bool:
        return self.sent.get((h, r), 0) >= self.per_round

    def _spend(self, h: int, r: int, n: int) -> None:
        if (h, r) not in self.sent:
            for old in [k for k in self.sent if k[0] < h - 1]:
                del self.sent[old]
        self.sent[(h, r)] = self.sent.get((h, r), 0) + n

    def _block_ids(self, core: Core) -> list[bytes | None]:
        ids: list[bytes | None] = [None, *core.log.blocks]
        ids.extend(b.block_id() for b in self.made.get(core.height, ()))
        if self.rng.random() < 0.1:
            ids.append(self.rng.randbytes(32))  # a block nobody has
        return ids

    def _vote(self, vtype: int, h: int, r: int, bid: bytes | None) -> VoteMessage:
        bid = self._within_cap(vtype, h, r, bid)
        return VoteMessage(Vote(vtype, h, r, bid, self.key.pub).signed(self.chain_id, self.key))

    def _within_cap(self, vtype: int, h: int, r: int, bid: bytes | None) -> bytes | None:
        """`bid`, or one we already signed for (type, h, r) once `votes_cap` distinct
        ones are out (0: no cap)."""
        used = self.voted.get((vtype, h, r))
        if used is None:
            for old in [k for k in self.voted if k[1] < h - 1]:
                del self.voted[old]
            used = self.voted[(vtype, h, r)] = []
        if bid in used or not self.votes_cap or len(used) < self.votes_cap:
            if bid not in used:
                used.append(bid)
            return bid
        return self.rng.choice(used)

    def _proposal(self, h: int, r: int, block: Block, pol_round: int) -> ProposalMessage:
        p = Proposal(h, r, block.block_id(), pol_round, self.key.pub)
        return ProposalMessage(p.signed(self.chain_id, self.key), block)

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
            time = max(self.now + rng.randint(-300, 300), core.app.last_block_time() + 1)
            new = core.app.propose_block(h, r, time, core.me, core.last_commit)
            if kind == 3:  # invalid: roots that re-execution does not reproduce
                new = dataclasses.replace(new, header=dataclasses.replace(
                    new.header, state_root=rng.randbytes(32)))  # fmt: skip
            elif kind == 4:  # valid but untimely: far in the future
                new = dataclasses.replace(new, header=dataclasses.replace(
                    new.header, time=new.header.time + 60_000))  # fmt: skip
            for old in [k for k in self.made if k < h]:
                del self.made[old]
            self.made.setdefault(h, []).append(new)
        pol = -1
        if r > 0 and rng.random() < 0.7:
            # a lie aimed at the locks: the round where we (so maybe others) locked or saw
            # a polka, else any earlier round
            aimed = [x for x in (core.locked_round, core.valid_round) if 0 <= x < r]
            pol = rng.choice(aimed) if aimed and rng.random() < 0.6 else rng.randrange(0, r)
        return self._proposal(h, r, new, pol)

    def _random_message(self, core: Core, r: int) -> Message | None:
        h = core.height
        if core.proposer(r) == core.me and self.rng.random() < 0.3:
            return self._lying_proposal(core, h, r, None)
        vtype = PREVOTE if self.rng.random() < 0.5 else PRECOMMIT
        return self._vote(vtype, h, r, self.rng.choice(self._block_ids(core)))


class _Plan:
    """How one (height, round, type) is split between the peers."""

    __slots__ = ("camps", "echo", "echoed", "alt_id")

    def __init__(self, camps: dict[int, int], *, echo: bool) -> None:
        self.camps = camps
        self.echo = echo
        self.echoed: set[int] = set()
        self.alt_id: bytes | None = None  # the block id camp 1 is told about


def _signer(m: Message) -> bytes | None:
    if isinstance(m, VoteMessage):
        return m.vote.validator
    if isinstance(m, ProposalMessage):
        return m.proposal.proposer
    return None
