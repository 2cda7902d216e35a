"""The agent's durable state in one LMDB environment (fsync on every write transaction):

- `seq`:   issuer pub → the last accepted seq (u64 big-endian). Written *before* the charger is
           driven, in the same transaction as the command's audit entry, so after a crash or
           `kill -9` a command is never accepted twice (it may have been lost, never repeated);
- `audit`: an append-only log, key = entry number (u64 big-endian), value = canonical msgpack
           `{"n", "at", "issuer", "cmd", "code", "acl_height", "receipt"}`; an accepted command is
           logged before it is acted on (receipt nil) and its receipt filled in afterwards;
           the oldest entries beyond `max_audit` are dropped in batches (bounded disk);
- `meta`:  named blobs: the light client's trusted state, the verified access list.

Nothing here parses untrusted input: the callers store what they verified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lmdb

from ads_ledger.core import codec

__all__ = ["AgentStore"]

_U64 = 8


def _k(n: int) -> bytes:
    return n.to_bytes(_U64, "big")


class AgentStore:
    def __init__(self, path: Path | str, *, max_audit: int = 100_000, map_size: int = 1 << 30) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), max_dbs=4, map_size=map_size, sync=True, metasync=True,
                             subdir=True, lock=True)  # fmt: skip
        self._seq = self.env.open_db(b"seq")
        self._audit = self.env.open_db(b"audit")
        self._meta = self.env.open_db(b"meta")
        self.max_audit = max_audit
        with self.env.begin() as txn, txn.cursor(db=self._audit) as cur:
            self._next = int.from_bytes(cur.key(), "big") + 1 if cur.last() else 0

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> AgentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ replay state

    def last_seq(self, issuer: bytes) -> int | None:
        with self.env.begin(db=self._seq) as txn:
            v = txn.get(issuer)
        return None if v is None else int.from_bytes(v, "big")

    def accept(self, issuer: bytes, seq: int, entry: dict[str, Any]) -> int:
        """Record `seq` as `issuer`'s last and log the accepted command, durably, in one
        transaction; returns its audit entry number. Call before driving the charger."""
        with self.env.begin(write=True) as txn:
            old = txn.get(issuer, db=self._seq)
            if old is not None and int.from_bytes(old, "big") >= seq:
                raise ValueError("seq is not above the issuer's last accepted one")  # a caller bug
            txn.put(issuer, _k(seq), db=self._seq)
            return self._append(txn, entry)

    # ------------------------------------------------------------------ audit log

    def log(self, entry: dict[str, Any]) -> int:
        """Append a refused command's entry (no replay state changes)."""
        with self.env.begin(write=True) as txn:
            return self._append(txn, entry)

    def complete(self, n: int, receipt: dict[str, Any], code: str) -> None:
        """Fill in the receipt (and final code, e.g. driver_error) of accepted entry `n`."""
        with self.env.begin(write=True) as txn:
            raw = txn.get(_k(n), db=self._audit)
            if raw is None:
                return  # pruned meanwhile: nothing to complete
            e = codec.decode(raw)
            txn.put(_k(n), codec.encode({**e, "code": code, "receipt": receipt}), db=self._audit)  # type: ignore[dict-item]

    def _append(self, txn: lmdb.Transaction, entry: dict[str, Any]) -> int:
        n = self._next
        txn.put(_k(n), codec.encode({**entry, "n": n}), db=self._audit, append=True)
        self._next = n + 1
        if n >= self.max_audit and n % 1024 == 0:  # prune in batches: bounded disk, cheap appends
            with txn.cursor(db=self._audit) as cur:
                cur.first()
                while cur.key() and int.from_bytes(cur.key(), "big") <= n - self.max_audit:
                    cur.delete()
        return n

    def count(self) -> int:
        """Audit entries held now."""
        with self.env.begin() as txn:
            return int(txn.stat(self._audit)["entries"])

    def read(self, *, since: int, limit: int, issuer: bytes | None, max_scan: int = 10_000) -> tuple[list[dict[str, Any]], int]:
        """At most `limit` entries from number `since` (of `issuer` only, if given), examining at
        most `max_scan` entries; returns them and the number to continue from."""
        out: list[dict[str, Any]] = []
        nxt = since
        with self.env.begin(db=self._audit) as txn, txn.cursor() as cur:
            ok = cur.set_range(_k(since))
            scanned = 0
            while ok and len(out) < limit and scanned < max_scan:
                e = codec.decode(cur.value())
                nxt = e["n"] + 1  # type: ignore[index]
                scanned += 1
                if issuer is None or e["issuer"] == issuer:  # type: ignore[index]
                    out.append(e)  # type: ignore[arg-type]
                ok = cur.next()
        return out, nxt

    # ------------------------------------------------------------------ meta

    def get_meta(self, name: str) -> bytes | None:
        with self.env.begin(db=self._meta) as txn:
            v = txn.get(name.encode())
        return None if v is None else bytes(v)

    def put_meta(self, name: str, value: bytes) -> None:
        with self.env.begin(write=True, db=self._meta) as txn:
            txn.put(name.encode(), value)
