"""Header verification rules of a light client (CometBFT light/verifier.go), pure functions.

The clock is an argument (`now_ms`), nothing is fetched; each failed condition raises its own
`LightError` subclass. On success a function returns the new `TrustedState`; the old one stays
valid, so a caller that persists trust replaces it only after the call returned.
"""

from __future__ import annotations

from ads_ledger.core.crypto import verify as verify_sig
from ads_ledger.core.types import Commit, CommitError, Header, ValidatorSet, verify_commit
from ads_ledger.light.errors import (
    ClockDrift,
    InsufficientTrust,
    InvalidCommit,
    InvalidHeader,
    NotWithinTrustPeriod,
)
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions

__all__ = [
    "check_signed_header",
    "check_trust_period",
    "trusted_power",
    "verify_adjacent",
    "verify_light_block",
    "verify_skipping",
]


def check_trust_period(trusted: TrustedState, now_ms: int, opts: TrustOptions) -> None:
    """Raise NotWithinTrustPeriod once `trusted` is `trusting_period_ms` old or older."""
    if now_ms >= trusted.expires_at(opts):
        raise NotWithinTrustPeriod(
            f"trusted header {trusted.height} (time {trusted.header.time}) expired at "
            f"{trusted.expires_at(opts)}, now is {now_ms}: re-initialise from a fresh trust root "
            "(--trust-height/--trust-hash) obtained out of band"
        )


def check_signed_header(chain_id: str, header: Header, commit: Commit, valset: ValidatorSet) -> None:
    """Raise InvalidHeader/InvalidCommit unless >2/3 of `valset` (the header's own set) signed
    `header` on `chain_id`. Every listed signature must verify."""
    if header.chain_id != chain_id:
        raise InvalidHeader(f"header is for chain {header.chain_id!r}, not {chain_id!r}; "
                            "the node serves another chain: try another node")  # fmt: skip
    if header.validators != valset.hash():
        raise InvalidHeader(f"the validator set served for height {header.height} does not match "
                            "the header's validators hash: try another node")  # fmt: skip
    try:
        verify_commit(chain_id, valset, commit, height=header.height, block_id=header.block_id())
    except CommitError as e:
        raise InvalidCommit(f"height {header.height}: {e}; the header was not committed by its "
                            "validators: try another node") from e  # fmt: skip


def _check_new_header(trusted: TrustedState, header: Header, now_ms: int, opts: TrustOptions) -> None:
    """CometBFT verifyNewHeaderAndVals: same chain, later height and time, not from the future."""
    if header.chain_id != trusted.chain_id:
        raise InvalidHeader(f"header is for chain {header.chain_id!r}, not {trusted.chain_id!r}: "
                            "the node serves another chain; try another node")  # fmt: skip
    if header.height <= trusted.height:
        raise InvalidHeader(f"header height {header.height} is not above the trusted "
                            f"{trusted.height}: ask for a later header")  # fmt: skip
    if header.time <= trusted.header.time:
        raise InvalidHeader(f"header {header.height} time {header.time} is not after the trusted "
                            f"header's {trusted.header.time}: the node is faulty; try another node")  # fmt: skip
    if header.time > now_ms + opts.max_clock_drift_ms:
        raise ClockDrift(f"header {header.height} time {header.time} is {header.time - now_ms} ms "
                         f"ahead of our clock ({now_ms}), more than the allowed "
                         f"{opts.max_clock_drift_ms} ms: check the local clock, else try another node")  # fmt: skip


