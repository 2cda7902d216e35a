"""Light-client checks without a clock (pure): is a header signed by the validators we trust,
and does a state value (or its absence) belong to that header's state root?

Shared by the wallet, the devnet walkthrough and the charge-point agent. A caller that
trusts validator set V for height h accepts a header at h only if `validators == H(V)` and
a commit carrying >2/3 of V's power signs its block id (DESIGN §6). The full rules, with the
trusting period, clock drift and skipping, are in `verifier`; these are kept for callers that
already hold the right validator set.
"""

from __future__ import annotations

from ads_ledger.core.merkle import SparseProof, verify_proof
from ads_ledger.core.types import Commit, Header, ValidatorSet
from ads_ledger.light.errors import InvalidHeader, LightError
from ads_ledger.light.verifier import check_signed_header

__all__ = ["LightError", "verify_adjacent", "verify_signed_header", "verify_state"]


def verify_signed_header(chain_id: str, header: Header, commit: Commit, valset: ValidatorSet) -> None:
    """Raise LightError (InvalidHeader/InvalidCommit) unless `commit` by `valset` signs `header`
    on `chain_id`."""
    check_signed_header(chain_id, header, commit, valset)


def verify_adjacent(chain_id: str, trusted: Header, header: Header, commit: Commit,
                    valset: ValidatorSet) -> None:  # fmt: skip
    """Header h+1 after a trusted header h: its set must be the one h announced as next.
    No trusting period or drift here: `verifier.verify_adjacent` checks those too."""
    if header.height != trusted.height + 1 or header.prev != trusted.block_id():
        raise InvalidHeader("header does not directly follow the trusted header")
    if header.validators != trusted.next_validators:
        raise InvalidHeader("validator set differs from the one the trusted header announced")
    if header.time <= trusted.time:
        raise InvalidHeader("header time does not advance")
    check_signed_header(chain_id, header, commit, valset)


def verify_state(header: Header, key: bytes, value: bytes | None, proof: SparseProof) -> None:
    """Raise LightError unless `proof` shows key → value (None: absent) under header.state_root."""
    if not verify_proof(header.state_root, key, value, proof):
        raise LightError(f"the proof for key {key.hex()} does not verify against height {header.height}")
