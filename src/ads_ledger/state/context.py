"""The read-only state view, the block overlay and the context a rule runs in.

`Overlay` sits on a `StateView` for one block: it decodes each record at most once, keeps a
per-transaction stage that a failed rule discards, and at the end yields the block's writes as
canonical bytes. Rules never mutate a record they read; they `put` a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ads_ledger.state.records import (
    DEFAULT_PARAMS,
    GOV_PARAMS,
    acct_key,
    decode_record,
    encode_record,
    new_account,
)

__all__ = ["StateView", "Overlay", "Ctx", "DictView"]

_MISSING = object()


class StateView(Protocol):
    """Read access to the committed state: the value bytes of a key, or None."""

    def get(self, key: bytes) -> bytes | None: ...


class DictView:
    """A StateView over a dict (tests, benchmarks, genesis)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = {} if data is None else data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


class Overlay:
    """Decoded records of one block over a StateView, with a discardable per-tx stage."""

    __slots__ = ("view", "cache", "dirty", "stage")

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.cache: dict[bytes, Any] = {}
        self.dirty: set[bytes] = set()
        self.stage: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any:
        """The decoded record at `key` as this tx sees it (None if absent). Do not mutate it."""
        v = self.stage.get(key, _MISSING)
        if v is not _MISSING:
            return v
        v = self.cache.get(key, _MISSING)
        if v is not _MISSING:
            return v
        raw = self.view.get(key)
        v = None if raw is None else decode_record(raw)
        self.cache[key] = v
        return v

    def put(self, key: bytes, value: Any) -> None:
        self.stage[key] = value

    def commit(self) -> None:
        """Make the current tx's changes visible to later txs of the block."""
        if self.stage:
            self.cache.update(self.stage)
            self.dirty.update(self.stage)
            self.stage.clear()

    def rollback(self) -> None:
        self.stage.clear()

    def writes(self) -> dict[bytes, bytes | None]:
        """The block's changes, keys sorted, values canonical (None deletes)."""
        out: dict[bytes, bytes | None] = {}
        for k in sorted(self.dirty):
            v = self.cache[k]
            out[k] = None if v is None else encode_record(v)
        return out


@dataclass(slots=True)
class Ctx:
    """What a rule may see: the chain, the block height and time, and the overlay."""

    chain_id: str
    height: int
    time: int
    state: Overlay
    _merged: tuple[Any, dict[str, Any]] | None = None  # (the stored gov/params object, merged)

    def account(self, pub: bytes) -> dict[str, Any]:
        acct = self.state.get(acct_key(pub))
        return new_account() if acct is None else acct

    def params(self) -> dict[str, Any]:
        """gov/params over the defaults (do not mutate). Cached by the stored record's identity:
        rules never mutate a record, so a params.set puts a new object and misses the cache."""
        stored = self.state.get(GOV_PARAMS)
        if stored is None:
            return DEFAULT_PARAMS
        m = self._merged
        if m is None or m[0] is not stored:
            m = self._merged = (stored, {**DEFAULT_PARAMS, **stored})
        return m[1]
