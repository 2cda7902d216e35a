"""TEST-ONLY Byzantine validator kit: `ads node start --home DIR --byzantine NAME`.

A validator started with a behaviour below attacks its peers in that one way and is honest in
every other respect, so that a live test can check that the honest validators stay safe and
live, and that a fresh node still syncs from them (tests/test_byzantine_live.py). It runs only
on a chain whose id contains "test" or "devnet"; `Byzantine.make` refuses any other.

Behaviours (`BEHAVIOURS`):
  forge_auth      its proposals carry mempool transactions with forged `auth`: a gov tx
                  submitted to its API short of the quorum gets `[another member, 64 garbage
                  bytes]` entries; other transactions get their signature swapped for garbage.
                  The header's state_root is what a validator that does not check the
                  signatures computes.
  invalid_txs     its proposals carry, in turn, a tx with a wrong nonce, an unknown type, a
                  replayed committed tx, a tx over 32 KiB, more txs than `max_block_txs` or
                  more bytes than `max_block_bytes` (the params in force).
  old_evidence    signs two conflicting votes of its own: evidence older than
                  `evidence_max_age` (gossiped as P2P `evidence` and put in its proposals),
                  and in turn the same evidence twice in one block and evidence with a bad
                  signature.
  proposal_flood  for each round it proposes, also sends 999 other signed proposals of the
                  same block at other times for the same (height, round), the first 100
                  ahead of the real one.
  equivocate      every vote it sends goes with a conflicting one, signed past the guard.
  lying_sync      answers `get_blocks` with bad commits (garbage signatures, commits of other
                  blocks), altered headers and blocks of other heights, also for heights it
                  does not have; announces a status height 1,000 above its own.
  withhold        proposes but never delivers the block: the proposal is sent to no one, or
                  with a block other than the one it signs.

The node calls the hooks of `Byzantine` (all no-ops for an honest node): `on_send` for every
consensus message it broadcasts, `on_submit` for every tx posted to its API, `serve_blocks`
for every `get_blocks`, `status_height` for every status it announces, and runs `run()`.
Proposers replace `ledger.propose_block` with their own builder (`build_block`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import trio

from ads_ledger.consensus.messages import CommitMessage, Message, ProposalMessage, VoteMessage
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError, DecodeError
from ads_ledger.core.types import (
    PREVOTE,
    Block,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
)
from ads_ledger.node.hooks import FaultHooks
from ads_ledger.node.logs import kv
from ads_ledger.state.envelope import MAX_TX_BYTES, Envelope, make_envelope, parse_envelope
from ads_ledger.state.records import GOV_MEMBERS

if TYPE_CHECKING:
    from ads_ledger.node.daemon import Node
    from ads_ledger.node.ledger import Ledger

__all__ = ["BEHAVIOURS", "Byzantine", "ByzantineRefused", "byzantine_allowed", "build_block"]

log = logging.getLogger("ads_ledger.testing.byzantine")

FLOOD = 1000  # proposals per flooded round
FLOOD_BATCH = 100  # …sent this many at a time (the first batch ahead of the real one)
LIE_AHEAD = 1000  # heights a lying status claims above ours
EVIDENCE_ROUND = 7777  # the round of our forged equivocations: never one we really voted in


class ByzantineRefused(AdsError):
    """A Byzantine behaviour was asked for outside a test chain, or is unknown."""


def byzantine_allowed(chain_id: str) -> bool:
    """Only test networks: a chain id containing "test" or "devnet"."""
    return "test" in chain_id or "devnet" in chain_id


def _garbage(n: int = 64) -> bytes:
    return os.urandom(n)


def _reencode(env: Envelope, auth: Sequence[tuple[bytes, bytes]]) -> bytes:
    return codec.encode({**env.unsigned(), "auth": [[p, s] for p, s in auth]})


def build_block(ledger: "Ledger", height: int, time_ms: int, proposer: bytes,
                last_commit: Commit | None, txs: Sequence[bytes],
                evidence: Sequence[DuplicateVoteEvidence] = ()) -> Block:  # fmt: skip
    """A block of exactly these txs and evidence, whose header is what a validator that runs
    them without checking envelope signatures computes; remembered by the ledger so that our
    own core can vote for it and commit it."""
    return ledger.assemble(height, time_ms, proposer, last_commit, txs, evidence)


class Byzantine(FaultHooks):
    """The honest node (hooks inherited: no-ops). `make` picks a behaviour by name."""

    name = ""

    def __init__(self, node: "Node | None" = None) -> None:
        self._node = node

    @property
    def node(self) -> "Node":
        assert self._node is not None
        return self._node

    @staticmethod
    def make(name: str | None, node: "Node") -> "Byzantine":
        """The behaviour `name` for `node` (None or "": honest). ByzantineRefused if the name
        is unknown or the node's chain is not a test chain."""
        if not name:
            return Byzantine(node)
        cls = BEHAVIOURS.get(name)
        if cls is None:
            raise ByzantineRefused(f"unknown Byzantine behaviour {name!r}; known: {', '.join(sorted(BEHAVIOURS))}")
        if not byzantine_allowed(node.chain_id):
            raise ByzantineRefused(f"Byzantine behaviours are TEST-ONLY; chain {node.chain_id!r} "
                                   "is not a test chain (its id must contain 'test' or 'devnet')")  # fmt: skip
        kv(log, logging.WARNING, "TEST-ONLY Byzantine behaviour enabled", behaviour=name)
        return cls(node)

    # ---- helpers ----

    def say(self, what: str, **fields: object) -> None:
        kv(log, logging.WARNING, f"byzantine {self.name}: {what}", **fields)

    def _mine(self, msg: Message) -> bool:
        return isinstance(msg, ProposalMessage) and msg.proposal.proposer == self.node.validator_key.pub


