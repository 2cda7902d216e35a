"""What a light client trusts and how it is configured: plain frozen values, no IO.

LightBlock    a header, the commit that signs it and its own validator set, as a node serves
              them (GET /commit/{h} and /validators/{h}); nothing in it is trusted yet
TrustedState  a verified header with its validator set (and, when known, the next one);
              `encode()`/`decode()` give canonical msgpack the agent persists
TrustOptions  trusting period, clock drift and trust level (CometBFT's defaults but the period)
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import Commit, Header, ValidatorSet

__all__ = ["STATE_VERSION", "LightBlock", "TrustOptions", "TrustedState"]

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class TrustOptions:
    """`trusting_period_ms` must stay below the time a validator's misbehaviour stays punishable
    (CometBFT: 2/3 of the unbonding period); `trust_level` in [1/3, 1]."""

    trusting_period_ms: int
    max_clock_drift_ms: int = 10_000
    trust_level: Fraction = Fraction(1, 3)

    def __post_init__(self) -> None:
        if type(self.trusting_period_ms) is not int or self.trusting_period_ms <= 0:
            raise ValueError("trusting_period_ms must be a positive integer")
        if type(self.max_clock_drift_ms) is not int or self.max_clock_drift_ms < 0:
            raise ValueError("max_clock_drift_ms must be a non-negative integer")
        # below 1/3 a coalition of faulty validators alone could vouch for a header
        if not Fraction(1, 3) <= self.trust_level <= 1:
            raise ValueError("trust_level must be within [1/3, 1]")


@dataclass(frozen=True, slots=True)
class LightBlock:
    """Untrusted: a header, a commit claiming to sign it, and the set claiming to be its own."""

    header: Header
    commit: Commit
    valset: ValidatorSet

    @property
    def height(self) -> int:
        return self.header.height

    def to_obj(self) -> dict[str, Any]:
        return {"header": self.header.to_obj(), "commit": self.commit.to_obj(),
                "valset": self.valset.to_obj()}  # fmt: skip

    @classmethod
    def from_obj(cls, obj: Any) -> LightBlock:
        if type(obj) is not dict or set(obj) != {"header", "commit", "valset"}:
            raise DecodeError("light block must be a map of header, commit, valset")
        return cls(Header.from_obj(obj["header"]), Commit.from_obj(obj["commit"]),
                   ValidatorSet.from_obj(obj["valset"]))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrustedState:
    """A header we verified, its validator set and optionally the set it names as next.

    The invariants (hashes match the header) are checked on construction, so a TrustedState
    read back from disk cannot pair a header with a set it does not commit to.
    """

    header: Header
    valset: ValidatorSet
    next_valset: ValidatorSet | None = None

    def __post_init__(self) -> None:
        if self.valset.hash() != self.header.validators:
            raise DecodeError("trusted validator set does not match the header's validators hash")
        if self.next_valset is not None and self.next_valset.hash() != self.header.next_validators:
            raise DecodeError("trusted next validator set does not match next_validators")

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def chain_id(self) -> str:
        return self.header.chain_id

    def expires_at(self, opts: TrustOptions) -> int:
        """The first millisecond at which this header no longer vouches for anything."""
        return self.header.time + opts.trusting_period_ms

    def to_obj(self) -> dict[str, Any]:
        nv = None if self.next_valset is None else self.next_valset.to_obj()
        return {"version": STATE_VERSION, "header": self.header.to_obj(),
                "valset": self.valset.to_obj(), "next_valset": nv}  # fmt: skip

    def encode(self) -> bytes:
        return codec.encode(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> TrustedState:
        keys = {"version", "header", "valset", "next_valset"}
        if type(obj) is not dict or set(obj) != keys:
            raise DecodeError(f"trusted state must be a map with exactly the keys {sorted(keys)}")
        if obj["version"] != STATE_VERSION or type(obj["version"]) is not int:
            raise DecodeError(f"trusted state version must be {STATE_VERSION}")
        nv = obj["next_valset"]
        return cls(Header.from_obj(obj["header"]), ValidatorSet.from_obj(obj["valset"]),
                   None if nv is None else ValidatorSet.from_obj(nv))  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> TrustedState:
        """Raise DecodeError on anything but bytes `encode()` produced."""
        return cls.from_obj(codec.decode(data))
