"""Why a light block was refused (CometBFT light/errors.go). Each error says what to do next.

All are `LightError`, a `RemoteError`: what a node served is at fault, never this process.
`InsufficientTrust` alone is not a fault: the header may be fine but is too far from what we
trust, and the bisection driver answers it by fetching a header in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ads_ledger.core.errors import RemoteError

if TYPE_CHECKING:
    from ads_ledger.core.types import Commit, Header

__all__ = [
    "ClockDrift",
    "ConflictingHeaders",
    "InsufficientTrust",
    "InvalidCommit",
    "InvalidHeader",
    "LightError",
    "NotWithinTrustPeriod",
    "TooManySteps",
]


class LightError(RemoteError):
    """What a node served does not verify: do not trust it; try another node."""


class NotWithinTrustPeriod(LightError):
    """The trusted header is older than the trusting period, so its validators may have
    unbonded and could sign anything unpunished. Re-initialise from a fresh trust root
    (height, hash) obtained out of band; no node's answer can repair this."""


class ClockDrift(LightError):
    """The header claims a time further ahead of our clock than the allowed drift: check the
    local clock; if it is right, the node is serving a forged or future header."""


class InvalidHeader(LightError):
    """The header (or the validator set served with it) is malformed or does not link to what
    we trust: the node is faulty; try another node."""


class InvalidCommit(LightError):
    """The commit does not carry >2/3 of the header's own validator set with valid signatures
    for this header: the header was never committed; try another node."""


class InsufficientTrust(LightError):
    """Fewer than the trust level of the validators we trust signed this header. Not a proof of
    fault: verify a header in between first (bisection), then retry."""


class TooManySteps(LightError):
    """Bisection needed more fetches than its bound: the validator set churned faster than a
    light client can follow, or nodes keep serving headers that do not help. Try another node,
    or re-initialise from a trust root closer to the target."""


class ConflictingHeaders(LightError):
    """Two nodes served different headers for one height: at least one is lying, possibly a
    fork signed by validators. Stop trusting both, keep `primary` and `witness` as evidence
    (`detector.Divergence.of(err)`), and report them to the operators. `witness_verified` says
    whether the witness's header also carried a valid commit (a fork signed by validators, not
    merely a lying witness)."""

    def __init__(self, primary: Header, witness: Header, *, primary_commit: Commit | None = None,
                 witness_commit: Commit | None = None, witness_verified: bool = False,
                 message: str = "") -> None:  # fmt: skip
        self.primary = primary
        self.witness = witness
        self.primary_commit = primary_commit
        self.witness_commit = witness_commit
        self.witness_verified = witness_verified
        super().__init__(message or (
            f"primary and witness disagree at height {primary.height}: block "
            f"{primary.block_id().hex()[:16]}… vs {witness.block_id().hex()[:16]}…; stop, keep "
            "both headers as evidence and report them"))  # fmt: skip