class _Proposer(Byzantine):
    """A behaviour that builds its own proposals: it replaces `ledger.propose_block`."""

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self.proposals = 0
        node.ledger.propose_block = self.propose_block  # type: ignore[method-assign]

    def propose_block(self, height: int, round: int, time_ms: int, proposer: bytes,
                      last_commit: Commit | None) -> Block:  # fmt: skip
        self.proposals += 1
        txs, evidence = self.contents(height, round, time_ms)
        return build_block(self.node.ledger, height, time_ms, proposer, last_commit, txs, evidence)

    def contents(self, height: int, round: int, time_ms: int) -> tuple[list[bytes], list[DuplicateVoteEvidence]]:
        raise NotImplementedError


class ForgeAuth(_Proposer):
    name = "forge_auth"

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self.gov: list[Envelope] = []  # gov txs posted to our API, whatever their quorum

    def on_submit(self, raw: bytes) -> None:
        try:
            env = parse_envelope(raw)
        except DecodeError:
            return
        if env.type == "gov" and len(self.gov) < 16 and all(e.raw != raw for e in self.gov):
            self.gov.append(env)
            self.say("kept a gov tx to forge its quorum", signer=env.signer.hex()[:16], auth=len(env.auth))

    def contents(self, height: int, round: int, time_ms: int) -> tuple[list[bytes], list[DuplicateVoteEvidence]]:
        ledger = self.node.ledger
        if self.gov and self.proposals % 2 == 1:
            raw_members = ledger.state_view().get(GOV_MEMBERS)
            gov = codec.decode(raw_members) if raw_members is not None else {"members": [], "threshold": 1}
            txs = []
            for env in self.gov:
                auth = list(env.auth)
                for m in gov["members"]:
                    if len(auth) >= gov["threshold"]:
                        break
                    if m not in env.signers():
                        auth.append((m, _garbage()))  # a member who never signed
                txs.append(_reencode(env, auth))
            self.say("proposing gov txs with forged member signatures", height=height, round=round, txs=len(txs))
            return txs, []
        txs = []
        p = ledger.params_at(height)
        for raw in ledger.host.reap(p["max_block_bytes"], p["max_block_txs"]):
            env = parse_envelope(raw)
            txs.append(_reencode(env, [(env.signer, _garbage())] + list(env.auth[1:])))
        if txs:
            self.say("proposing txs with garbage signatures", height=height, round=round, txs=len(txs))
        return txs, []


