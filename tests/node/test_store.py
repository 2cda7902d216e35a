"""The LMDB store: versions, reads, extra tables, bulk load, pruning, typed refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import lmdb
import pytest

from ads_ledger.core.errors import RemoteError
from ads_ledger.core.merkle import PLACEHOLDER, verify_proof
from ads_ledger.node.storage import schema
from ads_ledger.node.storage import store as store_mod
from ads_ledger.node.storage.jmt import MemoryTree
from ads_ledger.node.storage.store import (
    InvalidKey,
    StaleStageError,
    Store,
    StoreError,
    UnknownTable,
    VersionUnavailable,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "s", keep_versions=50) as s:
        yield s


def put(s: Store, writes: dict[bytes, bytes | None], **extra: list[tuple[bytes, bytes | None]]) -> bytes:
    staged = s.stage(writes, s.latest_version() + 1)
    s.commit(staged, extra)
    return staged.root


def test_empty_store(store: Store) -> None:
    assert store.latest_version() == 0
    assert store.root() == PLACEHOLDER
    value, proof = store.prove(b"acct/x")
    assert value is None and verify_proof(PLACEHOLDER, b"acct/x", None, proof)
    assert store.get(b"acct/x") is None and store.view().get(b"acct/x") is None
    with pytest.raises(VersionUnavailable):
        store.root(1)


def test_stage_writes_nothing_and_checks_version(store: Store) -> None:
    with pytest.raises(StaleStageError):
        store.stage({b"a": b"1"}, 2)
    staged = store.stage({b"a": b"1"}, 1)
    assert staged.root != PLACEHOLDER
    assert store.latest_version() == 0 and store.get(b"a") is None
    store.commit(staged)
    assert store.root() == staged.root and store.get(b"a") == b"1"
    with pytest.raises(StaleStageError):
        store.commit(staged)  # the same staged block twice


def test_values_at_older_versions(store: Store) -> None:
    r1 = put(store, {b"k": b"one", b"other": b"x"})
    r2 = put(store, {b"k": None})
    r3 = put(store, {b"k": b"three"})
    put(store, {b"unrelated": b"u"})
    for v, root, expect in [(1, r1, b"one"), (2, r2, None), (3, r3, b"three"), (4, None, b"three")]:
        assert store.get(b"k", v) == expect
        value, proof = store.prove(b"k", v)
        assert value == expect
        assert verify_proof(store.root(v), b"k", value, proof)
        if root is not None:
            assert store.root(v) == root
    view = store.view(2)
    put(store, {b"k": b"five"})
    assert view.get(b"k") is None and view.get(b"other") == b"x"
    with pytest.raises(VersionUnavailable):
        store.get(b"k", 6)


def test_extra_tables(store: Store) -> None:
    h = schema.height_key
    txid = b"\x11" * 32
    put(
        store,
        {b"a": b"1"},
        blocks=[(h(1), b"block1")],
        commits=[(h(1), b"commit1")],
        txs=[(txid, schema.encode_tx_location(1, 0))],
    )
    put(store, {b"a": b"2"}, blocks=[(h(2), b"block2")])
    assert store.read("blocks", h(2)) == b"block2"
    assert schema.decode_tx_location(store.read("txs", txid) or b"") == (1, 0)
    assert store.items("blocks") == [(h(1), b"block1"), (h(2), b"block2")]
    assert store.items("blocks", reverse=True, limit=1) == [(h(2), b"block2")]
    assert store.items("blocks", start=h(2), reverse=True) == [(h(2), b"block2"), (h(1), b"block1")]
    assert store.items("blocks", start=h(9), reverse=True, limit=1) == [(h(2), b"block2")]
    put(store, {}, blocks=[(h(1), None)])
    assert store.read("blocks", h(1)) is None
    staged = store.stage({b"a": b"3"}, 4)
    with pytest.raises(UnknownTable):
        store.commit(staged, {"flat": [(b"a", b"evil")]})
    assert store.latest_version() == 3 and store.get(b"a") == b"2"
    with pytest.raises(UnknownTable):
        store.read("nodes", b"")


def test_invalid_keys_are_refused(store: Store) -> None:
    for bad in [b"", b"x" * 512]:
        with pytest.raises(InvalidKey):
            store.stage({b"fine": b"1", bad: b"v"}, 1)
        with pytest.raises(InvalidKey):
            store.get(bad)
    assert issubclass(InvalidKey, RemoteError) and issubclass(VersionUnavailable, RemoteError)
    assert store.latest_version() == 0


def test_scan_prefix(store: Store) -> None:
    put(store, {b"cp/1": b"a", b"cp/2": b"b", b"acct/1": b"c", b"cq": b"d"})
    put(store, {b"cp/2": None})
    assert store.scan_prefix(b"cp/") == [(b"cp/1", b"a")]
    assert [k for k, _ in store.scan_prefix(b"")] == [b"acct/1", b"cp/1", b"cq"]
    assert len(store.scan_prefix(b"", limit=2)) == 2


def test_pruning_keeps_storage_bounded(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p", keep_versions=2) as s:
        keys = [b"k%d" % i for i in range(40)]
        for v in range(1, 31):
            put(s, {k: b"%d" % v for k in keys[v % 3 :: 3]} | {keys[v % 40]: None})
        sizes = s.table_sizes()
        assert s.oldest_version() == 29
        assert sizes["roots"] == 2
        assert sizes["values"] <= 3 * len(keys)
        one_version_nodes = MemoryTree()
        one_version_nodes.update({k: v for k, v in s.scan_prefix(b"")})
        assert sizes["nodes"] <= 3 * one_version_nodes.node_count()
        for v in (1, 28):
            with pytest.raises(VersionUnavailable):
                s.prove(b"k1", v)
        value, proof = s.prove(b"k1", 29)
        assert verify_proof(s.root(29), b"k1", value, proof)


def test_bulk_load_then_updates(tmp_path: Path) -> None:
    items = {b"acct/%d" % i: b"v%d" % (i * 7) for i in range(3000)}
    with Store.open(tmp_path / "b", keep_versions=5) as s:
        root = s.bulk_load(iter(items.items()), 1)
        mem = MemoryTree()
        assert root == mem.update(items) == s.root(1)
        with pytest.raises(StoreError):
            s.bulk_load([(b"x", b"y")], 2)
        change = {b"acct/5": None, b"acct/6": b"new", b"fresh": b"f"}
        assert put(s, change) == mem.update(change)
        for k in [b"acct/5", b"acct/6", b"fresh", b"acct/2999", b"nope"]:
            value, proof = s.prove(k)
            assert value == mem.get(k) and proof == mem.prove(k)
            assert verify_proof(s.root(), k, value, proof)
        assert s.get(b"acct/5", 1) == items[b"acct/5"]


def test_bulk_load_of_one_key(tmp_path: Path) -> None:
    with Store.open(tmp_path / "one") as s:
        mem = MemoryTree()
        assert s.bulk_load([(b"only", b"1")], 1) == mem.update({b"only": b"1"})
        assert put(s, {b"second": b"2"}) == mem.update({b"second": b"2"})


def test_interrupted_bulk_load_is_wiped_on_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_BULK_CHUNK", 100)

    def items() -> Iterator[tuple[bytes, bytes]]:
        for i in range(250):
            yield b"k%d" % i, b"v"
        raise KeyboardInterrupt  # the process dies midway

    path = tmp_path / "w"
    with Store.open(path) as s:
        with pytest.raises(KeyboardInterrupt):
            s.bulk_load(items(), 1)
        assert s.table_sizes()["flat"] == 200  # two chunks landed
    with Store.open(path) as s:
        assert s.latest_version() == 0
        assert all(n == 0 for t, n in s.table_sizes().items() if t in schema.TREE_TABLES)
        assert s.bulk_load([(b"a", b"b")], 1) == MemoryTree().update({b"a": b"b"})


def test_open_twice_in_one_process_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t"):
        with pytest.raises(lmdb.Error):
            Store.open(tmp_path / "t")


def test_keep_versions_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store.open(tmp_path / "k", keep_versions=0)


def test_bulk_load_duplicate_keys_last_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_BULK_CHUNK", 2)  # duplicates within and across chunks
    items = [(b"a", b"9"), (b"a", b"1"), (b"b", b"2"), (b"c", b"0"), (b"a", b"3"), (b"c", b"5")]
    with Store.open(tmp_path / "d") as s:
        root = s.bulk_load(items, 1)
        assert root == MemoryTree().update({b"a": b"3", b"b": b"2", b"c": b"5"})
        assert [s.get(k) for k in (b"a", b"b", b"c")] == [b"3", b"2", b"5"]
        value, proof = s.prove(b"a")
        assert value == b"3" and verify_proof(root, b"a", value, proof)


def test_proofs_served_while_another_thread_commits(tmp_path: Path) -> None:
    import threading

    with Store.open(tmp_path / "mvcc", keep_versions=1000) as s:
        put(s, {b"k%d" % i: b"0" for i in range(200)})
        errors: list[BaseException] = []
        stop = threading.Event()

        def writer() -> None:
            try:
                for n in range(1, 40):
                    if stop.is_set():
                        return
                    put(s, {b"k%d" % i: b"%d" % n for i in range(n % 7, 200, 5)})
            except BaseException as e:  # surfaced to the test below
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        checked = 0
        try:
            while t.is_alive() and checked < 2000:
                v = s.latest_version()
                root = s.root(v)
                for i in range(0, 200, 37):
                    key = b"k%d" % i
                    value, proof = s.prove(key, v)
                    assert value is not None and verify_proof(root, key, value, proof)
                    checked += 1
        finally:
            stop.set()
            t.join(timeout=60)
        assert not errors, errors
        assert checked > 0 and s.latest_version() > 1


def test_views_of_the_latest_version_share_one_memo_that_never_goes_stale(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, {b"a": b"1", b"b": b"2"})
    v1 = store.view()
    reads: list[bytes] = []
    real_get = Store.get
    monkeypatch.setattr(
        Store, "get", lambda self, key, version=None: reads.append(key) or real_get(self, key, version)
    )
    assert v1.get(b"a") == b"1" and v1.get(b"zz") is None
    assert store.view().get(b"a") == b"1" and store.view().get(b"zz") is None  # a second view: no LMDB read
    assert reads == [b"a", b"zz"]
    put(store, {b"a": b"9", b"b": None})
    v2 = store.view()
    assert v2.values is not v1.values  # a new version starts a new memo
    assert (v2.get(b"a"), v2.get(b"b")) == (b"9", None)
    assert (v1.get(b"a"), v1.get(b"b")) == (b"1", b"2")  # the old view still reads its own version
    assert store.view(1).values is None  # not the latest: read through, no memo
    assert store.view(1).get(b"a") == b"1"


def test_a_view_inside_a_batch_has_no_memo(store: Store) -> None:
    """A batch's versions are not committed and may never be: nothing read there is remembered."""
    put(store, {b"a": b"1"})
    with pytest.raises(RuntimeError):
        with store.batch():
            staged = store.stage({b"a": b"2"}, 2)
            store.commit(staged)
            inside = store.view()
            assert inside.version == 2 and inside.values is None and inside.get(b"a") == b"2"
            raise RuntimeError("abandon the batch")
    after = store.view()
    assert after.version == 1 and after.get(b"a") == b"1"
