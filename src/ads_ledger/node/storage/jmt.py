"""Jellyfish-compatible sparse Merkle tree: versioned batch updates and proofs (DESIGN §5).

Pure logic over an abstract `NodeReader`; no storage in here (`store.py` puts it on LMDB,
`MemoryTree` keeps it in a dict).

Nodes are stored 16-ary, as JMT does: a node covers 4 levels of the binary tree, so a
lookup or update touches ~6 nodes instead of ~24 and an update writes ~4x fewer records.
The hashes are exactly the binary tree's (see `jmt_node`), so proofs are binary and
`merkle.verify_proof` checks them. Node keys are `(version, nibble path)`; a batch at
version V writes its new nodes under V and lists the nodes it replaced as stale since V.

Invariants kept by every update: an internal node holds at least two leaves below it (a
lone leaf moves up to the shallowest node where it is alone); an internal node may have a
single internal child (a chain over a shared prefix), as in JMT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from ads_ledger.core.crypto import H
from ads_ledger.core.errors import AdsError
from ads_ledger.core.merkle import PLACEHOLDER, SparseProof, leaf_hash
from ads_ledger.node.storage.jmt_node import InternalNode, LeafNode, Node, nibble
from ads_ledger.node.storage.schema import node_key, node_key_version

__all__ = [
    "NodeReader",
    "MissingNode",
    "TreeUpdate",
    "apply_writes",
    "prove",
    "TreeBuilder",
    "Subtree",
    "MemoryTree",
]

# Test-only planted bugs (tests/test_jmt_machine.py proves the tests catch them):
#   "sibling_order": proofs list one node's siblings bottom-up instead of root-downwards;
#   "no_collapse":   a leaf left alone in an internal node is not moved up.
_MUTANT: str | None = None


class MissingNode(AdsError):
    """A node the tree refers to is absent from storage (pruned version, or corruption)."""


class NodeReader(Protocol):
    def get_node(self, key: bytes) -> Node:
        """The node stored under `key`; MissingNode if there is none."""
        ...


@dataclass
class TreeUpdate:
    """What a batch does to the tree, computed without writing anything.

    `root_version` is the version of the root node's key (None: the tree is empty);
    `new_nodes` maps node keys to nodes to write; `stale` lists node keys that versions
    from `version` on no longer use."""

    version: int
    root_hash: bytes
    root_version: int | None
    new_nodes: dict[bytes, Node] = field(default_factory=dict)
    stale: list[bytes] = field(default_factory=list)


class _Leaf:
    """A subtree that is one leaf, not yet placed; `origin` is its current node key, if any."""

    __slots__ = ("kh", "vh", "origin", "unchanged")

    def __init__(self, kh: bytes, vh: bytes, origin: bytes | None, unchanged: bool) -> None:
        self.kh = kh
        self.vh = vh
        self.origin = origin
        self.unchanged = unchanged


class _Inner:
    """A subtree rooted at an internal node already keyed at `version`."""

    __slots__ = ("version", "hash", "unchanged")

    def __init__(self, version: int, hash_: bytes, unchanged: bool) -> None:
        self.version = version
        self.hash = hash_
        self.unchanged = unchanged


Subtree = _Leaf | _Inner | None  # what a subtree became: nothing, a lone leaf, or a node
_Sub = Subtree
_Writes = list[tuple[bytes, bytes | None]]


def _groups(items: _Writes, depth: int) -> list[tuple[int, _Writes]]:
    """Split items sorted by key hash into runs sharing nibble `depth`."""
    out: list[tuple[int, _Writes]] = []
    cur = -1
    run: _Writes = []
    i, low = depth >> 1, depth & 1  # nibble() inlined: this loop runs for every write at every level
    for item in items:
        b = item[0][i]
        n = b & 15 if low else b >> 4
        if n != cur:
            run = []
            out.append((n, run))
            cur = n
        run.append(item)
    return out


class TreeBuilder:
    """Builds one version's new nodes. Used by `apply_writes` and by bulk loads, which
    assemble subtrees bucket by bucket (see `build`, `assemble`, `finish`)."""

    def __init__(self, reader: NodeReader, version: int) -> None:
        self.reader = reader
        self.version = version
        self.new_nodes: dict[bytes, Node] = {}
        self.stale: list[bytes] = []

    def build(self, path: bytes, items: list[tuple[bytes, bytes]]) -> _Sub:
        """A fresh subtree at `path` holding `items` (sorted by key hash, all distinct)."""
        if not items:
            return None
        if len(items) == 1:
            return _Leaf(items[0][0], items[0][1], None, False)
        subs: dict[int, _Sub] = {}
        for n, run in _groups(items, len(path)):  # type: ignore[arg-type]
            subs[n] = self.build(path + bytes((n,)), run)  # type: ignore[arg-type]
        return self.assemble(path, None, subs)

    def update(self, path: bytes, key: bytes | None, node: Node | None, writes: _Writes) -> _Sub:
        """The subtree at `path` (currently `node`, stored under `key`) after `writes`."""
        if node is None:
            return self.build(path, [(k, v) for k, v in writes if v is not None])
        if isinstance(node, LeafNode):
            if len(writes) == 1 and writes[0][0] == node.key_hash:  # the common case: its own key
                v = writes[0][1]
                if v == node.value_hash:
                    return _Leaf(node.key_hash, v, key, True)
                assert key is not None
                self.stale.append(key)
                return None if v is None else _Leaf(node.key_hash, v, None, False)
            merged = {node.key_hash: node.value_hash}
            for k, v in writes:
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            if len(merged) == 1 and merged.get(node.key_hash) == node.value_hash:
                return _Leaf(node.key_hash, node.value_hash, key, True)
            assert key is not None
            self.stale.append(key)
            return self.build(path, sorted(merged.items()))
        assert key is not None
        subs: dict[int, _Sub] = {}
        for n, run in _groups(writes, len(path)):
            child_version = node.child_version(n)
            cpath = path + bytes((n,))
            if child_version < 0:
                sub = self.build(cpath, [(k, v) for k, v in run if v is not None])
                if sub is None:
                    continue  # only deletes of absent keys
            else:
                ckey = node_key(child_version, cpath)
                sub = self.update(cpath, ckey, self.reader.get_node(ckey), run)
                if sub is not None and sub.unchanged:
                    continue
            subs[n] = sub
        if not subs:
            return _Inner(node_key_version(key), node.hash(), True)
        self.stale.append(key)
        return self.assemble(path, node, subs)

    def assemble(self, path: bytes, old: InternalNode | None, subs: Mapping[int, _Sub]) -> _Sub:
        """The internal node at `path` with the slots of `old` overridden by `subs`, or what
        it collapses to (nothing, or its lone leaf)."""
        if old is None:
            versions = [-1] * 16
            hs: list[bytes | None] = [None] * 32
            leaves = 0
        else:
            versions, leaves, hs = old.arrays()
        pending: dict[int, _Leaf] = {}
        for n, sub in subs.items():
            leaves &= ~(1 << n)
            if isinstance(sub, _Leaf) or sub is None:
                versions[n] = -1
                hs[16 + n] = None
                if sub is not None:
                    pending[n] = sub
            else:
                versions[n] = sub.version
                hs[16 + n] = sub.hash
        count = 16 - versions.count(-1) + len(pending)  # pending slots hold -1 until placed
        if not count:
            return None
        if count == 1 and _MUTANT != "no_collapse":
            if pending:
                lone = next(iter(pending.values()))
                return _Leaf(lone.kh, lone.vh, lone.origin, False)
            n = next(i for i, v in enumerate(versions) if v >= 0)
            if leaves >> n & 1:  # an untouched leaf whose siblings all went: it moves up
                ckey = node_key(versions[n], path + bytes((n,)))
                leaf = self.reader.get_node(ckey)
                assert isinstance(leaf, LeafNode)
                return _Leaf(leaf.key_hash, leaf.value_hash, ckey, False)
        for n, lone in pending.items():
            versions[n] = self.version
            hs[16 + n] = self._place(path + bytes((n,)), lone)
            leaves |= 1 << n
        if old is None:
            inode = InternalNode.from_arrays(versions, leaves, hs)
        else:  # only the ranges above the changed slots are hashed again
            inode = old.with_children(versions, leaves, hs, subs)
        self.new_nodes[node_key(self.version, path)] = inode
        return _Inner(self.version, inode.hash(), False)

    def _place(self, path: bytes, lone: _Leaf) -> bytes:
        """Write a leaf at `path` in this version (its old node, if any, goes stale); its hash."""
        self.new_nodes[node_key(self.version, path)] = LeafNode(lone.kh, lone.vh)
        if lone.origin is not None:
            self.stale.append(lone.origin)
        return leaf_hash(lone.kh, lone.vh)

    def finish(self, sub: _Sub, base_root_version: int | None) -> TreeUpdate:
        """The update whose whole tree is `sub`."""
        if sub is None:
            root, root_version = PLACEHOLDER, None
        elif isinstance(sub, _Leaf):
            if sub.unchanged:
                root, root_version = leaf_hash(sub.kh, sub.vh), base_root_version
            else:
                root, root_version = self._place(b"", sub), self.version
        else:
            root, root_version = sub.hash, sub.version
        return TreeUpdate(self.version, root, root_version, self.new_nodes, self.stale)


def apply_writes(
    reader: NodeReader,
    base_root_version: int | None,
    version: int,
    writes: Mapping[bytes, bytes | None],
) -> TreeUpdate:
    """The tree at `version` = the tree whose root node is keyed at `base_root_version`
    (None: empty) plus `writes` (key_hash -> value_hash, None deletes). Reads nodes, writes
    nothing. `version` must exceed every version in the base tree. MissingNode if the
    base's nodes are gone."""
    builder = TreeBuilder(reader, version)
    root_key = None if base_root_version is None else node_key(base_root_version, b"")
    root_node = None if root_key is None else reader.get_node(root_key)
    sub: _Sub
    if not writes:
        if root_node is None:
            sub = None
        elif isinstance(root_node, LeafNode):
            sub = _Leaf(root_node.key_hash, root_node.value_hash, root_key, True)
        else:
            sub = _Inner(base_root_version or 0, root_node.hash(), True)
    else:
        sub = builder.update(b"", root_key, root_node, sorted(writes.items()))
    return builder.finish(sub, base_root_version)


