"""Blocks, votes, proposals, commits and validator sets (DESIGN §6, normative bytes).

Plain frozen dataclasses with `to_obj()` (the canonical msgpack value) and `from_obj()`
(strict shape checks, DecodeError on anything off). No IO, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.merkle import list_root

__all__ = [
    "PREVOTE",
    "PRECOMMIT",
    "ZERO32",
    "ValidatorSet",
    "Header",
    "Vote",
    "Proposal",
    "Commit",
    "Block",
    "DuplicateVoteEvidence",
    "verify_commit",
    "CommitError",
]

PREVOTE = 1
PRECOMMIT = 2
ZERO32 = bytes(32)
MAX_VALIDATORS = 256
HEADER_KEYS = (
    "version", "chain_id", "height", "time", "prev", "txs_root", "evidence_root",
    "state_root", "validators", "next_validators", "proposer", "last_commit",
)  # fmt: skip


class CommitError(DecodeError):
    """A commit does not prove what it claims (bad signature, unknown index, too little power)."""


def _uint(obj: Any, what: str) -> int:
    if type(obj) is not int or obj < 0:
        raise DecodeError(f"{what} must be an unsigned integer")
    return obj


def _bin(obj: Any, n: int, what: str) -> bytes:
    if type(obj) is not bytes or len(obj) != n:
        raise DecodeError(f"{what} must be {n} bytes")
    return obj


def _opt_bin(obj: Any, n: int, what: str) -> bytes | None:
    return None if obj is None else _bin(obj, n, what)


def _map(obj: Any, keys: Iterable[str], what: str) -> dict[str, Any]:
    if type(obj) is not dict or set(obj) != set(keys):
        raise DecodeError(f"{what} must be a map with exactly the keys {sorted(keys)}")
    return obj


# ---------------------------------------------------------------- validator sets


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """Validators in set order: power descending, then public key ascending."""

    validators: tuple[tuple[bytes, int], ...]
    _index: dict[bytes, int] = field(default_factory=dict, compare=False, repr=False)
    _hash: bytes | None = field(default=None, init=False, compare=False, repr=False)  # hash(), once

    def __post_init__(self) -> None:
        if not self.validators or len(self.validators) > MAX_VALIDATORS:
            raise DecodeError(f"a validator set has 1..{MAX_VALIDATORS} members")
        for pub, power in self.validators:  # before sorting: a swapped entry must not TypeError
            _bin(pub, 32, "validator key")
            if type(power) is not int or power <= 0 or power >= 2**62:
                raise DecodeError("validator power must be a positive integer below 2^62")
        vals = tuple(sorted(self.validators, key=lambda v: (-v[1], v[0])))
        if len({p for p, _ in vals}) != len(vals):
            raise DecodeError("a validator appears twice in the set")
        object.__setattr__(self, "validators", vals)
        self._index.update({pub: i for i, (pub, _) in enumerate(vals)})

    @classmethod
    def from_obj(cls, obj: Any) -> "ValidatorSet":
        if type(obj) is not list:
            raise DecodeError("validator set must be a list of [pub, power]")
        pairs = []
        for v in obj:
            if type(v) is not list or len(v) != 2:
                raise DecodeError("validator entry must be [pub, power]")
            pairs.append((v[0], v[1]))
        return cls(tuple(pairs))

    def to_obj(self) -> list[list[Any]]:
        return [[pub, power] for pub, power in self.validators]

    def hash(self) -> bytes:
        h = self._hash
        if h is None:
            h = H(codec.encode(self.to_obj()))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def total_power(self) -> int:
        return sum(p for _, p in self.validators)

    def __len__(self) -> int:
        return len(self.validators)

    def index_of(self, pub: bytes) -> int | None:
        return self._index.get(pub)

    def power_of(self, pub: bytes) -> int:
        i = self._index.get(pub)
        return 0 if i is None else self.validators[i][1]

    def pub_at(self, index: int) -> bytes:
        return self.validators[index][0]

    def quorum(self) -> int:
        """Smallest power strictly greater than 2/3 of the total."""
        return self.total_power * 2 // 3 + 1

    def one_third_plus(self) -> int:
        """Smallest power strictly greater than 1/3 of the total (f+1)."""
        return self.total_power // 3 + 1


# ---------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time: int
    prev: bytes
    txs_root: bytes
    evidence_root: bytes
    state_root: bytes
    validators: bytes
    next_validators: bytes
    proposer: bytes
    last_commit: bytes
    version: int = 1
    # H(encode()), computed once: the fields are frozen (`replace` builds a new header, unset)
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_obj(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HEADER_KEYS}

    def encode(self) -> bytes:
        return codec.encode(self.to_obj())

    def block_id(self) -> bytes:
        bid = self._id
        if bid is None:
            bid = H(self.encode())
            object.__setattr__(self, "_id", bid)
        return bid

    @classmethod
    def from_obj(cls, obj: Any) -> "Header":
        o = _map(obj, HEADER_KEYS, "header")
        if o["version"] != 1 or type(o["version"]) is not int:
            raise DecodeError("header version must be 1")
        if type(o["chain_id"]) is not str or not 0 < len(o["chain_id"]) <= 64:
            raise DecodeError("chain_id must be a str of 1..64 characters")
        height = _uint(o["height"], "height")
        if height < 1:
            raise DecodeError("height starts at 1")
        return cls(
            chain_id=o["chain_id"],
            height=height,
            time=_uint(o["time"], "time"),
            **{k: _bin(o[k], 32, k) for k in HEADER_KEYS[4:]},
        )


# ---------------------------------------------------------------- votes and proposals


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed prevote or precommit. `block` None is a vote for nil."""

    type: int
    height: int
    round: int
    block: bytes | None
    validator: bytes
    sig: bytes = b""

    def sign_body(self) -> dict[str, Any]:
        return {"type": self.type, "height": self.height, "round": self.round, "block": self.block}

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes("ads/vote/1", chain_id, self.sign_body())

    def signed(self, chain_id: str, key: SigningKey) -> "Vote":
        return Vote(self.type, self.height, self.round, self.block, key.pub,
                    key.sign(self.sign_bytes(chain_id)))  # fmt: skip

    def verify(self, chain_id: str) -> bool:
        return verify(self.validator, self.sig, self.sign_bytes(chain_id))

    def to_obj(self) -> dict[str, Any]:
        return {**self.sign_body(), "validator": self.validator, "sig": self.sig}

    @classmethod
    def from_obj(cls, obj: Any) -> "Vote":
        o = _map(obj, ("type", "height", "round", "block", "validator", "sig"), "vote")
        if o["type"] not in (PREVOTE, PRECOMMIT) or type(o["type"]) is not int:
            raise DecodeError("vote type must be 1 (prevote) or 2 (precommit)")
        return cls(
            type=o["type"],
            height=_uint(o["height"], "height"),
            round=_uint(o["round"], "round"),
            block=_opt_bin(o["block"], 32, "block"),
            validator=_bin(o["validator"], 32, "validator"),
            sig=_bin(o["sig"], 64, "sig"),
        )


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's signed ⟨PROPOSAL, h, r, id(v), vr⟩; the block travels beside it."""

    height: int
    round: int
    block: bytes
    pol_round: int
    proposer: bytes
    sig: bytes = b""

    def sign_body(self) -> dict[str, Any]:
        return {"height": self.height, "round": self.round, "block": self.block,
                "pol_round": self.pol_round}  # fmt: skip

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes("ads/proposal/1", chain_id, self.sign_body())

    def signed(self, chain_id: str, key: SigningKey) -> "Proposal":
        return Proposal(self.height, self.round, self.block, self.pol_round, key.pub,
                        key.sign(self.sign_bytes(chain_id)))  # fmt: skip

    def verify(self, chain_id: str) -> bool:
        return verify(self.proposer, self.sig, self.sign_bytes(chain_id))

    def to_obj(self) -> dict[str, Any]:
        return {**self.sign_body(), "proposer": self.proposer, "sig": self.sig}

    @classmethod
    def from_obj(cls, obj: Any) -> "Proposal":
        o = _map(obj, ("height", "round", "block", "pol_round", "proposer", "sig"), "proposal")
        pol = o["pol_round"]
        rnd = _uint(o["round"], "round")
        if type(pol) is not int or not (pol == -1 or 0 <= pol < rnd):
            raise DecodeError("pol_round must be -1 or a round below the proposal's round")
        return cls(
            height=_uint(o["height"], "height"),
            round=rnd,
            block=_bin(o["block"], 32, "block"),
            pol_round=pol,
            proposer=_bin(o["proposer"], 32, "proposer"),
            sig=_bin(o["sig"], 64, "sig"),
        )