class InvalidTxs(_Proposer):
    name = "invalid_txs"
    KINDS = ("wrong_nonce", "unknown_type", "replay", "too_large_tx", "too_many_txs", "too_many_bytes")

    def contents(self, height: int, round: int, time_ms: int) -> tuple[list[bytes], list[DuplicateVoteEvidence]]:
        chain = self.node.chain_id
        params = self.node.ledger.params_at(height)
        for step in range(len(self.KINDS)):
            kind = self.KINDS[(self.proposals - 1 + step) % len(self.KINDS)]
            txs = self._make(kind, chain, params)
            if txs is not None:
                self.proposals += step  # the next proposal moves on from this kind
                self.say("proposing an invalid block", kind=kind, height=height, round=round, txs=len(txs),
                         bytes=sum(map(len, txs)))  # fmt: skip
                return txs, []
        return [], []

    def _make(self, kind: str, chain: str, params: dict[str, int]) -> list[bytes] | None:
        k = SigningKey.generate()
        if kind == "wrong_nonce":
            return [make_envelope(chain, "cp.propose", k, 7, {"owner": k.pub})]
        if kind == "unknown_type":
            return [make_envelope(chain, "bogus.type", k, 1, {})]
        if kind == "replay":
            ledger = self.node.ledger
            for h in range(ledger.height, max(0, ledger.height - 500), -1):
                b = ledger.block(h)
                if b is not None and b.txs:
                    return [b.txs[0]]
            return None
        if kind == "too_large_tx":
            return [make_envelope(chain, "gov", k, 1, {"action": "params.set",
                                                     "args": {"pad": bytes(MAX_TX_BYTES)}})]  # fmt: skip
        if kind == "too_many_txs":
            n = params.get("max_block_txs", 0) + 1
            if not 1 < n <= 5001:
                return None
            keys = [SigningKey.generate() for _ in range(n)]
            return [make_envelope(chain, "cp.propose", x, 1, {"owner": x.pub}) for x in keys]
        if kind == "too_many_bytes":
            limit = params.get("max_block_bytes", 0)
            pad = MAX_TX_BYTES - 1024
            n = limit // pad + 1
            if not 0 < limit <= 8 * 1024 * 1024 or n > params.get("max_block_txs", 0):
                return None
            keys = [SigningKey.generate() for _ in range(n)]
            return [make_envelope(chain, "gov", x, 1, {"action": "params.set", "args": {"pad": bytes(pad)}})
                    for x in keys]  # fmt: skip
        raise ValueError(kind)


class OldEvidence(_Proposer):
    name = "old_evidence"
    KINDS = ("too_old", "duplicate", "bad_signature")

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self.old: DuplicateVoteEvidence | None = None

    def _equivocation(self, height: int, round: int = EVIDENCE_ROUND) -> DuplicateVoteEvidence:
        """Two prevotes of ours for (height, round), signed with our key past the guard."""
        key = self.node.validator_key
        a = Vote(PREVOTE, height, round, None, key.pub).signed(self.node.chain_id, key)
        b = Vote(PREVOTE, height, round, _garbage(32), key.pub).signed(self.node.chain_id, key)
        return DuplicateVoteEvidence(a, b)

    def _refresh(self) -> None:
        ledger = self.node.ledger
        max_age = ledger.params_at(ledger.height + 1)["evidence_max_age"]
        h = ledger.height + 1 - max_age - 1  # older than max_age for the next block
        if h >= 1 and (self.old is None or self.old.vote_a.height != h):
            self.old = self._equivocation(h)

    async def run(self) -> None:
        while True:
            self._refresh()
            if self.old is not None:
                self.say("gossiping too-old evidence", evidence_height=self.old.vote_a.height,
                         height=self.node.ledger.height)  # fmt: skip
                self.node.p2p.broadcast("evidence", self.old.to_obj())
            await trio.sleep(2.0)

    def contents(self, height: int, round: int, time_ms: int) -> tuple[list[bytes], list[DuplicateVoteEvidence]]:
        if height < 2:  # no earlier height to accuse anyone of: an honest first block
            self.proposals -= 1
            return [], []
        self._refresh()
        kind = self.KINDS[(self.proposals - 1) % len(self.KINDS)]
        if kind == "too_old" and self.old is None:
            kind = "duplicate"
        if kind == "too_old":
            assert self.old is not None
            ev = [self.old]
        elif kind == "duplicate":
            e = self._equivocation(height - 1, EVIDENCE_ROUND + self.proposals)
            ev = [e, e]
        else:
            e = self._equivocation(height - 1, EVIDENCE_ROUND + self.proposals)
            bad = Vote(e.vote_b.type, e.vote_b.height, e.vote_b.round, e.vote_b.block, e.vote_b.validator, _garbage())
            ev = [DuplicateVoteEvidence(e.vote_a, bad)]
        self.say("proposing bad evidence", kind=kind, height=height, round=round,
                 evidence_height=ev[0].vote_a.height)  # fmt: skip
        return [], ev


