"""The node's LMDB store: the versioned state tree, its values, and the chain's tables (DESIGN §2, §5).

One environment, the named databases of `schema.py`. A block is `stage`d (new root and
every record to write, computed from a read snapshot, nothing written) and then
`commit`ted in ONE write transaction together with its block, commit and tx index, so a
`kill -9` at any instant leaves the store at the last committed version, intact.

LMDB facts this relies on (py-lmdb 3.0): the map is reserved once, large, and never resized
at runtime (resizing invalidates open transactions); `sync=True` fsyncs every commit;
readers are MVCC snapshots, so proofs at version v are served while v+1 is written;
reader slots left by killed processes are reclaimed with `reader_check()` on open; the
same environment may be opened only once per process (lmdb raises otherwise).

Why one module of ~575 lines: the JMT's node writes, the flat table, the stale index and
pruning must change in the same LMDB write transaction; the tree arithmetic is in jmt.py
and jmt_node.py, the table names and key formats in schema.py.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ContextManager, Iterable, Iterator, Mapping, Sequence

import lmdb

from ads_ledger.core.crypto import H
from ads_ledger.core.errors import AdsError, RemoteError
from ads_ledger.core.merkle import PLACEHOLDER, SparseProof
from ads_ledger.node.storage import schema as S
from ads_ledger.node.storage.jmt import (
    MissingNode,
    Subtree,
    TreeBuilder,
    apply_writes,
)
from ads_ledger.node.storage.jmt import (
    prove as jmt_prove,
)
from ads_ledger.node.storage.jmt_node import InternalNode, Node, decode_node, encode_node

__all__ = [
    "Store",
    "Staged",
    "StoreView",
    "StoreError",
    "StaleStageError",
    "VersionUnavailable",
    "InvalidKey",
    "UnknownTable",
    "DEFAULT_KEEP_VERSIONS",
]

DEFAULT_KEEP_VERSIONS = 1000
# Test-only planted bug: "prune_early" deletes records one version too soon.
_MUTANT: str | None = None

_MAP_SIZE = (1 << 40) if sys.maxsize > 2**32 else (1 << 30)  # reserve once; never resize
_BULK_CHUNK = 100_000
VALUE_MEMO = 200_000  # values of the latest committed version remembered for its views, at most


class StoreError(AdsError):
    """The store was used wrongly or its contents are inconsistent (our side's fault)."""


class StaleStageError(StoreError):
    """A staged update was computed on a version that is no longer the latest."""


class UnknownTable(StoreError):
    """A table name that is not one of schema.EXTRA_TABLES."""


class VersionUnavailable(RemoteError):
    """The requested version was pruned or is not written yet."""


class InvalidKey(RemoteError):
    """A state key is empty or longer than LMDB allows (511 bytes)."""


@dataclass(frozen=True)
class Staged:
    """Everything one version writes, computed from the base version's snapshot."""

    base_version: int
    version: int
    root: bytes
    root_version: int | None
    nodes: list[tuple[bytes, bytes]]  # sorted (node key, node bytes)
    stale: list[bytes]  # sorted stale-index keys
    values: list[tuple[bytes, bytes]]  # sorted (value key, value record)
    flat_puts: list[tuple[bytes, bytes]]
    flat_deletes: list[bytes]
    internal_nodes: list[tuple[bytes, InternalNode]]  # to warm the cache after commit

    @property
    def write_count(self) -> int:
        return len(self.values)


class _NodeCache:
    """Decoded nodes by node key, the oldest inserted evicted first. Safe because a node key's
    content never changes. A hit takes no lock and reorders nothing (one C-level dict read):
    a tree update reads a node per level per write, and the nodes every version rewrites (the
    top levels) are inserted anew each block anyway, so insertion order is close to recency."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._d: OrderedDict[bytes, Node] = OrderedDict()
        self._lock = threading.Lock()  # for the writers: insertion and eviction

    def get(self, key: bytes) -> Node | None:
        return self._d.get(key)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def put(self, key: bytes, node: Node) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._d[key] = node
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)


class _TxnReader:
    """A jmt.NodeReader over one LMDB transaction, through the shared cache."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, cache: _NodeCache) -> None:
        self.txn = txn
        self.db = db
        self.cache = cache

    def get_node(self, key: bytes) -> Node:
        node = self.cache.get(key)
        if node is not None:
            return node
        raw = self.txn.get(key, db=self.db)
        if raw is None:
            raise MissingNode(f"node {key.hex()} is not stored")
        node = decode_node(raw)
        if isinstance(node, InternalNode):
            self.cache.put(key, node)  # internal nodes are the hot ones; leaves are many
        return node


def _check_key(key: bytes) -> None:
    if type(key) is not bytes or not 0 < len(key) <= S.MAX_KEY_LEN:
        raise InvalidKey("a state key is 1..511 bytes")


class StoreView:
    """Reads of the state at one version: a `state.context.StateView` (`get(key) -> bytes | None`).

    `values`, when given, is the store's shared memo of that committed version's values: a
    committed version never changes, so every view of it (mempool checks, proposals, block
    checks) reads each key from LMDB once."""

    __slots__ = ("store", "version", "values")

    def __init__(self, store: "Store", version: int, values: dict[bytes, bytes | None] | None = None) -> None:
        self.store = store
        self.version = version
        self.values = values

    def get(self, key: bytes) -> bytes | None:
        memo = self.values
        if memo is None:
            return self.store.get(key, self.version)
        try:
            return memo[key]
        except KeyError:
            pass
        value = self.store.get(key, self.version)
        if len(memo) < VALUE_MEMO:
            memo[key] = value
        return value


class Store:
    """The state tree and chain tables on one LMDB environment. Use `Store.open`.

    Every method opens and ends its own transaction in the calling thread, so a Store may be
    shared by threads (e.g. `trio.to_thread.run_sync`): reads and proofs run on snapshots
    while a commit is written; LMDB serialises the commits."""

    def __init__(
        self, env: lmdb.Environment, dbs: dict[str, lmdb._Database], keep_versions: int, cache: int
    ) -> None:
        self._env = env
        self._dbs = dbs
        self.keep_versions = keep_versions
        self._cache = _NodeCache(cache)
        self._closed = False
        self._local = threading.local()  # .batch: (write txn, internal nodes to cache) of `batch()`
        self._memo: tuple[int, dict[bytes, bytes | None]] = (-1, {})  # (version, its values read)

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        keep_versions: int = DEFAULT_KEEP_VERSIONS,
        node_cache: int = 50_000,
        map_size: int = _MAP_SIZE,
    ) -> "Store":
        """Open (creating if needed) the store in directory `path`, keeping the newest
        `keep_versions` versions (≥ 1) readable and provable. An unfinished bulk load left
        by a crash is wiped. lmdb.Error if the environment is already open in this process."""
        if keep_versions < 1:
            raise ValueError("keep_versions must be at least 1")
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        env = lmdb.open(
            str(p),
            map_size=map_size,
            max_dbs=len(S.ALL_TABLES) + 2,
            max_readers=1024,
            sync=True,
            metasync=True,
            readahead=False,  # random access over a tree larger than the page cache
        )
        try:
            env.reader_check()  # free slots of readers that died with kill -9
            dbs = {name: env.open_db(name.encode()) for name in S.ALL_TABLES}
            with env.begin(write=True) as txn:
                fmt = txn.get(S.META_FORMAT, db=dbs[S.META])
                if fmt is not None and S.from_u64(fmt) not in S.READABLE_FORMATS:
                    raise S.SchemaError(f"store format {S.from_u64(fmt)} is not one of {S.READABLE_FORMATS}")
                if fmt is None or S.from_u64(fmt) != S.FORMAT_VERSION:
                    txn.put(S.META_FORMAT, S.u64(S.FORMAT_VERSION), db=dbs[S.META])
                if txn.get(S.META_BULK, db=dbs[S.META]) is not None:
                    for name in S.TREE_TABLES:
                        txn.drop(dbs[name], delete=False)
                    txn.delete(S.META_BULK, db=dbs[S.META])
        except BaseException:
            env.close()
            raise
        return cls(env, dbs, keep_versions, node_cache)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Several `commit`s in ONE write transaction (block sync): inside the block, this
        thread's reads and `stage` see what the batch wrote so far, other threads see the store
        as before it, and nothing is durable until the block ends; then every version written
        becomes visible at once (one fsync). On an exception nothing of the batch is written
        and the node cache is cleared (it may hold nodes of versions never committed). A
        `kill -9` at any instant leaves the store at a whole committed version: the one before
        the batch, or its last."""
        if getattr(self._local, "batch", None) is not None:
            raise StoreError("store batches do not nest")
        nodes: list[tuple[bytes, InternalNode]] = []
        txn = self._env.begin(write=True)
        self._local.batch = (txn, nodes)
        try:
            yield
        except BaseException:
            self._local.batch = None
            txn.abort()
            self._cache.clear()
            raise
        self._local.batch = None
        try:
            txn.commit()
        except BaseException:
            self._cache.clear()
            raise
        for key, node in nodes:
            self._cache.put(key, node)

    def _read(self) -> ContextManager[lmdb.Transaction[bytes]]:
        """A read snapshot, or this thread's open batch (which sees its own writes)."""
        b = getattr(self._local, "batch", None)
        return self._env.begin() if b is None else contextlib.nullcontext(b[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[lmdb.Transaction[bytes], list[tuple[bytes, InternalNode]] | None]]:
        """(txn, None): a write transaction committed at the end of the block; inside `batch()`,
        (the batch's txn, its list of nodes to cache), committed with the batch."""
        b = getattr(self._local, "batch", None)
        if b is not None:
            yield b
            return
        with self._env.begin(write=True) as txn:
            yield txn, None

    # -- versions --------------------------------------------------------------------------

    def _meta_int(self, txn: lmdb.Transaction[bytes], name: bytes) -> int:
        raw = txn.get(name, db=self._dbs[S.META])
        return 0 if raw is None else S.from_u64(raw)

    def latest_version(self) -> int:
        """The latest committed version; 0 while nothing is written."""
        with self._read() as txn:
            return self._meta_int(txn, S.META_LATEST)

    def meta_int(self, name: bytes) -> int:
        """A u64 `meta` record (0 when absent)."""
        with self._env.begin() as txn:
            return self._meta_int(txn, name)

    def oldest_version(self) -> int:
        """The oldest version still readable and provable (0 while nothing is written)."""
        with self._read() as txn:
            return self._meta_int(txn, S.META_OLDEST)

    def _resolve(self, txn: lmdb.Transaction[bytes], version: int | None) -> tuple[int, int]:
        """(version, latest); VersionUnavailable unless the version is retained."""
        latest = self._meta_int(txn, S.META_LATEST)
        v = latest if version is None else version
        if v == latest:  # the latest is always retained (0: nothing written yet)
            return v, latest
        if not self._meta_int(txn, S.META_OLDEST) <= v <= latest:
            raise VersionUnavailable(f"version {v} is not retained (latest {latest})")
        return v, latest

    def _root_record(self, txn: lmdb.Transaction[bytes], v: int) -> tuple[bytes, int | None]:
        if v == 0:
            return PLACEHOLDER, None
        raw = txn.get(S.u64(v), db=self._dbs[S.ROOTS])
        if raw is None:
            raise StoreError(f"no root recorded for retained version {v}")
        return S.decode_root(raw)

    def root(self, version: int | None = None) -> bytes:
        """The state root at `version` (default latest; the placeholder for an empty store)."""
        with self._read() as txn:
            v, _ = self._resolve(txn, version)
            return self._root_record(txn, v)[0]

    # -- reads -----------------------------------------------------------------------------

    def _get(self, txn: lmdb.Transaction[bytes], key: bytes, v: int, latest: int) -> bytes | None:
        if v == 0:
            return None
        if v == latest:
            raw = txn.get(key, db=self._dbs[S.FLAT])
            return None if raw is None else S.decode_flat(raw)[1]
        kh = H(key)
        with txn.cursor(db=self._dbs[S.VALUES]) as cur:
            if not cur.set_range(S.value_key(kh, v)) or cur.key()[:32] != kh:
                return None
            return S.decode_value_record(cur.value())

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        """The value of `key` at `version` (default latest), None if absent."""
        _check_key(key)
        with self._read() as txn:
            v, latest = self._resolve(txn, version)
            return self._get(txn, key, v, latest)

    def prove(self, key: bytes, version: int | None = None) -> tuple[bytes | None, SparseProof]:
        """(value, proof) of `key` at `version`; the proof verifies against root(version)."""
        _check_key(key)
        with self._read() as txn:
            v, latest = self._resolve(txn, version)
            _, root_version = self._root_record(txn, v)
            kh = H(key)
            proof, leaf = jmt_prove(self._reader(txn), root_version, kh)
            if leaf is None or leaf.key_hash != kh:
                return None, proof
            value = self._get(txn, key, v, latest)
            if value is None or H(value) != leaf.value_hash:
                raise StoreError(f"value of {key!r} at version {v} does not match its leaf")
            return value, proof

    def view(self, version: int | None = None) -> StoreView:
        """A fixed-version reader (default: the latest at this moment). A view of the latest
        committed version shares one memo of values read (not inside a batch, whose versions
        are not committed yet and may never be)."""
        with self._read() as txn:
            v, latest = self._resolve(txn, version)
        if v != latest or v == 0 or getattr(self._local, "batch", None) is not None:
            return StoreView(self, v)
        memo = self._memo
        if memo[0] != v:
            memo = (v, {})
            self._memo = memo  # one atomic swap: a thread holding the old dict keeps its version's
        return StoreView(self, v, memo[1])

    def scan_prefix(self, prefix: bytes, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        """Latest (key, value) pairs whose key starts with `prefix`, in key order, at most `limit`."""
        out: list[tuple[bytes, bytes]] = []
        with self._read() as txn, txn.cursor(db=self._dbs[S.FLAT]) as cur:
            ok = cur.set_range(prefix) if prefix else cur.first()
            while ok and len(out) < limit:
                k = cur.key()
                if not k.startswith(prefix):
                    break
                out.append((k, S.decode_flat(cur.value())[1]))
                ok = cur.next()
        return out

    def _table(self, table: str) -> lmdb._Database:
        if table not in S.EXTRA_TABLES:
            raise UnknownTable(f"{table!r} is not one of {S.EXTRA_TABLES}")
        return self._dbs[table]

    def read(self, table: str, key: bytes) -> bytes | None:
        """One record of an extra table (`blocks`, `commits`, `txs`)."""
        with self._read() as txn:
            return txn.get(key, db=self._table(table))

    def read_many(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Records of an extra table for each key, None where absent: one read transaction."""
        db = self._table(table)
        with self._env.begin() as txn:
            return [txn.get(k, db=db) for k in keys]

    def items(
        self, table: str, start: bytes = b"", limit: int = 1000, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """Records of an extra table in key order from `start` (reverse: downwards from the
        last key ≤ start, or from the end when start is empty), at most `limit`."""
        out: list[tuple[bytes, bytes]] = []
        with self._read() as txn, txn.cursor(db=self._table(table)) as cur:
            if not reverse:
                ok = cur.set_range(start) if start else cur.first()
                while ok and len(out) < limit:
                    out.append((cur.key(), cur.value()))
                    ok = cur.next()
                return out
            if not start:
                ok = cur.last()
            elif cur.set_range(start):
                ok = cur.key() == start or cur.prev()
            else:
                ok = cur.last()
            while ok and len(out) < limit:
                out.append((cur.key(), cur.value()))
                ok = cur.prev()
        return out

    def keys(self, table: str, start: bytes, stop: bytes, limit: int = 1000) -> list[bytes]:
        """Keys of an extra table in [start, stop), in order, at most `limit` (values unread)."""
        out: list[bytes] = []
        with self._env.begin() as txn, txn.cursor(db=self._table(table)) as cur:
            ok = cur.set_range(start)
            while ok and len(out) < limit:
                k = cur.key()
                if k >= stop:
                    break
                out.append(k)
                ok = cur.next()
        return out

    def table_sizes(self) -> dict[str, int]:
        """Record count per named database."""
        with self._read() as txn:
            return {name: txn.stat(db)["entries"] for name, db in self._dbs.items()}

    def _reader(self, txn: lmdb.Transaction[bytes]) -> _TxnReader:
        return _TxnReader(txn, self._dbs[S.NODES], self._cache)

    # -- writes ----------------------------------------------------------------------------

    def stage(self, writes: Mapping[bytes, bytes | None], version: int) -> Staged:
        """Compute version `version` (= latest + 1) as the latest state plus `writes`
        (None deletes). Writes nothing. StaleStageError for any other version; InvalidKey
        for a bad key (nothing is staged then)."""
        for key, value in writes.items():
            _check_key(key)
            if value is not None and type(value) is not bytes:
                raise TypeError("state values are bytes")
        with self._read() as txn:
            latest = self._meta_int(txn, S.META_LATEST)
            if version != latest + 1:
                raise StaleStageError(f"stage version {version} on latest {latest}")
            _, root_version = self._root_record(txn, latest)
            tree: dict[bytes, bytes | None] = {}
            values: list[tuple[bytes, bytes]] = []
            stale: list[bytes] = []
            flat_puts: list[tuple[bytes, bytes]] = []
            flat_deletes: list[bytes] = []
            flat = self._dbs[S.FLAT]
            for key, value in writes.items():
                cur = txn.get(key, db=flat)
                kh = H(key)
                vkey = S.value_key(kh, version)
                if value is None:
                    if cur is None:
                        continue
                    tree[kh] = None
                    flat_deletes.append(key)
                    stale.append(S.stale_value_key(version, vkey))  # a tombstone shadows only what it supersedes
                else:
                    if cur is not None and cur[8:] == value:
                        continue
                    tree[kh] = H(value)
                    flat_puts.append((key, S.encode_flat(version, value)))
                values.append((vkey, S.encode_value_record(value)))
                if cur is not None:
                    stale.append(S.stale_value_key(version, S.value_key(kh, S.from_u64(cur[:8]))))
            up = apply_writes(self._reader(txn), root_version, version, tree)
        stale.extend(S.stale_node_key(version, k) for k in up.stale)
        nodes = sorted((k, encode_node(n)) for k, n in up.new_nodes.items())
        internal = [(k, n) for k, n in up.new_nodes.items() if isinstance(n, InternalNode)]
        return Staged(
            base_version=latest,
            version=version,
            root=up.root_hash,
            root_version=up.root_version,
            nodes=nodes,
            stale=sorted(stale),
            values=sorted(values),
            flat_puts=sorted(flat_puts),
            flat_deletes=flat_deletes,
            internal_nodes=internal,
        )

    def commit(
        self,
        staged: Staged,
        extra: Mapping[str, Sequence[tuple[bytes, bytes | None]]] | None = None,
        meta: Mapping[bytes, int] | None = None,
    ) -> None:
        """Write `staged`, the `extra` records (table -> [(key, value or None to
        delete)]) and the u64 `meta` records (name -> value; not the store's own `latest`,
        `oldest`, `format`, `bulk_load`) in one write transaction, then prune versions older
        than the newest `keep_versions`. StaleStageError if the latest version moved since `stage`;
        UnknownTable for an extra table not in schema.EXTRA_TABLES (nothing is written)."""
        extra = extra or {}
        tables = {name: self._table(name) for name in extra}
        meta = meta or {}
        if set(meta) & _OWN_META:
            raise ValueError("the store's own meta records are not written through commit")
        d = self._dbs
        with self._write() as (txn, batch):
            latest = self._meta_int(txn, S.META_LATEST)
            if latest != staged.base_version:
                raise StaleStageError(
                    f"staged on version {staged.base_version}, latest is now {latest}"
                )
            v = staged.version
            with txn.cursor(db=d[S.NODES]) as cur:
                cur.putmulti(staged.nodes, append=True)  # version-prefixed: right edge
            with txn.cursor(db=d[S.STALE]) as cur:
                cur.putmulti([(k, b"") for k in staged.stale], append=True)
            with txn.cursor(db=d[S.VALUES]) as cur:
                cur.putmulti(staged.values)
            with txn.cursor(db=d[S.FLAT]) as cur:
                cur.putmulti(staged.flat_puts)
            for key in staged.flat_deletes:
                txn.delete(key, db=d[S.FLAT])
            txn.put(S.u64(v), S.encode_root(staged.root, staged.root_version), db=d[S.ROOTS])
            txn.put(S.META_LATEST, S.u64(v), db=d[S.META])
            if self._meta_int(txn, S.META_OLDEST) == 0:
                txn.put(S.META_OLDEST, S.u64(v), db=d[S.META])
            for name, records in extra.items():
                for key, value in records:
                    if value is None:
                        txn.delete(key, db=tables[name])
                    else:
                        txn.put(key, value, db=tables[name])
            for name_, n in meta.items():
                txn.put(name_, S.u64(n), db=d[S.META])
            self._prune(txn, v)
        if batch is not None:
            batch.extend(staged.internal_nodes)  # cached once the batch is committed
            return
        for key, node in staged.internal_nodes:
            self._cache.put(key, node)

    def _prune(self, txn: lmdb.Transaction[bytes], latest: int) -> None:
        """Drop what only versions below latest − keep_versions + 1 use."""
        d = self._dbs
        prev_oldest = self._meta_int(txn, S.META_OLDEST)
        oldest = max(prev_oldest, latest - self.keep_versions + 1)
        if oldest <= prev_oldest:
            return
        limit = oldest + 1 if _MUTANT == "prune_early" else oldest
        with txn.cursor(db=d[S.STALE]) as cur:
            cur.first()
            while True:
                sk = cur.key()  # b"" once the cursor ran off the end
                if not sk or int.from_bytes(sk[:8], "big") > limit:
                    break
                kind, rec = sk[8:9], sk[9:]
                txn.delete(rec, db=d[S.NODES] if kind == b"n" else d[S.VALUES])
                cur.delete()  # and move to the next record
        for ver in range(prev_oldest, oldest):
            txn.delete(S.u64(ver), db=d[S.ROOTS])
        txn.put(S.META_OLDEST, S.u64(oldest), db=d[S.META])

    def bulk_load(self, items: Iterable[tuple[bytes, bytes]], version: int = 1) -> bytes:
        """Load `items` (key, value) into an EMPTY store as version `version` and return its
        root. Values go in sorted chunks; the tree is then built bottom-up one key-hash
        bucket at a time, its nodes appended in key order. A crash midway leaves a marker
        that makes the next `open` wipe the partial load. Duplicate keys: the last wins."""
        d = self._dbs
        if self.latest_version() != 0 or version < 1:
            raise StoreError("bulk_load needs an empty store and a version ≥ 1")
        with self._env.begin(write=True) as txn:
            txn.put(S.META_BULK, S.u64(version), db=d[S.META])
        flat: list[tuple[bytes, bytes]] = []
        vals: list[tuple[bytes, bytes]] = []

        def flush() -> None:
            with self._env.begin(write=True) as txn:
                # stable sorts by key only: of duplicate keys, the last one given wins
                flat_sorted: list[tuple[bytes, bytes]] = sorted(flat, key=_first)
                vals_sorted: list[tuple[bytes, bytes]] = sorted(vals, key=_first)
                with txn.cursor(db=d[S.FLAT]) as cur:
                    cur.putmulti(flat_sorted)
                with txn.cursor(db=d[S.VALUES]) as cur:
                    cur.putmulti(vals_sorted)
            flat.clear()
            vals.clear()

        ver8 = S.u64(version)
        for key, value in items:
            _check_key(key)
            flat.append((key, ver8 + value))
            vals.append((S.value_key(H(key), version), S.encode_value_record(value)))
            if len(flat) >= _BULK_CHUNK:
                flush()
        flush()
        builder = TreeBuilder(_NoNodes(), version)
        top: dict[int, Subtree] = {}
        for hi in range(16):
            mids: dict[int, Subtree] = {}
            for lo in range(16):
                mids[lo] = builder.build(bytes((hi, lo)), self._bucket(hi << 4 | lo))
            top[hi] = builder.assemble(bytes((hi,)), None, mids)
            self._write_nodes(builder, append=True)
        up = builder.finish(builder.assemble(b"", None, top), None)
        self._write_nodes(builder, append=False)
        with self._env.begin(write=True) as txn:
            txn.put(S.u64(version), S.encode_root(up.root_hash, up.root_version), db=d[S.ROOTS])
            txn.put(S.META_LATEST, S.u64(version), db=d[S.META])
            txn.put(S.META_OLDEST, S.u64(version), db=d[S.META])
            txn.delete(S.META_BULK, db=d[S.META])
        return up.root_hash

    def _bucket(self, first: int) -> list[tuple[bytes, bytes]]:
        """(key_hash, value_hash) of every stored value whose key hash starts with byte `first`."""
        out: list[tuple[bytes, bytes]] = []
        with self._read() as txn, txn.cursor(db=self._dbs[S.VALUES]) as cur:
            ok = cur.set_range(bytes((first,)))
            while ok:
                k = cur.key()
                if k[0] != first:
                    break
                value = S.decode_value_record(cur.value())
                assert value is not None
                out.append((k[:32], H(value)))
                ok = cur.next()
        return out

    def _write_nodes(self, builder: TreeBuilder, append: bool) -> None:
        nodes = sorted((k, encode_node(n)) for k, n in builder.new_nodes.items())
        builder.new_nodes.clear()
        with self._env.begin(write=True) as txn, txn.cursor(db=self._dbs[S.NODES]) as cur:
            cur.putmulti(nodes, append=append)


_OWN_META = frozenset({S.META_LATEST, S.META_OLDEST, S.META_FORMAT, S.META_BULK})


def _first(item: tuple[bytes, bytes]) -> bytes:
    return item[0]


class _NoNodes:
    """A bulk load builds from nothing: no node is ever read."""

    def get_node(self, key: bytes) -> Node:
        raise MissingNode(key.hex())
