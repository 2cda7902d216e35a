"""The node's signer: the double-sign guard, asked only for heights where our key validates."""

from __future__ import annotations

from typing import Callable

from ads_ledger.consensus.privval import DoubleSignGuard
from ads_ledger.core.errors import AdsError
from ads_ledger.core.types import Proposal, ValidatorSet, Vote

__all__ = ["MemberSigner", "NotAValidator"]


class NotAValidator(AdsError):
    """Our key is not in the validator set of that height: we do not sign (a full node)."""


class MemberSigner:
    """The double-sign guard, asked only for heights whose validator set holds our key.

    A node that is not a validator (a full node that follows by sync and gossip) would
    otherwise sign votes; the core counts its own votes, and one from outside the set breaks
    building the commit (`Commit.from_votes`). The core treats the refusal as `sign_refused`."""

    def __init__(self, guard: DoubleSignGuard, validators_at: Callable[[int], ValidatorSet]) -> None:
        self.guard = guard
        self.validators_at = validators_at

    @property
    def pub(self) -> bytes:
        return self.guard.pub

    def _check(self, height: int) -> None:
        try:
            member = self.validators_at(height).index_of(self.guard.pub) is not None
        except LookupError:
            member = False
        if not member:
            raise NotAValidator(f"our key is not in the validator set of height {height}")

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        self._check(proposal.height)
        return self.guard.sign_proposal(chain_id, proposal)

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        self._check(vote.height)
        return self.guard.sign_vote(chain_id, vote)