class ProposalFlood(Byzantine):
    name = "proposal_flood"

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self._honest_propose = node.ledger.propose_block
        node.ledger.propose_block = self.propose_block  # type: ignore[method-assign]
        self._variants: dict[bytes, list[dict[str, Any]]] = {}  # our block id -> other proposals
        self._jobs_send, self._jobs = trio.open_memory_channel[tuple[ProposalMessage, list[dict[str, Any]]]](16)

    def propose_block(self, height: int, round: int, time_ms: int, proposer: bytes,
                      last_commit: Commit | None) -> Block:  # fmt: skip
        """The honest block, and (in the same worker-thread step) FLOOD − 1 signed proposals
        of the same block at other times, ready to go out with it."""
        b = self._honest_propose(height, round, time_ms, proposer, last_commit)
        key, chain = self.node.validator_key, self.node.chain_id
        out = []
        for i in range(1, FLOOD):
            blk = Block(replace(b.header, time=b.header.time + i), b.txs, b.evidence, b.last_commit)
            prop = Proposal(height, round, blk.block_id(), -1, key.pub).signed(chain, key)
            out.append(ProposalMessage(prop, blk).to_obj())
        self._variants = {b.block_id(): out}
        return b

    def on_send(self, msg: Message) -> bool:
        if self._mine(msg):
            assert isinstance(msg, ProposalMessage)
            variants = self._variants.pop(msg.block_id, None)
            if variants is not None and msg.proposal.pol_round == -1:
                self.say("flooding proposals", height=msg.height, round=msg.round, proposals=len(variants))
                for body in variants[:FLOOD_BATCH]:  # ahead of the real one: peers see these first
                    self.node.p2p.broadcast("proposal", body)
                try:
                    self._jobs_send.send_nowait((msg, variants[FLOOD_BATCH:]))
                except trio.WouldBlock:
                    pass
        return False  # then the real proposal goes out, as usual

    async def run(self) -> None:
        async for msg, rest in self._jobs:
            for i in range(0, len(rest), FLOOD_BATCH):
                await trio.sleep(0.005)
                for body in rest[i:i + FLOOD_BATCH]:
                    self.node.p2p.broadcast("proposal", body)


class Equivocate(Byzantine):
    name = "equivocate"

    def on_send(self, msg: Message) -> bool:
        if not isinstance(msg, VoteMessage):
            return False
        vote = msg.vote
        other = b"\xee" * 32 if vote.block is None else None
        bad = Vote(vote.type, vote.height, vote.round, other, vote.validator).signed(
            self.node.chain_id, self.node.validator_key)
        self.node.p2p.broadcast("vote", msg.to_obj())
        self.node.p2p.broadcast("vote", VoteMessage(bad).to_obj())
        return True


