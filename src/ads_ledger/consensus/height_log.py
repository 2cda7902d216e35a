"""The message log of one height (Alg.1's "messages received"): intake checks and tallies.

Admits a message only if it is for this height's validator set, well signed and new;
says why otherwise (the core counts the reasons, never raises). Keeps proposals by round,
blocks by id, prevote and precommit tallies by round, the power of distinct senders per
round (for L55), and evidence of equivocation.
"""

from __future__ import annotations

from typing import Callable

from ads_ledger.consensus.messages import ProposalMessage
from ads_ledger.consensus.votes import MAX_VOTES_PER_VALIDATOR, Tally
from ads_ledger.core.types import PREVOTE, Block, Commit, DuplicateVoteEvidence, ValidatorSet, Vote

__all__ = ["HeightLog", "Proposed", "ACCEPTED"]

Verify = Callable[[bytes, bytes, bytes], bool]
ACCEPTED = ("ok", "equivocation")  # admitted (an equivocating vote is counted and noted)


class Proposed:
    """A proposal from the right proposer, its block and our clock when it arrived."""

    __slots__ = ("msg", "block_id", "received")

    def __init__(self, msg: ProposalMessage, received: int) -> None:
        self.msg = msg
        self.block_id = msg.block_id
        self.received = received


class HeightLog:
    def __init__(self, chain_id: str, valset: ValidatorSet, verify: Verify) -> None:
        self.chain_id = chain_id
        self.valset = valset
        self._verify = verify
        self.proposals: dict[int, list[Proposed]] = {}
        self.blocks: dict[bytes, Block] = {}
        self.prevotes: dict[int, Tally] = {}
        self.precommits: dict[int, Tally] = {}
        self.senders: dict[int, dict[bytes, int]] = {}  # round -> sender -> power
        self.evidence: list[DuplicateVoteEvidence] = []

    # ------------------------------------------------------------------ votes

    def admit_vote(self, v: Vote) -> str:
        """"ok"/"equivocation" (admitted; add it), or why it is dropped."""
        if self.valset.power_of(v.validator) == 0:
            return "unknown_validator"
        tally = (self.prevotes if v.type == PREVOTE else self.precommits).get(v.round)
        if tally is not None and tally.has(v.validator, v.block):
            return "duplicate"  # Ed25519 is deterministic: same vote, same signature
        seen = 0 if tally is None else tally.count_of(v.validator)
        if seen >= MAX_VOTES_PER_VALIDATOR and not self._completes_quorum(tally, v):
            return "equivocation_dropped"
        if not self._verify(v.validator, v.sig, v.sign_bytes(self.chain_id)):
            return "bad_signature"
        if tally is not None and seen:
            # counted for its value too (Alg.1 counts messages); kept as evidence
            self.evidence.append(DuplicateVoteEvidence(tally.votes[v.validator][0], v))
            return "equivocation"
        return "ok"

    def _completes_quorum(self, tally: Tally | None, v: Vote) -> bool:
        """Past the cap, an equivocator's vote is still kept if it completes 2f+1 for its
        (non-nil) value: a correct node may have locked on a polka that counted it and must be
        able to show us (L28). At most one value per round can be that close: it needs f+1
        correct power, and correct validators vote once."""
        if tally is None or v.block is None:
            return False
        return tally.power_for(v.block) + self.valset.power_of(v.validator) >= self.valset.quorum()

    def add_vote(self, v: Vote) -> None:
        """Count an admitted vote (or our own)."""
        tallies = self.prevotes if v.type == PREVOTE else self.precommits
        tally = tallies.get(v.round)
        if tally is None:
            tally = tallies[v.round] = Tally()
        if tally.has(v.validator, v.block):
            return  # our twin's identical vote got here first
        power = self.valset.power_of(v.validator)
        tally.add(v, power)
        self.senders.setdefault(v.round, {})[v.validator] = power

    # ------------------------------------------------------------------ proposals

    def admit_proposal(self, msg: ProposalMessage, proposer: bytes) -> str:
        """"ok"/"equivocating_proposal" (admitted), or why it is dropped; `proposer` is
        proposer(h, msg.round)."""
        p = msg.proposal
        if p.proposer != proposer:
            return "unknown_validator" if self.valset.power_of(p.proposer) == 0 else "not_proposer"
        if msg.block_id != p.block:
            return "bad_block"
        known = self.proposals.get(p.round, [])
        if any(k.block_id == p.block and k.msg.proposal.pol_round == p.pol_round for k in known):
            return "duplicate"
        if known:  # DESIGN §6: one proposal per (height, round) kept; a second one is dropped
            return "proposal_dropped"  # (a block decided from it arrives with its commit)
        if not self._verify(p.proposer, p.sig, p.sign_bytes(self.chain_id)):
            return "bad_signature"
        return "ok"

    def add_proposal(self, msg: ProposalMessage, received: int) -> None:
        p = msg.proposal
        self.proposals.setdefault(p.round, []).append(Proposed(msg, received))
        self.blocks.setdefault(msg.block_id, msg.block)
        self.senders.setdefault(p.round, {})[p.proposer] = self.valset.power_of(p.proposer)

    # ------------------------------------------------------------------ commits

    def commit_power(self, commit: Commit) -> int | None:
        """Power of the valid precommits in `commit`; None if any entry is bad (unknown or
        repeated index, signature that does not verify)."""
        signed = commit.vote_sign_bytes(self.chain_id)
        power, last = 0, -1
        for idx, sig in commit.sigs:
            if not last < idx < len(self.valset):  # sorted, no repeats: each counted once
                return None
            last = idx
            pub, p = self.valset.validators[idx]
            if not self._verify(pub, sig, signed):
                return None
            power += p
        return power

    # ------------------------------------------------------------------ queries

    def highest_round_with(self, above: int, need: int) -> int:
        """The highest round > `above` whose distinct senders carry ≥ `need`, or −1."""
        best = -1
        for r, senders in self.senders.items():
            if r > above and r > best and sum(senders.values()) >= need:
                best = r
        return best
