"""Evidence of equivocation (DESIGN §6, third local duty).

`EvidencePool` watches the votes consensus receives and turns two votes by one validator
for different blocks at the same (height, round, type) into `DuplicateVoteEvidence`; it
verifies evidence gossiped by peers, keeps what is pending for a proposer to include,
forgets what was committed or became too old, and checks the evidence in a proposed block.

One offence is one key, (validator, height, round, type): a validator that signed three
blocks yields one piece of evidence, and a block may not carry evidence for a key that an
earlier block already carried. Validity of a block's evidence must be the same on every
validator, so the committed keys of the last `max_age` heights must survive a restart:
the node stores committed evidence and feeds it back with `restore_committed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError, RemoteError
from ads_ledger.core.types import Block, DuplicateVoteEvidence, ValidatorSet, Vote

__all__ = [
    "EvidencePool",
    "InvalidEvidence",
    "InvalidVote",
    "EvidenceKey",
    "evidence_key",
    "evidence_size",
    "DEFAULT_MAX_AGE",
]

DEFAULT_MAX_AGE = 100_000  # heights; CometBFT's default block age for evidence


class InvalidEvidence(RemoteError):
    """Evidence (from a peer or in a proposed block) is not acceptable; the reason says why."""


class InvalidVote(RemoteError):
    """A vote handed to the pool is not a validly signed vote of a set member."""


EvidenceKey = tuple[bytes, int, int, int]  # (validator, height, round, vote type)


def evidence_key(ev: DuplicateVoteEvidence) -> EvidenceKey:
    """The offence a piece of evidence proves: (validator, height, round, vote type)."""
    v = ev.vote_a
    return (v.validator, v.height, v.round, v.type)


def evidence_size(ev: DuplicateVoteEvidence) -> int:
    """Bytes the evidence takes in a block (its canonical encoding)."""
    return len(codec.encode(ev.to_obj()))


@dataclass(slots=True)
class _Pending:
    ev: DuplicateVoteEvidence
    key: EvidenceKey
    size: int


class EvidencePool:
    """Pending and committed duplicate-vote evidence, and the votes that reveal it.

    `height` is the last committed height; evidence for height h may go into block H when
    h < H and H - h <= max_age. Memory is bounded: `max_pending` pieces of evidence, at most
    `max_per_validator` of them for one validator (so one equivocator cannot crowd out the
    rest), and votes are tracked only near the current height, at most
    `max_votes_per_validator` per validator and height.
    """

    def __init__(self, *, height: int = 0, max_age: int = DEFAULT_MAX_AGE,
                 max_pending: int = 1024, max_per_validator: int = 8,
                 max_votes_per_validator: int = 128) -> None:  # fmt: skip
        if max_age < 1 or max_pending < 1 or max_per_validator < 1:
            raise ValueError("evidence pool limits must be positive")
        self.height = height
        self.max_age = max_age
        self.max_pending = max_pending
        self.max_per_validator = max_per_validator
        self.max_votes_per_validator = max_votes_per_validator
        self._pending: dict[bytes, _Pending] = {}  # evidence hash -> pending entry
        self._pending_keys: set[EvidenceKey] = set()
        self._per_validator: dict[bytes, int] = {}
        self._committed: dict[EvidenceKey, int] = {}  # offence -> height of the block carrying it
        self._committed_hashes: dict[bytes, int] = {}
        # height -> (round, type, validator) -> first vote seen
        self._votes: dict[int, dict[tuple[int, int, bytes], Vote]] = {}
        self._vote_counts: dict[tuple[int, bytes], int] = {}

    # ------------------------------------------------------------ reading

    def _expired(self, ev_height: int, block_height: int) -> bool:
        return block_height - ev_height > self.max_age

    def is_committed(self, ev: DuplicateVoteEvidence) -> bool:
        """True if a committed block already carries evidence of the same offence."""
        return evidence_key(ev) in self._committed

    def is_pending(self, ev: DuplicateVoteEvidence) -> bool:
        return ev.hash() in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self, max_bytes: int) -> list[DuplicateVoteEvidence]:
        """Evidence for the next block (height + 1), oldest first, at most `max_bytes` in all."""
        out, used = [], 0
        entries = sorted(self._pending.values(), key=lambda p: (p.key[1], p.ev.hash()))
        for p in entries:
            if p.key[1] > self.height:  # offences of the height in progress wait for the next
                continue
            if used + p.size > max_bytes:
                break
            out.append(p.ev)
            used += p.size
        return out

    # ------------------------------------------------------------ adding

    def add_vote(self, vote: Vote, valset: ValidatorSet, chain_id: str, *,
                 verified: bool = False) -> DuplicateVoteEvidence | None:  # fmt: skip
        """Remember `vote`; if its validator already voted for another block at the same
        (height, round, type), return the new evidence (also added to the pending pool).

        `valset` is the set deciding `vote.height`. With `verified`, the caller vouches that
        the signature was checked. Raises InvalidVote (nothing changes) for a non-member or a
        bad signature. Votes far from the current height are ignored (None)."""
        if valset.index_of(vote.validator) is None:
            raise InvalidVote("vote from a validator outside the set")
        if not verified and not vote.verify(chain_id):
            raise InvalidVote("vote signature does not verify")
        if not self.height - 1 <= vote.height <= self.height + 2:
            return None
        votes = self._votes.setdefault(vote.height, {})
        slot = (vote.round, vote.type, vote.validator)
        first = votes.get(slot)
        if first is None:
            count_key = (vote.height, vote.validator)
            if self._vote_counts.get(count_key, 0) < self.max_votes_per_validator:
                votes[slot] = vote
                self._vote_counts[count_key] = self._vote_counts.get(count_key, 0) + 1
            return None
        if first.block == vote.block:
            return None
        ev = DuplicateVoteEvidence(first, vote)
        try:
            ev.check(chain_id, valset)
        except DecodeError as e:  # cannot happen for verified votes; refuse rather than store
            raise InvalidVote(f"conflicting vote does not make valid evidence: {e}") from e
        return ev if self._insert(ev) else None

    def add_evidence(self, ev: DuplicateVoteEvidence, valset: ValidatorSet, chain_id: str) -> bool:
        """Verify evidence received from a peer and keep it pending; True if it is new.

        `valset` is the set that decided the evidence's height. Raises InvalidEvidence if it
        does not verify, is too old, or is for a height not yet reached; returns False for
        evidence already pending or committed (by offence) or when the pool is full."""
        h = ev.vote_a.height
        if self._expired(h, self.height + 1):
            raise InvalidEvidence(f"evidence from height {h} is older than {self.max_age} heights")
        if h > self.height + 1:
            raise InvalidEvidence(f"evidence from height {h}, beyond the height in progress")
        try:
            ev.check(chain_id, valset)
        except DecodeError as e:
            raise InvalidEvidence(f"evidence does not verify: {e}") from e
        return self._insert(ev)

    def _insert(self, ev: DuplicateVoteEvidence) -> bool:
        key = evidence_key(ev)
        if key in self._committed or key in self._pending_keys:
            return False
        if len(self._pending) >= self.max_pending:
            return False
        if self._per_validator.get(key[0], 0) >= self.max_per_validator:
            return False
        self._pending[ev.hash()] = _Pending(ev, key, evidence_size(ev))
        self._pending_keys.add(key)
        self._per_validator[key[0]] = self._per_validator.get(key[0], 0) + 1
        return True

    def _drop(self, h: bytes) -> None:
        p = self._pending.pop(h)
        self._pending_keys.discard(p.key)
        n = self._per_validator[p.key[0]] - 1
        if n:
            self._per_validator[p.key[0]] = n
        else:
            del self._per_validator[p.key[0]]

    # ------------------------------------------------------------ blocks

    def verify_block_evidence(self, block: Block, valset_at: Callable[[int], ValidatorSet],
                              chain_id: str) -> None:  # fmt: skip
        """Raise InvalidEvidence unless every piece of evidence in `block` may be included.

        1. it verifies against the validator set of its own height (`valset_at(h)`);
        2. its height is below the block's and at most `max_age` heights older;
        3. no committed block carried the same offence already;
        4. the block does not carry the same offence twice."""
        seen: set[EvidenceKey] = set()
        H = block.header.height
        for i, ev in enumerate(block.evidence):
            key = evidence_key(ev)
            h = key[1]
            if not h < H:
                raise InvalidEvidence(f"evidence {i} is from height {h}, not below block {H}")
            if self._expired(h, H):
                raise InvalidEvidence(f"evidence {i} from height {h} is too old for block {H}")
            if key in seen:
                raise InvalidEvidence(f"evidence {i} repeats an offence already in the block")
            committed_at = self._committed.get(key)
            if committed_at is not None and committed_at < H:
                raise InvalidEvidence(f"evidence {i} was already committed at {committed_at}")
            seen.add(key)
            try:
                ev.check(chain_id, valset_at(h))
            except DecodeError as e:
                raise InvalidEvidence(f"evidence {i} does not verify: {e}") from e

    def mark_committed(self, evidence_hashes: Iterable[bytes], height: int) -> None:
        """Block `height` was committed carrying these evidence hashes: never propose them
        again, advance the pool to `height`, expire old evidence and votes.

        Evidence this pool never saw is remembered by hash only; pass the block to
        `commit_block` to remember offences (the stronger check)."""
        for h in evidence_hashes:
            self._committed_hashes[h] = height
            p = self._pending.get(h)
            if p is not None:
                self._committed[p.key] = height
                self._drop(h)
        self._advance(height)

    def commit_block(self, block: Block) -> None:
        """`mark_committed` for a committed block, remembering each offence it carries."""
        for ev in block.evidence:
            self._committed[evidence_key(ev)] = block.header.height
        self.mark_committed([ev.hash() for ev in block.evidence], block.header.height)

    def restore_committed(self, committed: Iterable[tuple[DuplicateVoteEvidence, int]],
                          height: int) -> None:  # fmt: skip
        """At start: (evidence, height of the block that carried it) from the store, for at
        least the last `max_age` heights, and the last committed height."""
        for ev, at in committed:
            self._committed[evidence_key(ev)] = at
            self._committed_hashes[ev.hash()] = at
        self._advance(height)

    def committed_hashes(self) -> dict[bytes, int]:
        """Evidence hash -> height of the block that carried it (within the age window)."""
        return dict(self._committed_hashes)

    def _advance(self, height: int) -> None:
        self.height = max(self.height, height)
        floor = self.height + 1 - self.max_age  # evidence below this can go in no block
        for h, p in list(self._pending.items()):
            if p.key[1] < floor or p.key in self._committed:
                self._drop(h)
        self._committed = {k: at for k, at in self._committed.items() if k[1] >= floor}
        # a hash is kept for as long as the block carrying it is within the window
        self._committed_hashes = {h: at for h, at in self._committed_hashes.items() if at >= floor}
        for vh in [vh for vh in self._votes if vh < self.height - 1]:
            del self._votes[vh]
        self._vote_counts = {k: n for k, n in self._vote_counts.items() if k[0] >= self.height - 1}