class LyingSync(Byzantine):
    name = "lying_sync"
    KINDS = ("garbage_sigs", "other_commit", "altered_header", "other_height")

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self.served = 0

    def status_height(self, height: int) -> int:
        return height + LIE_AHEAD

    def _invent(self, h: int) -> dict[str, Any] | None:
        """A block of a height we do not have: our last one relabelled, with a commit of
        garbage signatures or the real commit of another block."""
        ledger = self.node.ledger
        top = ledger.height
        block, commit = ledger.block(top), ledger.commit_at(top)
        if block is None or commit is None:
            return None
        self.served += 1
        fake = Block(replace(block.header, height=h, time=block.header.time + 1), block.txs, block.evidence,
                     block.last_commit)  # fmt: skip
        if self.served % 2:
            n = len(ledger.validators_at(top))
            lie = Commit(h, 0, fake.block_id(), tuple((i, _garbage()) for i in range(n)))
        else:
            lie = Commit(h, commit.round, commit.block, commit.sigs)
        return CommitMessage(fake, lie).to_obj()

    def _lie(self, h: int) -> dict[str, Any] | None:
        ledger = self.node.ledger
        block, commit = ledger.block(h), ledger.commit_at(h)
        if block is None or commit is None:
            return self._invent(h)
        kind = self.KINDS[self.served % len(self.KINDS)]
        self.served += 1
        if kind == "garbage_sigs":
            n = len(ledger.validators_at(h))
            commit = Commit(commit.height, commit.round, commit.block, tuple((i, _garbage()) for i in range(n)))
        elif kind == "other_commit":
            other = ledger.commit_at(h - 1) or ledger.commit_at(h + 1)
            if other is not None:
                commit = Commit(h, other.round, other.block, other.sigs)
        elif kind == "altered_header":
            block = Block(replace(block.header, state_root=_garbage(32)), block.txs, block.evidence,
                          block.last_commit)  # fmt: skip
        else:  # a real block and commit, of a height nobody asked for
            far = ledger.height
            b2, c2 = ledger.block(far), ledger.commit_at(far)
            if b2 is not None and c2 is not None and far != h:
                block, commit = b2, c2
            else:
                commit = Commit(h + LIE_AHEAD, commit.round, commit.block, commit.sigs)
        return CommitMessage(block, commit).to_obj()

    async def serve_blocks(self, peer: str, start: int, count: int) -> bool:
        sent = 0
        for h in range(max(start, 1), max(start, 1) + min(count, 8)):  # beyond our height too
            body = self._lie(h)
            if body is None or not self.node.p2p.send(peer, "commit", body):
                break
            sent += 1
            await trio.sleep(0.005)
        self.say("served lying blocks", peer=peer[:12], start=start, blocks=sent)
        return True


class Withhold(Byzantine):
    name = "withhold"

    def __init__(self, node: "Node") -> None:
        super().__init__(node)
        self._decided: dict[tuple[int, int], Message | None] = {}
        self._count = 0

    def on_send(self, msg: Message) -> bool:
        if not self._mine(msg):
            return False
        assert isinstance(msg, ProposalMessage)
        hr = (msg.height, msg.round)
        if hr not in self._decided:
            self._decided = {k: v for k, v in self._decided.items() if k[0] >= msg.height}
            self._count += 1
            if self._count % 2 == 1:
                self._decided[hr] = None
                self.say("withholding our proposal", height=msg.height, round=msg.round)
            else:  # the proposal names our block, but the block that travels is another
                b = msg.block
                other = Block(replace(b.header, time=b.header.time + 1), b.txs, b.evidence, b.last_commit)
                self._decided[hr] = ProposalMessage(msg.proposal, other)
                self.say("sending our proposal with another block", height=msg.height, round=msg.round)
        out = self._decided[hr]
        if out is not None:
            self.node.p2p.broadcast("proposal", out.to_obj())
        return True


BEHAVIOURS: dict[str, type[Byzantine]] = {
    c.name: c for c in (ForgeAuth, InvalidTxs, OldEvidence, ProposalFlood, Equivocate, LyingSync, Withhold)
}