def prove(
    reader: NodeReader, root_version: int | None, key_hash: bytes
) -> tuple[SparseProof, LeafNode | None]:
    """Proof for `key_hash` in the tree whose root node is keyed at `root_version`, and the
    leaf the path ends at (None: an empty subtree). The leaf is the key's own when its
    key_hash matches (inclusion); otherwise the proof shows absence.

    The path descends the binary tree until it meets an empty subtree or a lone leaf; the
    siblings met on the way are listed from the root downwards (DESIGN §5; the jmt crate
    lists them leaf-upwards). MissingNode if a node is gone (a pruned version)."""
    siblings: list[bytes] = []
    if root_version is None:
        return SparseProof(None, ()), None
    path = b""
    node = reader.get_node(node_key(root_version, path))
    depth = 0
    while True:
        if isinstance(node, LeafNode):
            return SparseProof((node.key_hash, node.value_hash), tuple(siblings)), node
        hashes = node.hashes()
        lone = node.lone()
        n = nibble(key_hash, depth)
        here: list[bytes] = []
        stop: int | None = None  # -1: empty range; >= 0: slot of a lone leaf
        for lv in (3, 2, 1, 0):
            mine = (16 + n) >> lv  # heap index of the 2^lv-wide range holding slot n
            sib = hashes[mine ^ 1]
            here.append(PLACEHOLDER if sib is None else sib)
            if hashes[mine] is None:
                stop = -1
                break
            if lone[mine] >= 0:
                stop = lone[mine]
                break
        if _MUTANT == "sibling_order":
            here.reverse()
        siblings.extend(here)
        if stop == -1:
            return SparseProof(None, tuple(siblings)), None
        slot = n if stop is None else stop
        path += bytes((slot,))
        node = reader.get_node(node_key(node.child_version(slot), path))
        depth += 1
        if stop is not None and not isinstance(node, LeafNode):
            raise MissingNode("tree layout broken: a lone-leaf slot holds an internal node")


