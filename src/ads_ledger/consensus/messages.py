"""Consensus messages on the wire and in the WAL (DESIGN §6 bodies, msgpack-canonical).

`ProposalMessage` (a signed proposal with its block), `VoteMessage`, and `CommitMessage`
(a decided block with its commit, for a node catching up). Messages are immutable and
cache their encoding and block id, so one object can be handed to many receivers.

WAL records (opaque bytes to the WAL) are canonical maps:
`{"k": "start", "now"}`, `{"k": "in", "now", "m": message bytes}`, `{"k": "tick", "now"}`
(inputs of the height in progress) and `{"k": "own", "m": message bytes}` (our own
signed proposal or vote, logged with sync before it leaves the node).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union

from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import Block, Commit, Proposal, Vote

__all__ = [
    "ProposalMessage",
    "VoteMessage",
    "CommitMessage",
    "Message",
    "message_from_obj",
    "decode_message",
    "WalRecord",
    "encode_record",
    "decode_record",
]

MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class ProposalMessage:
    """⟨PROPOSAL, h, r, v, vr⟩: the signed proposal and the block it names."""

    proposal: Proposal
    block: Block

    @property
    def height(self) -> int:
        return self.proposal.height

    @property
    def round(self) -> int:
        return self.proposal.round

    @cached_property
    def block_id(self) -> bytes:
        return self.block.block_id()

    def to_obj(self) -> dict[str, Any]:
        return {"kind": "proposal", "proposal": self.proposal.to_obj(), "block": self.block.to_obj()}

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_obj())


@dataclass(frozen=True, eq=False)
class VoteMessage:
    """⟨PREVOTE|PRECOMMIT, h, r, id(v)|nil⟩, signed."""

    vote: Vote

    @property
    def height(self) -> int:
        return self.vote.height

    @property
    def round(self) -> int:
        return self.vote.round

    def to_obj(self) -> dict[str, Any]:
        return {"kind": "vote", "vote": self.vote.to_obj()}

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_obj())


@dataclass(frozen=True, eq=False)
class CommitMessage:
    """A decided block and >2/3 precommits for it: lets a node behind decide (Alg.1 L49)."""

    block: Block
    commit: Commit

    @property
    def height(self) -> int:
        return self.commit.height

    @property
    def round(self) -> int:
        return self.commit.round

    @cached_property
    def block_id(self) -> bytes:
        return self.block.block_id()

    def to_obj(self) -> dict[str, Any]:
        return {"kind": "commit", "block": self.block.to_obj(), "commit": self.commit.to_obj()}

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_obj())


Message = Union[ProposalMessage, VoteMessage, CommitMessage]


def message_from_obj(obj: Any) -> Message:
    """Parse a decoded message; DecodeError on any other shape."""
    if type(obj) is not dict or type(obj.get("kind")) is not str:
        raise DecodeError("consensus message must be a map with a str 'kind'")
    kind = obj["kind"]
    if kind == "proposal" and set(obj) == {"kind", "proposal", "block"}:
        return ProposalMessage(Proposal.from_obj(obj["proposal"]), Block.from_obj(obj["block"]))
    if kind == "vote" and set(obj) == {"kind", "vote"}:
        return VoteMessage(Vote.from_obj(obj["vote"]))
    if kind == "commit" and set(obj) == {"kind", "block", "commit"}:
        return CommitMessage(Block.from_obj(obj["block"]), Commit.from_obj(obj["commit"]))
    raise DecodeError(f"unknown consensus message kind or fields: {kind!r}")


def decode_message(data: bytes) -> Message:
    """Bytes to a message: DecodeError for malformed, oversized or non-canonical input."""
    return message_from_obj(codec.decode(data, max_size=MAX_MESSAGE))


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One decoded WAL record: kind "start" | "in" | "tick" | "own"."""

    kind: str
    now: int
    message: Message | None


def encode_record(kind: str, now: int, message: Message | None = None) -> bytes:
    obj: dict[str, Any] = {"k": kind, "now": now}
    if message is not None:
        obj["m"] = message.encoded
    return codec.encode(obj)


def decode_record(data: bytes) -> WalRecord:
    """Our own WAL record back; DecodeError if it is not one (a damaged or foreign log)."""
    obj = codec.decode(data, max_size=MAX_MESSAGE + 1024)
    if type(obj) is not dict or obj.get("k") not in ("start", "in", "tick", "own"):
        raise DecodeError("not a consensus WAL record")
    now = obj.get("now")
    if type(now) is not int:
        raise DecodeError("WAL record without an integer 'now'")
    m = obj.get("m")
    msg = None if m is None else decode_message(m)
    if (msg is None) != (obj["k"] in ("start", "tick")):
        raise DecodeError(f"WAL record {obj['k']!r} with a wrong payload")
    return WalRecord(obj["k"], now, msg)
