"""Double-sign guard (DESIGN §6, second local duty; implements `ports.Signer`).

Before a signature leaves `DoubleSignGuard`, the (height, round, step, sign bytes,
signature) it belongs to is durably stored in a `SignerState`. A request below the stored
(h, r, s) is refused; the same (h, r, s) with the same bytes gets the stored signature back
(WAL replay after a crash is harmless); the same (h, r, s) with other bytes is refused.
The voting rules are numbered in `check_hrs`'s docstring, as Aptos safety-rules does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from ads_ledger.consensus.ports import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.core.errors import AdsError
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Proposal, Vote

__all__ = [
    "DoubleSignRefused",
    "SignerStateCorrupt",
    "LastSigned",
    "SignerState",
    "MemorySignerState",
    "FileSignerState",
    "DoubleSignGuard",
    "check_hrs",
]


class DoubleSignRefused(AdsError):
    """The guard will not sign: it could be a double sign. Never a peer's fault; never retry."""


class SignerStateCorrupt(AdsError):
    """The persisted guard state cannot be read: an operator must look before we sign again."""


@dataclass(frozen=True, slots=True)
class LastSigned:
    """What the guard signed last; persisted before the signature is released."""

    height: int
    round: int
    step: int
    sign_bytes: bytes
    signature: bytes

    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)

    def to_obj(self) -> dict[str, Any]:
        return {"height": self.height, "round": self.round, "step": self.step,
                "sign_bytes": self.sign_bytes, "signature": self.signature}  # fmt: skip

    @classmethod
    def from_obj(cls, obj: Any) -> "LastSigned":
        keys = {"height", "round", "step", "sign_bytes", "signature"}
        if type(obj) is not dict or set(obj) != keys:
            raise SignerStateCorrupt(f"guard state must be a map with keys {sorted(keys)}")
        for k in ("height", "round", "step"):
            if type(obj[k]) is not int or obj[k] < 0:
                raise SignerStateCorrupt(f"guard state {k} must be an unsigned integer")
        if obj["step"] not in (STEP_PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT):
            raise SignerStateCorrupt("guard state step must be 1, 2 or 3")
        if type(obj["sign_bytes"]) is not bytes or type(obj["signature"]) is not bytes:
            raise SignerStateCorrupt("guard state sign_bytes and signature must be bytes")
        if len(obj["signature"]) != 64:
            raise SignerStateCorrupt("guard state signature must be 64 bytes")
        return cls(obj["height"], obj["round"], obj["step"], obj["sign_bytes"], obj["signature"])


class SignerState(Protocol):
    """Durable storage of the guard's `LastSigned` (one value, overwritten)."""

    def load(self) -> LastSigned | None:
        """The last saved value, or None if nothing was ever signed."""
        ...

    def save(self, last: LastSigned) -> None:
        """Store `last` durably; when this returns it survives a power loss. Raises on failure."""
        ...


class MemorySignerState:
    """A `SignerState` in memory, for the simulator (it survives a simulated crash because
    the simulator hands the same object to the restarted node)."""

    def __init__(self, last: LastSigned | None = None) -> None:
        self.last = last
        self.saves = 0

    def load(self) -> LastSigned | None:
        return self.last

    def save(self, last: LastSigned) -> None:
        self.last = last
        self.saves += 1


class FileSignerState:
    """A `SignerState` in one file of two fixed slots, each written in place and synced.

    A save writes the slot that does not hold the newest state (`seq` parity), then
    `fdatasync`s: one sync per signature, no rename, no directory sync. Each slot is
    `magic ‖ seq ‖ length ‖ H(seq ‖ length ‖ payload) ‖ payload` (payload: the canonical
    `LastSigned`); a load takes the valid slot with the highest `seq`. A write torn by a crash
    or a power loss spoils only the slot being written, whose signature never left the guard,
    so the other slot is the state to resume from. The file itself is created (or converted
    from the older single-record format) by writing a temp file, fsync, rename, dir fsync."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._dir = os.path.dirname(os.path.abspath(self.path))
        self._tmp = self.path + ".tmp"
        self._fd: int | None = None  # open for in-place saves once the file has two slots
        self._seq = 0  # the seq of the newest valid slot

    def load(self) -> LastSigned | None:
        """Read the state; None if the file does not exist. SignerStateCorrupt if unreadable."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(1 << 16)
        except FileNotFoundError:
            return None
        if len(data) == 2 * SLOT_BYTES and SLOT_MAGIC in (data[:8], data[SLOT_BYTES : SLOT_BYTES + 8]):
            best: tuple[int, bytes] | None = None
            for i in (0, 1):
                slot = _read_slot(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES])
                if slot is not None and (best is None or slot[0] > best[0]):
                    best = slot
            if best is None:
                raise SignerStateCorrupt(
                    f"double-sign guard state {self.path} has no intact slot; do not delete it "
                    "blindly: restore it or set it to a height above anything this key signed"
                )
            self._seq, data = best
            return _decode_state(self.path, data)
        self._seq = 0  # the older format: one msgpack record, converted by the next save
        return _decode_state(self.path, data)

    def _write_temp(self, data: bytes) -> None:
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rename(self) -> None:
        os.replace(self._tmp, self.path)

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_slot(self, fd: int, offset: int, slot: bytes) -> None:
        view = memoryview(slot)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n

    def save(self, last: LastSigned) -> None:
        """Durably store `last`; on any OSError the newest state saved before stays readable."""
        seq = self._seq + 1
        slot = _slot(seq, codec.encode(last.to_obj()))
        if self._fd is None and self._seq > 0 and os.path.exists(self.path):
            self._fd = os.open(self.path, os.O_RDWR)  # a two-slot file: saves go in place
        if self._fd is None:  # no file yet, or the older format: create the two slots atomically
            empty = bytes(SLOT_BYTES)
            self._write_temp(slot + empty if seq % 2 == 0 else empty + slot)
            self._rename()  # atomic: a crash leaves the old file or the new, never a mix
            self._fsync_dir()  # the rename itself must survive a power loss
            self._fd = os.open(self.path, os.O_RDWR)
        else:
            self._write_slot(self._fd, (seq % 2) * SLOT_BYTES, slot)
            os.fdatasync(self._fd)  # the size never changes: the data is what must be durable
        self._seq = seq

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