# ---------------------------------------------------------------- commits


@dataclass(frozen=True, slots=True)
class Commit:
    """Precommits for one block: `sigs` are [validator_index, sig] sorted by index."""

    height: int
    round: int
    block: bytes
    sigs: tuple[tuple[int, bytes], ...]
    # (chain_id, vote_sign_bytes(chain_id)) of the last call: the fields are frozen
    _signed: tuple[str, bytes] | None = field(default=None, init=False, compare=False, repr=False)

    def to_obj(self) -> dict[str, Any]:
        return {"height": self.height, "round": self.round, "block": self.block,
                "sigs": [[i, s] for i, s in self.sigs]}  # fmt: skip

    def hash(self) -> bytes:
        return H(codec.encode(self.to_obj()))

    def vote_sign_bytes(self, chain_id: str) -> bytes:
        memo = self._signed
        if memo is not None and memo[0] == chain_id:
            return memo[1]
        body = {"type": PRECOMMIT, "height": self.height, "round": self.round, "block": self.block}
        signed = sign_bytes("ads/vote/1", chain_id, body)
        object.__setattr__(self, "_signed", (chain_id, signed))
        return signed

    @classmethod
    def from_obj(cls, obj: Any) -> "Commit":
        o = _map(obj, ("height", "round", "block", "sigs"), "commit")
        sigs = o["sigs"]
        if type(sigs) is not list or len(sigs) > MAX_VALIDATORS:
            raise DecodeError(f"commit sigs must be a list of at most {MAX_VALIDATORS}")
        pairs: list[tuple[int, bytes]] = []
        for s in sigs:
            if type(s) is not list or len(s) != 2:
                raise DecodeError("commit sig entry must be [validator_index, sig]")
            pairs.append((_uint(s[0], "validator_index"), _bin(s[1], 64, "sig")))
        if [i for i, _ in pairs] != sorted({i for i, _ in pairs}):
            raise DecodeError("commit sigs must be sorted by validator index, without repeats")
        return cls(_uint(o["height"], "height"), _uint(o["round"], "round"),
                   _bin(o["block"], 32, "block"), tuple(pairs))  # fmt: skip

    @classmethod
    def from_votes(cls, valset: ValidatorSet, votes: Iterable[Vote]) -> "Commit":
        """Build a commit from precommits for one block (caller checked they are valid)."""
        vs = list(votes)
        v0 = vs[0]
        sigs = sorted((valset.index_of(v.validator), v.sig) for v in vs)  # type: ignore[type-var]
        return cls(v0.height, v0.round, v0.block or ZERO32, tuple(sigs))  # type: ignore[arg-type]


