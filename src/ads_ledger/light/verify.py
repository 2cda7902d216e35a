"""Light-client checks (pure): is a header signed by the validators we trust, and does a
state value (or its absence) belong to that header's state root?

Shared by the wallet, the devnet walkthrough and the charge-point agent. A caller that
trusts validator set V for height h accepts a header at h only if `validators == H(V)` and
a commit carrying >2/3 of V's power signs its block id (DESIGN §6).
"""

from __future__ import annotations

from ads_ledger.core.errors import RemoteError
from ads_ledger.core.merkle import SparseProof, verify_proof
from ads_ledger.core.types import Commit, CommitError, Header, ValidatorSet, verify_commit

__all__ = ["LightError", "verify_signed_header", "verify_state", "verify_adjacent"]


class LightError(RemoteError):
    """What a node served does not verify: do not trust it; try another node."""


def verify_signed_header(chain_id: str, header: Header, commit: Commit, valset: ValidatorSet) -> None:
    """Raise LightError unless `commit` by `valset` signs `header` on `chain_id`."""
    if header.chain_id != chain_id:
        raise LightError(f"header is for chain {header.chain_id!r}, not {chain_id!r}")
    if header.validators != valset.hash():
        raise LightError("the validator set does not match the header's validators hash")
    try:
        verify_commit(chain_id, valset, commit, height=header.height, block_id=header.block_id())
    except CommitError as e:
        raise LightError(str(e)) from e


def verify_adjacent(chain_id: str, trusted: Header, header: Header, commit: Commit,
                    valset: ValidatorSet) -> None:  # fmt: skip
    """Header h+1 after a trusted header h: its set must be the one h announced as next."""
    if header.height != trusted.height + 1 or header.prev != trusted.block_id():
        raise LightError("header does not directly follow the trusted header")
    if header.validators != trusted.next_validators:
        raise LightError("validator set differs from the one the trusted header announced")
    if header.time <= trusted.time:
        raise LightError("header time does not advance")
    verify_signed_header(chain_id, header, commit, valset)


def verify_state(header: Header, key: bytes, value: bytes | None, proof: SparseProof) -> None:
    """Raise LightError unless `proof` shows key → value (None: absent) under header.state_root."""
    if not verify_proof(header.state_root, key, value, proof):
        raise LightError(f"the proof for key {key.hex()} does not verify against height {header.height}")