def verify_adjacent(trusted: TrustedState, header: Header, commit: Commit, valset: ValidatorSet,
                    now_ms: int, opts: TrustOptions) -> TrustedState:  # fmt: skip
    """Verify the header right after `trusted` (CometBFT VerifyAdjacent). Raises unless:

    a) `trusted` is within its trusting period at `now_ms`        (NotWithinTrustPeriod)
    b) same chain, height = trusted + 1, prev = trusted block id,
       time after the trusted time                                (InvalidHeader)
    c) time at most `max_clock_drift_ms` past `now_ms`            (ClockDrift)
    d) its validators are the set `trusted` announced as next     (InvalidHeader)
    e) >2/3 of that set signed it                                 (InvalidCommit)
    """
    check_trust_period(trusted, now_ms, opts)
    if header.height != trusted.height + 1:
        raise ValueError("verify_adjacent needs the height right after the trusted one")  # our bug
    _check_new_header(trusted, header, now_ms, opts)
    if header.prev != trusted.header.block_id():
        raise InvalidHeader(f"header {header.height} does not link to the trusted header (prev "
                            "differs): the node serves another chain or a fork; try another node")  # fmt: skip
    if header.validators != trusted.header.next_validators:
        raise InvalidHeader(f"header {header.height}'s validator set is not the one the trusted "
                            "header announced as next: try another node")  # fmt: skip
    check_signed_header(trusted.chain_id, header, commit, valset)
    return TrustedState(header, valset)


def trusted_power(chain_id: str, trusted_set: ValidatorSet, new_set: ValidatorSet,
                  commit: Commit) -> int:  # fmt: skip
    """Power of `trusted_set` whose valid signatures `commit` (indexed in `new_set`) carries.

    Counts a validator by public key and at most once, however often the commit lists it;
    signers outside `trusted_set`, unknown indices and bad signatures count nothing.
    """
    msg = commit.vote_sign_bytes(chain_id)
    seen: set[bytes] = set()
    power = 0
    for idx, sig in commit.sigs:
        if type(idx) is not int or not 0 <= idx < len(new_set):
            continue
        pub = new_set.pub_at(idx)
        p = trusted_set.power_of(pub)
        if p == 0 or pub in seen or not verify_sig(pub, sig, msg):
            continue
        seen.add(pub)
        power += p
    return power


def verify_skipping(trusted: TrustedState, header: Header, commit: Commit, valset: ValidatorSet,
                    now_ms: int, opts: TrustOptions) -> TrustedState:  # fmt: skip
    """Verify a header more than one height after `trusted` (CometBFT VerifyNonAdjacent).

    a) `trusted` is within its trusting period at `now_ms`        (NotWithinTrustPeriod)
    b) same chain, a later height and time                        (InvalidHeader)
    c) time at most `max_clock_drift_ms` past `now_ms`            (ClockDrift)
    d) `valset` is the header's own set and >2/3 of it signed     (InvalidHeader/InvalidCommit)
    e) more than `trust_level` of a set we trust signed it        (InsufficientTrust: bisect)

    The set we trust is `trusted.next_valset` when known (the spec's NextV), else
    `trusted.valset` (as CometBFT's code does). d) runs before e) so that a forged commit is
    refused as invalid instead of sending the caller off to bisect.
    """
    check_trust_period(trusted, now_ms, opts)
    if header.height == trusted.height + 1:
        raise ValueError("verify_skipping needs a non-adjacent height; use verify_adjacent")
    _check_new_header(trusted, header, now_ms, opts)
    check_signed_header(trusted.chain_id, header, commit, valset)
    basis = trusted.next_valset or trusted.valset
    got = trusted_power(trusted.chain_id, basis, valset, commit)
    level = opts.trust_level
    needed = basis.total_power * level.numerator // level.denominator
    if got <= needed:
        raise InsufficientTrust(
            f"header {header.height} carries {got} of {basis.total_power} power of the validators "
            f"trusted at {trusted.height}; needs more than {level}: verify a header in between "
            "first (bisection)"
        )
    return TrustedState(header, valset)


def verify_light_block(trusted: TrustedState, block: LightBlock, now_ms: int,
                       opts: TrustOptions) -> TrustedState:  # fmt: skip
    """Adjacent rules for the next height, skipping rules beyond it."""
    if block.height == trusted.height + 1:
        return verify_adjacent(trusted, block.header, block.commit, block.valset, now_ms, opts)
    return verify_skipping(trusted, block.header, block.commit, block.valset, now_ms, opts)