def verify_commit(
    chain_id: str, valset: ValidatorSet, commit: Commit, *, height: int, block_id: bytes,
    verify: Callable[[bytes, bytes, bytes], bool] = verify,
) -> None:
    """Raise CommitError unless `commit` carries >2/3 of `valset`'s power for (height, block_id).

    Every listed signature must verify (a commit with a bad signature is malformed, not
    merely weak), so one that passes is a transferable proof. `verify(pub, sig, message)`
    is Ed25519's, or one that answers from signatures it verified before (block sync).
    """
    if commit.height != height or commit.block != block_id:
        raise CommitError(f"commit is for height {commit.height}, not the block at {height}")
    msg = commit.vote_sign_bytes(chain_id)
    power, last = 0, -1
    for idx, sig in commit.sigs:
        if idx <= last:  # from_obj checks this too, but a Commit may be built in memory
            raise CommitError("commit sigs must be sorted by validator index, without repeats")
        last = idx
        if idx >= len(valset):
            raise CommitError(f"commit names validator index {idx}; the set has {len(valset)}")
        pub, p = valset.validators[idx]
        if not verify(pub, sig, msg):
            raise CommitError(f"commit signature of validator {idx} does not verify")
        power += p
    if power < valset.quorum():
        raise CommitError(f"commit carries {power} of {valset.total_power} power; needs >2/3")