class _DictReader:
    def __init__(self, nodes: dict[bytes, Node]) -> None:
        self.nodes = nodes

    def get_node(self, key: bytes) -> Node:
        try:
            return self.nodes[key]
        except KeyError:
            raise MissingNode(key.hex()) from None


class MemoryTree:
    """The tree in memory, latest version only (stale nodes are dropped at once).
    For tests, vectors and recomputing a root from plain key/value content."""

    def __init__(self) -> None:
        self._nodes: dict[bytes, Node] = {}
        self._values: dict[bytes, bytes] = {}
        self._version = 0
        self._root_version: int | None = None
        self._root = PLACEHOLDER

    def update(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply writes (app key -> value, None deletes) as one new version; the new root."""
        self._version += 1
        tree_writes = {H(k): (None if v is None else H(v)) for k, v in writes.items()}
        up = apply_writes(_DictReader(self._nodes), self._root_version, self._version, tree_writes)
        for k in up.stale:
            del self._nodes[k]
        self._nodes.update(up.new_nodes)
        self._root, self._root_version = up.root_hash, up.root_version
        for k, v in writes.items():
            if v is None:
                self._values.pop(k, None)
            else:
                self._values[k] = v
        return self._root

    def root(self) -> bytes:
        return self._root

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def prove(self, key: bytes) -> SparseProof:
        return prove(_DictReader(self._nodes), self._root_version, H(key))[0]

    def node_count(self) -> int:
        return len(self._nodes)
