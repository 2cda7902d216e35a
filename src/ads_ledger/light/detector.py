"""Cross-checking the primary node against witnesses (CometBFT light/detector.go), pure.

A light client that asks one node can be fed a fork signed by a corrupt validator majority;
asking other nodes (witnesses) for the same height detects it. A conflict is not resolved
here: both headers become a `Divergence`, the client stops trusting either and reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import Commit, Header
from ads_ledger.light.errors import ConflictingHeaders, InsufficientTrust
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions
from ads_ledger.light.verifier import verify_light_block

__all__ = ["Divergence", "check_witness", "compare"]


def compare(primary: Header, witness: Header) -> None:
    """Raise ConflictingHeaders if the two headers for one height differ."""
    if primary.height != witness.height:
        raise ValueError("compare headers of the same height")  # the shell's bug
    if primary.block_id() != witness.block_id():
        raise ConflictingHeaders(primary, witness)


def check_witness(trusted: TrustedState, primary: LightBlock, witness: LightBlock,
                  now_ms: int, opts: TrustOptions) -> None:  # fmt: skip
    """Compare the primary's verified block with a witness's block at the same height.

    Call it before adopting `primary`, so that `trusted` is still the common ancestor both must
    extend. Agreement returns. On a conflict, verify the witness's block from `trusted`: if it
    verifies, or cannot be judged without bisecting or from below `trusted`, raise
    ConflictingHeaders carrying both signed headers; if it is simply invalid, re-raise its
    LightError, so the shell drops that witness and keeps the primary.
    """
    try:
        compare(primary.header, witness.header)
        return
    except ConflictingHeaders:
        pass
    verified = False
    if witness.height > trusted.height:  # else there is no common ancestor to verify it from
        try:
            verify_light_block(trusted, witness, now_ms, opts)
            verified = True
        except InsufficientTrust:
            pass  # a fork may lie behind it; halting is the safe answer
    raise ConflictingHeaders(primary.header, witness.header, primary_commit=primary.commit,
                             witness_commit=witness.commit, witness_verified=verified)  # fmt: skip


def _hexify(v: Any) -> Any:
    if type(v) is bytes:
        return v.hex()
    if type(v) is list:
        return [_hexify(x) for x in v]
    if type(v) is dict:
        return {k: _hexify(x) for k, x in v.items()}
    return v


@dataclass(frozen=True, slots=True)
class Divergence:
    """Two headers served for one height, with their commits when known: evidence to report."""

    primary: Header
    witness: Header
    primary_commit: Commit | None = None
    witness_commit: Commit | None = None
    witness_verified: bool = False

    @classmethod
    def of(cls, err: ConflictingHeaders) -> Divergence:
        return cls(err.primary, err.witness, err.primary_commit, err.witness_commit,
                   err.witness_verified)  # fmt: skip

    @property
    def height(self) -> int:
        return self.primary.height

    def to_obj(self) -> dict[str, Any]:
        def c(x: Commit | None) -> Any:
            return None if x is None else x.to_obj()

        return {"height": self.height, "primary": self.primary.to_obj(),
                "witness": self.witness.to_obj(), "primary_commit": c(self.primary_commit),
                "witness_commit": c(self.witness_commit),
                "witness_verified": self.witness_verified}  # fmt: skip

    def encode(self) -> bytes:
        """Canonical msgpack (DESIGN §3)."""
        return codec.encode(self.to_obj())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: bytes as lowercase hex, as the node API writes them (DESIGN §8)."""
        return dict(_hexify(self.to_obj()))

    @classmethod
    def from_obj(cls, obj: Any) -> Divergence:
        keys = {"height", "primary", "witness", "primary_commit", "witness_commit",
                "witness_verified"}  # fmt: skip
        if type(obj) is not dict or set(obj) != keys or type(obj["witness_verified"]) is not bool:
            raise DecodeError(f"divergence must be a map with exactly the keys {sorted(keys)}")
        p, w = Header.from_obj(obj["primary"]), Header.from_obj(obj["witness"])
        if not p.height == w.height == obj["height"]:
            raise DecodeError("divergence headers must share its height")
        pc, wc = obj["primary_commit"], obj["witness_commit"]
        return cls(p, w, None if pc is None else Commit.from_obj(pc),
                   None if wc is None else Commit.from_obj(wc), obj["witness_verified"])  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Divergence:
        return cls.from_obj(codec.decode(data))
