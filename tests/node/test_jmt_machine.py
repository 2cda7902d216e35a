"""The tree on LMDB against a plain dict (Hypothesis stateful testing), and proof that this
test catches planted bugs.

Budget (default suite): the clean machine runs CLEAN max_examples × STEPS steps; each mutant
run uses MUTANT settings (derandomized, so it is deterministic) and must fail. About 10-20 s in
all on a loaded 2-core machine.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ads_ledger.core.crypto import H
from ads_ledger.core.errors import AdsError
from ads_ledger.core.merkle import verify_proof
from ads_ledger.node.storage import jmt
from ads_ledger.node.storage import store as store_mod
from ads_ledger.node.storage.jmt import MemoryTree
from ads_ledger.node.storage.store import StaleStageError, Store, VersionUnavailable

KEEP = 3
STEPS = 40
CLEAN = settings(
    max_examples=50,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MUTANT = settings(
    max_examples=60,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # we only need to know it fails; skip shrinking
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _keys_with_prefix(bits: int, count: int, tag: bytes) -> list[bytes]:
    """`count` keys whose hashes share their first `bits` bits with H(tag‖0): deep paths."""
    out: list[bytes] = []
    target = int.from_bytes(H(tag + b"0"), "big") >> (256 - bits)
    i = 0
    while len(out) < count:
        k = tag + b"%d" % i
        if int.from_bytes(H(k), "big") >> (256 - bits) == target:
            out.append(k)
        i += 1
    return out


# Spread keys, plus clusters whose hashes share 8 and 12 leading bits so that paths run
# through several 16-ary nodes and lone leaves have to move up and down.
POOL = (
    [b"k%d" % i for i in range(20)]
    + _keys_with_prefix(8, 8, b"a/")
    + _keys_with_prefix(12, 5, b"b/")
)
keys = st.sampled_from(POOL)
values = st.sampled_from([b"", b"v1", b"v2", b"\x00" * 40])
batches = st.dictionaries(keys, st.one_of(st.none(), values), max_size=12)


class TreeVsDict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="jmt-machine-")
        self.store = Store.open(self.dir, keep_versions=KEEP, node_cache=64)
        self.model: dict[bytes, bytes] = {}
        self.history: dict[int, tuple[bytes, dict[bytes, bytes]]] = {}  # version -> (root, state)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(start=st.dictionaries(keys, values, max_size=20))
    def maybe_bulk_load(self, start: dict[bytes, bytes]) -> None:
        if start:  # half the runs start from a bulk-loaded genesis
            root = self.store.bulk_load(iter(start.items()), 1)
            self.model = dict(start)
            self.history[1] = (root, dict(start))

    @property
    def version(self) -> int:
        return len(self.history)

    @rule(batch=batches)
    def commit(self, batch: dict[bytes, bytes | None]) -> None:
        staged = self.store.stage(batch, self.version + 1)
        self.store.commit(staged, {"blocks": [(staged.version.to_bytes(8, "big"), b"b")]})
        for k, v in batch.items():
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v
        self.history[staged.version] = (staged.root, dict(self.model))

    @rule(batch=batches)
    def stage_and_discard(self, batch: dict[bytes, bytes | None]) -> None:
        before = self.store.root()
        self.store.stage(batch, self.version + 1)
        assert self.store.root() == before and self.store.latest_version() == self.version

    @rule(first=batches, second=batches)
    def racing_stages(self, first: dict[bytes, bytes | None], second: dict[bytes, bytes | None]) -> None:
        a = self.store.stage(first, self.version + 1)
        b = self.store.stage(second, self.version + 1)
        self.commit(first)
        assert self.store.root() == a.root
        with pytest.raises(StaleStageError):
            self.store.commit(b)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store.open(self.dir, keep_versions=KEEP, node_cache=64)

    @invariant()
    def latest_matches_dict(self) -> None:
        assert self.store.latest_version() == self.version
        expected = MemoryTree()
        expected.update(self.model)
        root = self.store.root()
        assert root == expected.root()
        for k in POOL:
            value, proof = self.store.prove(k)
            assert value == self.model.get(k)
            assert self.store.get(k) == value
            assert verify_proof(root, k, value, proof), (k, value)
            wrong = b"not" if value is None else None  # a proof never vouches for another value
            assert not verify_proof(root, k, wrong, proof)

    @invariant()
    def retained_versions_prove(self) -> None:
        for v in range(max(1, self.version - KEEP + 1), self.version):
            root, state = self.history[v]
            assert self.store.root(v) == root
            view = self.store.view(v)
            for k in POOL[::3]:
                value, proof = self.store.prove(k, v)
                assert value == state.get(k) == view.get(k)
                assert verify_proof(root, k, value, proof)

    @precondition(lambda self: self.version > KEEP)
    @invariant()
    def pruned_versions_are_gone(self) -> None:
        gone = self.version - KEEP
        with pytest.raises(VersionUnavailable):
            self.store.root(gone)
        with pytest.raises(VersionUnavailable):
            self.store.prove(POOL[0], gone)
        sizes = self.store.table_sizes()
        assert sizes["roots"] == KEEP
        # every superseded value/node that only pruned versions used is deleted
        assert sizes["values"] <= len(POOL) * KEEP + len(POOL)


def test_tree_matches_dict() -> None:
    run_state_machine_as_test(TreeVsDict, settings=CLEAN)


@pytest.fixture
def planted() -> Iterator[Callable[[Any, str], None]]:
    touched: list[Any] = []

    def plant(module: Any, name: str) -> None:
        module._MUTANT = name
        touched.append(module)

    yield plant
    for module in touched:
        module._MUTANT = None


@pytest.mark.parametrize(
    "module,name",
    [(jmt, "sibling_order"), (jmt, "no_collapse"), (store_mod, "prune_early")],
    ids=["jmt-sibling_order", "jmt-no_collapse", "store-prune_early"],
)
def test_machine_catches_planted_bug(
    planted: Callable[[Any, str], None], module: Any, name: str
) -> None:
    planted(module, name)
    with pytest.raises((AssertionError, AdsError)):
        run_state_machine_as_test(TreeVsDict, settings=MUTANT)