# ---------------------------------------------------------------- evidence and blocks


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two votes by one validator for the same (height, round, type) and different blocks."""

    vote_a: Vote
    vote_b: Vote

    def __post_init__(self) -> None:
        # canonical order: nil first, then by block id, so each pair has one encoding
        a, b = self.vote_a, self.vote_b
        if (a.block or b"") > (b.block or b""):
            object.__setattr__(self, "vote_a", b)
            object.__setattr__(self, "vote_b", a)

    def to_obj(self) -> dict[str, Any]:
        return {"kind": "duplicate_vote", "vote_a": self.vote_a.to_obj(),
                "vote_b": self.vote_b.to_obj()}  # fmt: skip

    def hash(self) -> bytes:
        return H(codec.encode(self.to_obj()))

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    def check(self, chain_id: str, valset: ValidatorSet) -> None:
        """Raise DecodeError unless this is real, verifiable equivocation by a set member."""
        a, b = self.vote_a, self.vote_b
        if (a.type, a.height, a.round, a.validator) != (b.type, b.height, b.round, b.validator):
            raise DecodeError("evidence votes differ in type, height, round or validator")
        if a.block == b.block:
            raise DecodeError("evidence votes are for the same block")
        if valset.index_of(a.validator) is None:
            raise DecodeError("evidence names a validator outside the set")
        if not (a.verify(chain_id) and b.verify(chain_id)):
            raise DecodeError("an evidence vote's signature does not verify")

    @classmethod
    def from_obj(cls, obj: Any) -> "DuplicateVoteEvidence":
        o = _map(obj, ("kind", "vote_a", "vote_b"), "evidence")
        if o["kind"] != "duplicate_vote":
            raise DecodeError("unknown evidence kind")
        ev = cls(Vote.from_obj(o["vote_a"]), Vote.from_obj(o["vote_b"]))
        if ev.to_obj() != o:
            raise DecodeError("evidence votes are not in canonical order")
        return ev


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]
    evidence: tuple[DuplicateVoteEvidence, ...]
    last_commit: Commit | None

    def block_id(self) -> bytes:
        return self.header.block_id()

    def to_obj(self) -> dict[str, Any]:
        return {
            "header": self.header.to_obj(),
            "txs": list(self.txs),
            "evidence": [e.to_obj() for e in self.evidence],
            "last_commit": None if self.last_commit is None else self.last_commit.to_obj(),
        }

    def encode(self) -> bytes:
        return codec.encode(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> "Block":
        o = _map(obj, ("header", "txs", "evidence", "last_commit"), "block")
        if type(o["txs"]) is not list or any(type(t) is not bytes for t in o["txs"]):
            raise DecodeError("block txs must be a list of envelope bytes")
        if type(o["evidence"]) is not list:
            raise DecodeError("block evidence must be a list")
        lc = o["last_commit"]
        return cls(
            Header.from_obj(o["header"]),
            tuple(o["txs"]),
            tuple(DuplicateVoteEvidence.from_obj(e) for e in o["evidence"]),
            None if lc is None else Commit.from_obj(lc),
        )

    @classmethod
    def decode(cls, data: bytes, max_size: int = 8 * 1024 * 1024) -> "Block":
        return cls.from_obj(codec.decode(data, max_size=max_size))

    def check_roots(self, txids: Sequence[bytes]) -> None:
        """Raise DecodeError unless the header's txs/evidence/last_commit hashes match the body;
        `txids` are the ids of `txs` (the state layer parses envelopes, not this one)."""
        h = self.header
        if list_root(txids) != h.txs_root:
            raise DecodeError("txs_root does not match the block's transactions")
        if list_root([e.hash() for e in self.evidence]) != h.evidence_root:
            raise DecodeError("evidence_root does not match the block's evidence")
        if h.height == 1:
            if self.last_commit is not None or h.last_commit != ZERO32 or h.prev != ZERO32:
                raise DecodeError("block 1 has no previous block or last commit")
        elif self.last_commit is None or self.last_commit.hash() != h.last_commit:
            raise DecodeError("last_commit does not match the header")