SLOT_BYTES = 4096
SLOT_MAGIC = b"ADSGRD\x00\x02"
_SLOT_HEAD = 8 + 8 + 4 + 32  # magic, seq, payload length, digest


def _slot(seq: int, payload: bytes) -> bytes:
    if len(payload) > SLOT_BYTES - _SLOT_HEAD:
        # never for our messages (their sign bytes are ~200 bytes); refusing keeps the guard safe
        raise SignerStateCorrupt(f"a guard state of {len(payload)} bytes does not fit a slot")
    body = seq.to_bytes(8, "big") + len(payload).to_bytes(4, "big")
    out = SLOT_MAGIC + body + H(body + payload) + payload
    return out + bytes(SLOT_BYTES - len(out))


def _read_slot(raw: bytes) -> tuple[int, bytes] | None:
    """(seq, payload) of an intact slot, else None (never written, or torn)."""
    if raw[:8] != SLOT_MAGIC:
        return None
    body = raw[8:20]
    n = int.from_bytes(body[8:], "big")
    if n > SLOT_BYTES - _SLOT_HEAD:
        return None
    payload = raw[_SLOT_HEAD : _SLOT_HEAD + n]
    if H(body + payload) != raw[20:52]:
        return None
    return int.from_bytes(body[:8], "big"), payload


def _decode_state(path: str, data: bytes) -> LastSigned:
    try:
        obj = codec.decode(data)
    except Exception as e:  # any decode failure means the same to the operator
        raise SignerStateCorrupt(
            f"double-sign guard state {path} is unreadable ({e}); do not delete it "
            "blindly: restore it or set it to a height above anything this key signed"
        ) from e
    return LastSigned.from_obj(obj)


def check_hrs(
    last: LastSigned | None, hrs: tuple[int, int, int], sign_bytes: bytes
) -> bytes | None:
    """Decide whether (h, r, s) with `sign_bytes` may be signed.

    1. Nothing signed yet, or (h, r, s) above the last signed: allowed (returns None).
    2. (h, r, s) below the last signed: refused (a regression could sign a fork).
    3. Equal (h, r, s), equal sign bytes: returns the stored signature (no new signature).
    4. Equal (h, r, s), different sign bytes: refused (that is equivocation).
    Raises DoubleSignRefused for 2 and 4.
    """
    if last is None or hrs > last.hrs():
        return None
    if hrs < last.hrs():
        raise DoubleSignRefused(f"refusing to sign (h, r, s) = {hrs}: already signed {last.hrs()}")
    if sign_bytes == last.sign_bytes:
        return last.signature
    raise DoubleSignRefused(f"refusing to sign different data at (h, r, s) = {hrs}")


class DoubleSignGuard:
    """A `ports.Signer` for one key that persists before it signs and never double-signs."""

    def __init__(self, key: SigningKey, state: SignerState) -> None:
        self._key = key
        self._state = state
        self._last = state.load()

    @property
    def pub(self) -> bytes:
        return self._key.pub

    @property
    def last(self) -> LastSigned | None:
        return self._last

    def _check_signer(self, who: bytes) -> None:
        if who not in (b"", self.pub):
            raise ValueError("asked to sign for another validator's key")  # our bug

    def _sign(self, hrs: tuple[int, int, int], msg: bytes) -> bytes:
        stored = check_hrs(self._last, hrs, msg)
        if stored is not None:
            return stored
        sig = self._key.sign(msg)
        new = LastSigned(hrs[0], hrs[1], hrs[2], msg, sig)
        # persist first: if save raises, the signature is dropped and never leaves here
        self._state.save(new)
        self._last = new
        return sig

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        """The proposal signed by this key; `proposal.proposer` must be our key or empty."""
        self._check_signer(proposal.proposer)
        p = Proposal(proposal.height, proposal.round, proposal.block, proposal.pol_round, self.pub)
        sig = self._sign((p.height, p.round, STEP_PROPOSE), p.sign_bytes(chain_id))
        return Proposal(p.height, p.round, p.block, p.pol_round, self.pub, sig)

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        """The vote signed by this key; `vote.validator` must be our key or empty."""
        self._check_signer(vote.validator)
        if vote.type == PREVOTE:
            step = STEP_PREVOTE
        elif vote.type == PRECOMMIT:
            step = STEP_PRECOMMIT
        else:
            raise ValueError(f"unknown vote type {vote.type!r}")  # our bug
        v = Vote(vote.type, vote.height, vote.round, vote.block, self.pub)
        sig = self._sign((v.height, v.round, step), v.sign_bytes(chain_id))
        return Vote(v.type, v.height, v.round, v.block, self.pub, sig)
