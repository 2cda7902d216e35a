"""The chain on disk: blocks, commits and the authenticated state, driven by the state machine.

`Ledger` implements `consensus.ports.Application` for the node: it builds proposals from the
mempool, validates and executes proposals before a prevote, and commits a decided block with
its commit, tx index, results, validator-set schedule and the next height's proposer
priorities in ONE LMDB write transaction (`Store.commit`). Block sync applies fetched blocks
through the same path (`apply_synced_batch`: the same checks and commit, several blocks in one
store transaction).

Heights and state versions coincide: version h is the state after block h. The genesis state is
not a version of its own; its writes are folded into block 1, so block 1's `state_root` covers
genesis plus block 1's transactions.

Why one module of ~600 lines: block building, validation and the one-transaction commit
share the staged execution cache and the per-height params and validator-set lookups; the
protocol of its collaborators (`LedgerHost`) and the stores it drives live elsewhere.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Protocol, Sequence, TypedDict

from ads_ledger.consensus.evidence import EvidencePool, InvalidEvidence, evidence_size
from ads_ledger.consensus.proposer import ProposerPriorities
from ads_ledger.consensus.timeouts import ConsensusParams
from ads_ledger.core import codec
from ads_ledger.core.crypto import verify
from ads_ledger.core.errors import DecodeError, RemoteError
from ads_ledger.core.merkle import SparseProof, list_root
from ads_ledger.core.types import (
    ZERO32,
    Block,
    Commit,
    CommitError,
    DuplicateVoteEvidence,
    Header,
    ValidatorSet,
    verify_commit,
)
from ads_ledger.node.logs import kv
from ads_ledger.node.storage import blockparts
from ads_ledger.node.storage import schema as S
from ads_ledger.node.storage.store import Staged, Store
from ads_ledger.state.bodies import check_body
from ads_ledger.state.context import StateView
from ads_ledger.state.envelope import MAX_TX_BYTES, Envelope, parse_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.state.machine import BlockResult, DictView, TxResult, check_tx, execute_block
from ads_ledger.state.reasons import TxRejected
from ads_ledger.state.records import CP, DEFAULT_PARAMS, GOV_PARAMS, acct_key, cp_key, decode_record

__all__ = ["Ledger", "LedgerHost", "StaticHost", "InvalidBlock", "BlockInfo", "StoredResult", "SyncOutcome",
           "SyncRefused"]

log = logging.getLogger("ads_ledger.node.ledger")
_VALSET_CACHE = 64  # validator sets kept in memory, by height (least recently used dropped)


def evidence_limit(params: dict[str, int]) -> int:
    """Bytes of evidence a block may carry at most (DESIGN §6 leaves it open; protocol.md)."""
    return params["max_block_bytes"] // EVIDENCE_SHARE


class InvalidBlock(RemoteError):
    """A proposed or fetched block does not extend our chain correctly; `reason` says why."""


# Results that make a whole block invalid (DESIGN §6 "Block validity"): a proposer may include
# a tx whose *rule* refuses it (it consumes its nonce if its signer has an account), never one
# that is not a valid tx at all.
INVALID_TX_CODES = frozenset({"malformed", "too_large", "bad_signature", "unknown_type", "bad_nonce"})
EVIDENCE_SHARE = 16  # evidence may take at most 1/16 of max_block_bytes (256 KiB by default)
VERIFIED_CACHE = 32_768  # envelopes whose auth signatures verified (more than a full mempool), at most
PRUNE_HEIGHTS = 64  # [storage] keep_blocks: heights whose bodies one commit deletes at most…
PRUNE_BYTES = 8 * 1024 * 1024  # …and bytes of older-layout whole blocks it cuts down to headers


@dataclass(frozen=True, slots=True)
class BlockInfo:
    height: int
    block_id: bytes
    time: int


class StoredResult(TypedDict):
    """A committed transaction's execution result, as stored with its block."""

    ok: bool
    code: str
    log: str


class SyncRefused(InvalidBlock):
    """A fetched block or its commit does not verify; `what` is "commit" or "block"."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(reason)
        self.what = what


@dataclass(slots=True)
class SyncOutcome:
    """What `apply_synced_batch` did: blocks committed, in order, and pairs refused."""

    applied: list[tuple[Block, Commit]]
    refused: list[tuple[Block, Commit, SyncRefused]]


@dataclass(slots=True)
class _Executed:
    block: Block
    result: BlockResult
    staged: Staged
    checked: bool  # every check of check_block passed on these very bytes (not a bare assemble)


class _GenesisFolded:
    """The state before block 1: the genesis writes over an empty store."""

    def __init__(self, writes: dict[bytes, bytes]) -> None:
        self.view = DictView(dict(writes))

    def get(self, key: bytes) -> bytes | None:
        return self.view.get(key)


class LedgerHost(Protocol):
    """What the ledger needs from the node around it: the mempool's side of proposing and
    committing (the node's `TxIntake`)."""

    commit_guard: ContextManager[Any]  # held while a block is stored and `after_commit` runs

    def reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        """Transactions for a proposal, in order, within these limits."""
        ...

    def has_pending_txs(self) -> bool: ...

    def after_commit(self, block: Block, txids: list[bytes]) -> None:
        """Block `block` (its txs' ids `txids`) is stored; called under `commit_guard`."""
        ...


class StaticHost:
    """A ledger without a mempool (tests, benchmarks, tools): proposals carry `txs`, by
    default none, whatever the limits."""

    def __init__(self, txs: Sequence[bytes] = ()) -> None:
        self.txs = list(txs)
        self.commit_guard = threading.RLock()

    def reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        return list(self.txs)

    def has_pending_txs(self) -> bool:
        return True

    def after_commit(self, block: Block, txids: list[bytes]) -> None:
        pass


class Ledger:
    """Committed chain + state. Not thread-safe for writers: one consensus task drives it."""

    def __init__(self, store: Store, genesis: Genesis, host: LedgerHost | None = None,
                 keep_blocks: int = 0) -> None:  # fmt: skip
        if keep_blocks < 0:
            raise ValueError("keep_blocks must be ≥ 0 (0: keep every block's body)")
        self.host: LedgerHost = StaticHost() if host is None else host
        self.store = store
        self.keep_blocks = keep_blocks  # newest blocks whose bodies are kept (0: all)
        self._bodies_from = max(1, store.meta_int(S.META_BODIES_FROM))
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._executed: dict[bytes, _Executed] = {}
        self._changed_cps: dict[int, list[bytes]] = {}  # height -> cps whose record it changed (last 64)
        self._valsets: OrderedDict[int, ValidatorSet] = OrderedDict()  # LRU, see validators_at
        self._valsets_lock = threading.Lock()  # P2P (evidence) and consensus both read sets
        self._valsets_by_raw: dict[bytes, ValidatorSet] = {}  # stored bytes → set, a few
        self._genesis_set = genesis.validator_set()  # (immutable) one object, hashed once
        self._priorities: tuple[int, ProposerPriorities] | None = None  # (height, at its start)
        self._last_info: BlockInfo | None = None
        self._lock = threading.Lock()  # guards _executed against the API's readers
        # raw envelope → (parsed, txid) once its auth signatures verified and its body's shape
        # passed: keyed by every byte the checks read (never by txid, which leaves out `auth`);
        # filled by the node's intake and by blocks, so a block reuses the intake's parse
        self._verified: dict[bytes, tuple[Envelope, bytes]] = {}
        self._sig_lock = threading.Lock()
        self._params: dict[int, dict[str, int]] = {}
        self._sigs_ok: frozenset[tuple[bytes, bytes, bytes]] = frozenset()  # a sync batch's, verified
        self.evidence_lock = threading.Lock()  # the pool is fed by P2P and read by consensus
        self.evidence = EvidencePool(height=self.height)
        self.evidence.restore_committed(self._committed_evidence(), self.height)

    @classmethod
    def open(cls, path: Path | str, genesis: Genesis, keep_versions: int = 10000,
             host: LedgerHost | None = None, keep_blocks: int = 0) -> "Ledger":  # fmt: skip
        return cls(Store.open(path, keep_versions=keep_versions), genesis, host, keep_blocks)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ reads

    @property
    def height(self) -> int:
        return self.store.latest_version()

    def block(self, height: int) -> Block | None:
        """Block `height`; None if not committed, or if its txs and evidence are pruned
        (`body_pruned`)."""
        raw = self.store.read(S.BLOCKS, S.height_key(height)) if height >= 1 else None
        if raw is None:
            return None
        if blockparts.is_whole(raw):
            return Block.decode(raw, max_size=blockparts.MAX_BLOCK_RECORD)
        body = self.store.read(S.BODIES, S.height_key(height))
        try:
            # the previous block's id is in this header: no need to read and hash that one
            prev = lambda block_id: self._commit_at(height - 1, block_id)  # noqa: E731
            return blockparts.join(raw, body, prev, self.chain_id, height)
        except LookupError:
            return None

    def block_bytes(self, height: int) -> bytes | None:
        """`block(height).encode()`: the bytes the block was committed as."""
        raw = self.store.read(S.BLOCKS, S.height_key(height)) if height >= 1 else None
        if raw is None or blockparts.is_whole(raw):
            return raw
        b = self.block(height)
        return None if b is None else b.encode()

    def bodies_from(self) -> int:
        """The lowest height whose block body is kept: below it, only headers and commits
        (`[storage] keep_blocks`); 1 when nothing was pruned."""
        return self._bodies_from

    def body_pruned(self, height: int) -> bool:
        """Whether block `height` is committed but its txs and evidence are pruned (a block
        without either below the horizon is whole: its header and commits make it)."""
        if not 1 <= height < self._bodies_from:
            return False
        hdr = self.header(height)
        return hdr is not None and blockparts.has_body(hdr)

    def commit_bytes(self, height: int) -> bytes | None:
        """The canonical encoding of the commit of block `height` (`commit_at(height).encode`):
        the stored bytes when they are the whole commit (older stores), else rebuilt."""
        raw = self.store.read(S.COMMITS, S.height_key(height)) if height >= 1 else None
        if raw is None or raw[:1] == b"\x84":  # a whole commit map: canonical as stored
            return raw
        commit = self.commit_at(height)
        return None if commit is None else codec.encode(commit.to_obj())

    def sync_bytes(self, height: int) -> tuple[bytes, bytes] | None:
        """(`block_bytes(height)`, `commit_bytes(height)`) as block sync serves them: the block
        joined once and its id hashed once for both; None if either is not here (or pruned)."""
        hk = S.height_key(height)
        craw = self.store.read(S.COMMITS, hk) if height >= 1 else None
        if craw is None:
            return None
        block_id = None
        raw = self.store.read(S.BLOCKS, hk)
        if raw is None or not blockparts.is_whole(raw):
            block = self.block(height)
            if block is None:
                return None
            raw, block_id = block.encode(), block.header.block_id()
        if not blockparts.commit_needs_header(craw):
            return raw, craw  # a whole commit map: canonical as stored
        if block_id is None:
            hdr = self.header(height)
            if hdr is None:
                return None
            block_id = hdr.block_id()
        return raw, codec.encode(blockparts.commit_from_record(craw, height, block_id).to_obj())

    def commit_at(self, height: int) -> Commit | None:
        return self._commit_at(height, None)

    def _commit_at(self, height: int, block_id: bytes | None) -> Commit | None:
        """The commit of `height`; `block_id`, if known, is that block's (else read and hashed
        from its header when the record leaves it out)."""
        raw = self.store.read(S.COMMITS, S.height_key(height)) if height >= 1 else None
        if raw is None:
            return None
        if block_id is None and blockparts.commit_needs_header(raw):
            hdr = self.header(height)
            block_id = None if hdr is None else hdr.block_id()
        return blockparts.commit_from_record(raw, height, block_id)

    def header(self, height: int) -> Header | None:
        """The header of block `height`, kept whether or not its body is pruned."""
        raw = self.store.read(S.BLOCKS, S.height_key(height)) if height >= 1 else None
        return None if raw is None else blockparts.header_of(raw, self.chain_id, height)

    def last_info(self) -> BlockInfo | None:
        h = self.height
        cached = self._last_info
        if cached is not None and cached.height == h:
            return cached  # decoding the whole last block on every call dominated validation
        hdr = self.header(h) if h else None
        info = None if hdr is None else BlockInfo(h, hdr.block_id(), hdr.time)
        self._last_info = info
        return info

    def last_block_time(self) -> int:
        info = self.last_info()
        return self.genesis.genesis_time if info is None else info.time

    def state_view(self, height: int | None = None) -> StateView:
        """The state after block `height` (0: the genesis state)."""
        if height == 0 or (height is None and self.height == 0):
            return _GenesisFolded(self.genesis.state_writes())
        return self.store.view(height)

    def get_state(self, key: bytes, height: int | None = None) -> tuple[int, bytes | None, SparseProof]:
        """(height, value, proof) at `height` (default latest) against that header's state_root."""
        h = self.height if height is None else height
        value, proof = self.store.prove(key, h)
        return h, value, proof

    def account_nonce(self, pub: bytes) -> int:
        raw = self.state_view().get(acct_key(pub))
        return 0 if raw is None else int(decode_record(raw)["nonce"])

    def tx_location(self, txid: bytes) -> tuple[int, int] | None:
        raw = self.store.read(S.TXS, txid)
        return None if raw is None else S.decode_tx_location(raw)

    def committed_txids(self, txids: Sequence[bytes]) -> set[bytes]:
        """Those of `txids` already in the chain (one store read for all)."""
        return {t for t, raw in zip(txids, self.store.read_many(S.TXS, txids)) if raw is not None}

    def tx_result(self, height: int, index: int) -> StoredResult | None:
        raw = self.store.read(S.RESULTS, S.height_key(height))
        if raw is None:
            return None
        results = codec.decode(raw)
        if index >= len(results):
            return None
        ok, code, log = results[index]
        return {"ok": ok, "code": code, "log": log}

    def _committed_evidence(self) -> list[tuple[DuplicateVoteEvidence, int]]:
        out = []
        start = S.height_key(max(1, self.height - self.evidence.max_age))
        for key, raw in self.store.items(S.EVIDENCE, start, limit=100_000):
            out.append((DuplicateVoteEvidence.from_obj(codec.decode(raw)), S.from_u64(key[:8])))
        return out


    def add_evidence(self, ev: DuplicateVoteEvidence) -> bool:
        """Verify and keep evidence seen by consensus or received from a peer; True if new."""
        h = ev.vote_a.height
        self._evidence_age(self.height + 1)
        if self.height + 1 - h > self.evidence.max_age:  # before any lookup or signature check
            raise InvalidEvidence(f"evidence from height {h} is older than evidence_max_age "
                                  f"({self.evidence.max_age} blocks)")  # fmt: skip
        try:
            valset = self.validators_at(h)
        except LookupError:
            return False
        with self.evidence_lock:
            return self.evidence.add_evidence(ev, valset, self.chain_id)

    def _evidence_age(self, height: int) -> None:
        """The pool's age limit follows `evidence_max_age` in force at `height`."""
        self.evidence.max_age = self.params_at(height)["evidence_max_age"]

    # ------------------------------------------------------------------ validator sets

    def validators_at(self, height: int) -> ValidatorSet:
        """The set deciding `height`: genesis for 1 and 2, then as scheduled at height − 2.

        `valsets` holds a set only at the heights where it changes, so the set in force is the
        last entry at or below `height` (one cursor read; no walk, whatever the height).
        LookupError beyond `self.height + 2` (not decided by a committed block yet)."""
        with self._valsets_lock:
            vs = self._valsets.get(height)
            if vs is not None:
                self._valsets.move_to_end(height)
                return vs
        if height <= 2:
            vs = self._genesis_set
        else:
            if height > self.height + 2:
                raise LookupError(f"the validator set of height {height} is not known yet")
            found = self.store.items(S.VALSETS, S.height_key(height), limit=1, reverse=True)  # floor
            if found:
                vs = self._decoded_valset(found[0][1])
            else:
                vs = self._genesis_set
        with self._valsets_lock:  # bounded: evidence may name any old height
            self._valsets[height] = vs
            while len(self._valsets) > _VALSET_CACHE:
                self._valsets.popitem(last=False)
        return vs

    def _decoded_valset(self, raw: bytes) -> ValidatorSet:
        """The set stored as `raw`; the same object for the same bytes (a set is immutable),
        so a set re-read after each block is neither decoded nor hashed again."""
        with self._valsets_lock:
            vs = self._valsets_by_raw.get(raw)
        if vs is None:
            vs = ValidatorSet.from_obj(codec.decode(raw))
            with self._valsets_lock:
                if len(self._valsets_by_raw) >= 8:
                    self._valsets_by_raw.clear()
                self._valsets_by_raw[raw] = vs
        return vs

    # ------------------------------------------------------------------ proposer priorities

    def priorities_at_next(self) -> ProposerPriorities:
        """The proposer priorities at the start of height `self.height + 1` (what a `Core`
        starting there needs), as `priorities_for_height` computes them but without its walk.

        Kept in memory and in the `priorities` table, written with each block. A store without
        the record (new, or written by an older version) is walked once from genesis; a record
        behind the chain (blocks written by an older version) is walked forward from there."""
        height = self.height + 1
        if self._priorities is not None and self._priorities[0] == height:
            return self._priorities[1]
        start, pr = self._stored_priorities(height)
        for h in range(start + 1, height + 1):
            pr = pr.next_height(self.validators_at(h))
        self._priorities = (height, pr)
        return pr

    def _stored_priorities(self, height: int) -> tuple[int, ProposerPriorities]:
        """(h, priorities at the start of h) from the table if usable for `height`, else genesis."""
        raw = self.store.read(S.PRIORITIES, S.PRIORITIES_NEXT)
        if raw is not None:
            obj = codec.decode(raw)
            if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not int:
                raise S.SchemaError("bad priorities record")
            h, pr = obj[0], ProposerPriorities.from_obj(obj[1])
            # usable only if it is not ahead of the chain and matches the set deciding h
            members = tuple((pub, power) for pub, power, _ in pr.entries)
            if 1 <= h <= height and members == self.validators_at(h).validators:
                return h, pr
        return 1, ProposerPriorities.genesis(self.validators_at(1))

    # ------------------------------------------------------------------ Application

    def has_pending_txs(self) -> bool:
        """Whether the mempool has transactions (the core's idle proposer asks)."""
        return self.host.has_pending_txs()

    def propose_block(
        self, height: int, round: int, time_ms: int, proposer: bytes, last_commit: Commit | None
    ) -> Block:
        """A block of mempool transactions, executed, its header carrying the new state root."""
        p = self.params_at(height)
        txs = self.host.reap(p["max_block_bytes"] - evidence_limit(p), p["max_block_txs"])  # room for evidence
        return self._build(height, time_ms, proposer, last_commit, txs)

    def _build(self, height: int, time_ms: int, proposer: bytes, last_commit: Commit | None,
               txs: Sequence[bytes]) -> Block:  # fmt: skip
        txs, envs, txids = self._valid_txs(txs)
        view = self.state_view(height - 1)
        result = execute_block(view, self.chain_id, height, time_ms, txs, sigs_checked=True, envs=envs,
                               txids=txids)  # fmt: skip
        bad = {i for i, r in enumerate(result.results) if r.code in INVALID_TX_CODES}
        if bad:  # a stale mempool entry (its nonce moved on): our block must stay valid
            txs = [t for i, t in enumerate(txs) if i not in bad]
            envs = [e for i, e in enumerate(envs) if i not in bad]
            txids = [t for i, t in enumerate(txids) if i not in bad]
            result = execute_block(view, self.chain_id, height, time_ms, txs, sigs_checked=True, envs=envs,
                                   txids=txids)  # fmt: skip
        with self.evidence_lock:
            evidence = tuple(self.evidence.pending(evidence_limit(self.params_at(height))))
        return self.assemble(height, time_ms, proposer, last_commit, txs, evidence, result, built=True)

    def assemble(self, height: int, time_ms: int, proposer: bytes, last_commit: Commit | None,
                 txs: Sequence[bytes], evidence: Sequence[DuplicateVoteEvidence] = (),
                 result: BlockResult | None = None, *, built: bool = False) -> Block:  # fmt: skip
        """The block of exactly these txs and evidence, its header from executing them without
        envelope signature checks (`result`, if already done), remembered for commit_block.
        It checks nothing: `propose_block` filters first; tests and the Byzantine kit do not."""
        prev = self.last_info()
        if result is None:
            result = execute_block(self.state_view(height - 1), self.chain_id, height, time_ms,
                                   txs, sigs_checked=True)  # fmt: skip
        staged = self._stage(height, result)
        header = Header(
            chain_id=self.chain_id,
            height=height,
            time=time_ms,
            prev=ZERO32 if prev is None else prev.block_id,
            txs_root=list_root([r.txid for r in result.results]),
            evidence_root=list_root([e.hash() for e in evidence]),
            state_root=staged.root,
            validators=self.validators_at(height).hash(),
            next_validators=self.validators_at(height + 1).hash(),
            proposer=proposer,
            last_commit=ZERO32 if last_commit is None else last_commit.hash(),
        )
        block = Block(header, tuple(txs), tuple(evidence), last_commit)
        # `built`: propose_block's txs passed every per-tx check of check_block on these bytes
        self._remember(block, result, staged, txs_checked=built)
        return block

    def _valid_txs(self, txs: Sequence[bytes]) -> tuple[list[bytes], list[Envelope], list[bytes | None]]:
        """The txs a proposer may put in a block (and each parsed once): within the limits, well
        signed, and neither committed nor repeated (the mempool should hold only such; this
        makes sure)."""
        out: list[bytes] = []
        envs: list[Envelope] = []
        txids: list[bytes | None] = []  # None: execution checks the body and hashes itself
        seen: set[bytes] = set()
        for raw in txs:
            try:
                env, txid, shaped = self._check_tx_bytes(raw, seen)
            except InvalidBlock:
                continue
            out.append(raw)
            envs.append(env)
            txids.append(txid if shaped else None)
        return out, envs, txids

    def _stage(self, height: int, result: BlockResult) -> Staged:
        writes: dict[bytes, bytes | None] = dict(result.writes)
        if height == 1:
            writes = {**self.genesis.state_writes(), **writes}
        return self.store.stage(writes, height)

    def _remember(self, block: Block, result: BlockResult, staged: Staged, *, txs_checked: bool) -> None:
        with self._lock:
            if len(self._executed) > 64:  # proposals of abandoned rounds
                self._executed.clear()
            self._executed[block.block_id()] = _Executed(block, result, staged, txs_checked)

    def _checked_execution(self, block: Block) -> _Executed | None:
        """Our own execution of exactly these block bytes on our latest state, if every per-tx
        check already passed on them (our own proposal, or a block checked in an earlier round)."""
        with self._lock:
            ex = self._executed.get(block.block_id())
        if ex is None or not ex.checked or ex.staged.base_version != self.height:
            return None
        if ex.block is not block and ex.block != block:  # every byte, not only the header's hash
            return None
        return ex

    def check_block(self, block: Block) -> None:
        """Raise InvalidBlock unless `block` extends our chain and re-executes to its roots."""
        h = block.header
        height = self.height + 1
        why = self._header_problem(h, height)
        if why:
            raise InvalidBlock(why)
        self._check_limits(block, height)  # before any per-tx decoding: cheap bounds first
        done = self._checked_execution(block)
        if done is not None:  # our own proposal: txs checked and executed when we built it
            block.check_roots([r.txid for r in done.result.results])
        else:
            prepared = self._prepare_txs(block)  # parsed once: roots, signatures and execution share it
            block.check_roots([txid for _, txid, _ in prepared])
        if block.evidence:
            self._evidence_age(height)
            try:
                with self.evidence_lock:
                    self.evidence.verify_block_evidence(block, self.validators_at, self.chain_id)
            except InvalidEvidence as e:
                raise InvalidBlock(f"evidence: {e}") from e
        if height > 1:
            assert block.last_commit is not None  # check_roots ensured it
            try:
                prev = self.last_info()
                assert prev is not None
                verify_commit(self.chain_id, self.validators_at(height - 1), block.last_commit,
                              height=height - 1, block_id=prev.block_id, verify=self._verify_sig)  # fmt: skip
            except CommitError as e:
                raise InvalidBlock(f"last_commit: {e}") from e
        if done is not None:
            if done.staged.root != h.state_root:  # assembled by us with this root: never differs
                raise InvalidBlock(f"state_root {h.state_root.hex()} differs from ours {done.staged.root.hex()}")
            return
        self._verify_tx_signatures(block, prepared)
        result = execute_block(self.state_view(height - 1), self.chain_id, height, h.time, block.txs,
                               sigs_checked=True, envs=[e for e, _, _ in prepared],
                               txids=[txid if known else None for _, txid, known in prepared])  # fmt: skip
        for i, r in enumerate(result.results):
            if r.code in INVALID_TX_CODES:
                raise InvalidBlock(f"tx {i} is not a valid transaction ({r.code}): {r.log}")
        staged = self._stage(height, result)
        if staged.root != h.state_root:
            raise InvalidBlock(f"state_root {h.state_root.hex()} differs from ours {staged.root.hex()}")
        self._remember(block, result, staged, txs_checked=True)

    def _header_problem(self, h: Header, height: int) -> str:
        prev = self.last_info()
        if h.chain_id != self.chain_id:
            return f"chain_id {h.chain_id!r} is not {self.chain_id!r}"
        if h.height != height:
            return f"height {h.height} does not follow {height - 1}"
        if h.prev != (ZERO32 if prev is None else prev.block_id):
            return "prev is not our last block"
        last_time = self.last_block_time()
        if h.time <= last_time and prev is not None:
            return f"time {h.time} is not after the previous block's {last_time}"
        if h.validators != self.validators_at(height).hash():
            return "validators hash is not the set deciding this height"
        if h.next_validators != self.validators_at(height + 1).hash():
            return "next_validators hash is not the scheduled set"
        if self.validators_at(height).index_of(h.proposer) is None:
            return "proposer is not a validator"
        return ""

    def _check_limits(self, block: Block, height: int) -> None:
        p = self.params_at(height)
        if len(block.txs) > p["max_block_txs"]:
            raise InvalidBlock(f"{len(block.txs)} txs; max_block_txs in force is {p['max_block_txs']}")
        ev = sum(evidence_size(e) for e in block.evidence)
        if ev > evidence_limit(p):  # verifying evidence costs signatures: bounded like txs
            raise InvalidBlock(f"{ev} bytes of evidence; at most {evidence_limit(p)} (max_block_bytes / 16)")
        size = sum(len(t) for t in block.txs) + ev
        if size > p["max_block_bytes"]:
            raise InvalidBlock(f"{size} bytes of txs and evidence; max_block_bytes in force is "
                               f"{p['max_block_bytes']}")  # fmt: skip

    def _prepare_txs(self, block: Block) -> list[tuple[Envelope, bytes, bool]]:
        """(envelope, txid, verified) per tx: from the verified cache when these very bytes
        passed intake or an earlier block check, else parsed here (verified later)."""
        out = []
        cache = self._verified
        for i, raw in enumerate(block.txs):
            hit = cache.get(raw)
            if hit is not None:
                out.append((hit[0], hit[1], True))
                continue
            try:
                env = parse_envelope(raw)
            except DecodeError as e:
                raise InvalidBlock(f"tx {i} does not decode: {e}") from e
            out.append((env, env.txid(self.chain_id), False))
        return out

    def _verify_tx_signatures(self, block: Block, prepared: Sequence[tuple[Envelope, bytes, bool]]) -> None:
        """Every tx decodes, is within 32 KiB, every `auth` signature verifies over its sign
        bytes, and its txid is neither committed nor earlier in the block — from the block's
        bytes alone (a cache hit needs the very same bytes)."""
        seen: set[bytes] = set()
        for i, (raw, (env, txid, _)) in enumerate(zip(block.txs, prepared)):
            try:
                self._check_tx_bytes(raw, seen, env, txid)  # a cache miss verifies here
            except InvalidBlock as e:
                raise InvalidBlock(f"tx {i}: {e}") from e

    def _check_tx_bytes(self, raw: bytes, seen: set[bytes], env: Envelope | None = None,
                        txid: bytes | None = None) -> tuple[Envelope, bytes, bool]:  # fmt: skip
        """`raw` parsed (`env` and its `txid`, if the caller has them), checked as the docstring
        above says; returns (envelope, txid, whether its body's shape is known to pass)."""
        if len(raw) > MAX_TX_BYTES:
            raise InvalidBlock(f"{len(raw)} bytes; a transaction is at most {MAX_TX_BYTES}")
        hit = self._verified.get(raw)
        if hit is not None:
            env, txid = hit
        elif env is None:
            try:
                env = parse_envelope(raw)
            except DecodeError as e:
                raise InvalidBlock(f"does not decode: {e}") from e
        if txid is None:
            txid = env.txid(self.chain_id)
        if txid in seen:
            raise InvalidBlock(f"txid {txid.hex()[:16]} appears twice in the block")
        seen.add(txid)
        if self.tx_location(txid) is not None:
            raise InvalidBlock(f"txid {txid.hex()[:16]} is already committed")
        if hit is not None:
            return env, txid, True
        try:
            env.verify_signatures(self.chain_id)
        except RemoteError as e:
            raise InvalidBlock(f"a signature does not verify: {e}") from e
        try:
            check_body(env.type, env.body)
        except TxRejected:
            return env, txid, False  # not cached: execution reports it in the tx's result
        self.note_verified(env, txid)
        return env, txid, True

    def note_verified(self, env: Envelope, txid: bytes | None = None) -> None:
        """Remember that `env` (parsed from `env.raw`, its body's shape checked by `check_body`)
        has valid auth signatures; a block holding these very bytes reuses the parse and check."""
        if txid is None:
            txid = env.txid(self.chain_id)
        with self._sig_lock:
            self._verified[env.raw] = (env, txid)
            if len(self._verified) > VERIFIED_CACHE:
                for k in list(self._verified)[: VERIFIED_CACHE // 4]:  # oldest first
                    del self._verified[k]

    def validate_block(self, block: Block) -> bool:
        """valid(v) of Algorithm 1."""
        try:
            self.check_block(block)
        except (InvalidBlock, DecodeError, LookupError) as e:
            kv(log, logging.WARNING, "invalid block", height=block.header.height,
               proposer=block.header.proposer.hex()[:16], reason=str(e)[:200])  # fmt: skip
            return False
        return True

    def commit_block(self, block: Block, commit: Commit) -> None:
        """Persist a decided block, its commit, tx index, results, validator schedule and the
        proposer priorities of the next height atomically."""
        bid = block.block_id()
        with self._lock:
            ex = self._executed.get(bid)
        if ex is None or ex.staged.base_version != self.height:
            self.check_block(block)
            with self._lock:
                ex = self._executed[bid]
        height = block.header.height
        hk = S.height_key(height)
        results = ex.result.results
        row, body = blockparts.split(block, self.commit_at(height - 1), self.chain_id)
        extra: dict[str, list[tuple[bytes, bytes | None]]] = {
            S.BLOCKS: [(hk, row)],
            S.COMMITS: [(hk, blockparts.commit_record(commit, block.header, bid))],
            S.TXS: [(r.txid, S.encode_tx_location(height, i)) for i, r in enumerate(results)],
        }
        if body is not None:
            extra[S.BODIES] = [(hk, body)]
        if results:  # a block without txs has no results record (tx_result never asks for it)
            extra[S.RESULTS] = [(hk, codec.encode([[r.ok, r.code, r.log] for r in results]))]
        meta = self._prune_bodies(height, extra) if self.keep_blocks else {}
        index = self._grantee_index(ex.result.writes)
        if index:
            extra[S.GRANTEES] = index
        if block.evidence:
            extra[S.EVIDENCE] = [(hk + e.hash(), codec.encode(e.to_obj())) for e in block.evidence]
        if ex.result.next_validators is not None:
            eff, vals = ex.result.next_validators
            extra[S.VALSETS] = [(S.height_key(eff), codec.encode(ValidatorSet.from_obj(vals).to_obj()))]
        # the priorities at the start of height + 1, exactly as Core._decide computes them
        nxt = self.priorities_at_next().next_height(self.validators_at(height + 1))
        try:
            rec: bytes | None = codec.encode([height + 1, nxt.to_obj()])
        except DecodeError:  # past msgpack ints: total power > 2^63/3, which only a genesis can set
            rec = None  # no record: the next open walks
        extra[S.PRIORITIES] = [(S.PRIORITIES_NEXT, rec)]
        with self.host.commit_guard:  # readers of nonces see the store and the mempool change together
            self.store.commit(ex.staged, extra, meta)
            self._bodies_from = meta.get(S.META_BODIES_FROM, self._bodies_from)
            self._priorities = (height + 1, nxt)
            self.host.after_commit(block, [r.txid for r in results])
        with self._sig_lock:  # committed: a later block holding them is invalid anyway
            for raw in block.txs:
                self._verified.pop(raw, None)
        with self._lock:
            self._executed.clear()
            self._changed_cps[height] = [k[len(CP):] for k in ex.result.writes if k.startswith(CP)]
            self._changed_cps.pop(height - 64, None)
        with self.evidence_lock:
            self.evidence.commit_block(block)
        with self._valsets_lock:
            for k in (height + 1, height + 2, height + 3):  # O(1): no rebuild per block
                self._valsets.pop(k, None)

    def _prune_bodies(self, height: int, extra: dict[str, list[tuple[bytes, bytes | None]]]) -> dict[bytes, int]:
        """With block `height`: add to `extra` the deletion of the bodies and results of the
        next heights below the newest `keep_blocks` (at most PRUNE_HEIGHTS of them, and an
        older-layout whole block cut down to its header and commit ref within PRUNE_BYTES),
        and return the new `bodies_from`. Written in the block's own transaction; deleting
        what is gone already is a no-op, so a crash at any point leaves a consistent store."""
        start = self._bodies_from
        target = height - self.keep_blocks + 1  # the lowest height whose body stays
        if target <= start:
            return {}
        stop = min(target, start + PRUNE_HEIGHTS)
        budget = PRUNE_BYTES
        for h in range(start, stop):
            raw = self.store.read(S.BLOCKS, S.height_key(h))
            if raw is None or not blockparts.is_whole(raw):
                continue
            if budget < len(raw) and h > start:
                stop = h  # the rest with a later block
                break
            budget -= len(raw)
            old = Block.decode(raw, max_size=blockparts.MAX_BLOCK_RECORD)
            row, _ = blockparts.split(old, self.commit_at(h - 1), self.chain_id)
            extra[S.BLOCKS].append((S.height_key(h), row))
        lo, hi = S.height_key(start), S.height_key(stop)
        for table in (S.BODIES, S.RESULTS):
            gone = [(k, None) for k in self.store.keys(table, lo, hi, limit=PRUNE_HEIGHTS)]
            if gone:
                extra.setdefault(table, []).extend(gone)
        return {S.META_BODIES_FROM: stop}

    def _grantee_index(self, writes: dict[bytes, bytes | None]) -> list[tuple[bytes, bytes | None]]:
        """Index changes for the block's changed `cp/` records: (grantee ‖ cp, b"" or None)."""
        out: list[tuple[bytes, bytes | None]] = []
        for k, v in writes.items():
            if not k.startswith(CP):
                continue
            cp = k[len(CP):]
            old = self.store.get(k)
            before = _grantees(old)
            after = _grantees(v)
            out += [(g + cp, None) for g in sorted(before - after)]
            out += [(g + cp, b"") for g in sorted(after - before)]
        return out

    def grants_of(self, grantee: bytes, limit: int = 1000) -> tuple[int, list[tuple[bytes, dict[str, Any]]]]:
        """(height, [(cp, grant)]) of the live grants naming `grantee` in the latest state: an
        index for providers, not a proof (each record is provable through its cp/ key)."""
        height = self.height  # a block committed meanwhile only makes the answer newer
        now = self.last_block_time() if height else 0
        keys = [k for k, _ in self.store.items(S.GRANTEES, start=grantee, limit=limit) if k[:32] == grantee]
        out = []
        for k in keys:
            raw = self.store.get(cp_key(k[32:]))
            rec = None if raw is None else decode_record(raw)
            for g in [] if rec is None else rec["grants"]:
                if g["grantee"] == grantee and g["not_after"] > now:
                    out.append((k[32:], g))
        return height, out

    def changed_cps(self, height: int) -> list[bytes] | None:
        """Charge points whose `cp/` record block `height` changed (None: not among the last 64
        blocks this process committed; a subscriber then re-reads its record)."""
        with self._lock:
            return self._changed_cps.get(height)

    def check_tx(self, raw: bytes, *, verify_sigs: bool = False, now: int | None = None) -> TxResult:
        """The state machine's admission check against the committed state, at time `now`
        (the next block's time is about now; default: just after the last block)."""
        t = max(self.last_block_time() + 1, now or 0)
        return check_tx(self.state_view(), self.chain_id, raw, t, verify_sigs=verify_sigs,
                        height=self.height + 1)  # fmt: skip


    # ------------------------------------------------------------------ params (DESIGN §6)

    def params_at(self, height: int) -> dict[str, int]:
        """gov/params in force at `height`: the state after block height − 2 (as validator
        sets), so every validator uses the same timing and block limits."""
        p = self._params.get(height)
        if p is None:
            base = max(0, height - 2)
            raw = self.state_view(base).get(GOV_PARAMS)
            p = {**DEFAULT_PARAMS, **({} if raw is None else decode_record(raw))}
            if len(self._params) > 16:
                self._params.clear()
            self._params[height] = p
        return p

    def consensus_params_at(self, height: int) -> ConsensusParams:
        """The core's timing for `height` from the on-chain params."""
        p = self.params_at(height)
        return ConsensusParams(
            propose_ms=p["timeout_propose_ms"], propose_delta_ms=p["timeout_propose_delta_ms"],
            prevote_ms=p["timeout_prevote_ms"], prevote_delta_ms=p["timeout_prevote_delta_ms"],
            precommit_ms=p["timeout_precommit_ms"], precommit_delta_ms=p["timeout_precommit_delta_ms"],
            precision_ms=p["precision_ms"], message_delay_ms=p["message_delay_ms"],
            idle_interval_ms=p["heartbeat_ms"],
        )  # fmt: skip

    def apply_synced(self, block: Block, commit: Commit) -> None:
        """Block sync: verify `commit` for `block` against the set we know, then commit it."""
        h = block.header.height
        if h != self.height + 1:
            raise InvalidBlock(f"expected block {self.height + 1}, got {h}")
        self._check_synced(block, commit)
        self.commit_block(block, commit)

    def _check_synced(self, block: Block, commit: Commit) -> None:
        """InvalidBlock unless `commit` holds > 2/3 of the power of the set deciding the
        block's height for exactly this block, and the block passes `check_block` (header,
        limits, roots, last_commit, evidence, tx signatures, re-execution to its state_root)."""
        h = block.header.height
        try:
            verify_commit(self.chain_id, self.validators_at(h), commit, height=h,
                          block_id=block.block_id(), verify=self._verify_sig)  # fmt: skip
        except CommitError as e:
            raise SyncRefused("commit", f"commit: {e}") from e
        try:
            self.check_block(block)
        except (InvalidBlock, DecodeError, LookupError) as e:
            raise SyncRefused("block", str(e)) from e

    def apply_synced_batch(self, pairs: Sequence[tuple[Block, Commit]]) -> SyncOutcome:
        """Block sync: of `pairs` (fetched blocks with their commits, several for one height
        allowed, in any order), commit every block that extends our chain, each checked as
        `apply_synced` checks one, in ONE store transaction (`Store.batch`: one fsync for the
        batch; a crash leaves the store before the batch or after its last block).

        A pair that fails is refused (with why) and the next pair of that height, if any, is
        tried; pairs of other heights wait for none (a gap ends the run). Ledger caches filled
        from the batch's uncommitted writes are dropped if the batch does not commit."""
        out = SyncOutcome([], [])
        todo = sorted(pairs, key=lambda p: p[0].header.height)  # stable: arrival order per height
        self._sigs_ok = self._preverify(todo)
        try:
            with self.host.commit_guard, self.store.batch():  # the mempool sees the batch as one block
                for block, commit in todo:
                    hd = block.header
                    if hd.height != self.height + 1:
                        continue  # decided already (another pair of its height), or after a gap
                    try:
                        self._check_synced(block, commit)
                    except SyncRefused as e:
                        out.refused.append((block, commit, e))
                        continue
                    self.commit_block(block, commit)
                    self._last_info = BlockInfo(hd.height, block.block_id(), hd.time)
                    out.applied.append((block, commit))
        except BaseException:
            self._forget_uncommitted()
            raise
        finally:
            self._sigs_ok = frozenset()
        return out

    def _verify_sig(self, pub: bytes, sig: bytes, message: bytes) -> bool:
        """Ed25519, answered from `_sigs_ok` for a (pub, sig, message) verified already."""
        return (pub, sig, message) in self._sigs_ok or verify(pub, sig, message)

    def _preverify(self, pairs: Sequence[tuple[Block, Commit]]) -> frozenset[tuple[bytes, bytes, bytes]]:
        """The commit signatures of a sync batch (each commit's and each block's last_commit)
        that verify, checked together on `_SIG_POOL`'s threads (Ed25519 releases the GIL) before
        the blocks are applied one by one. Keys are taken from the set deciding each height if
        known already, else from the latest known one: a guess, since a signature is then
        looked up by (key, signature, message), all three from the sets the checks use."""
        top = self.height
        triples: set[tuple[bytes, bytes, bytes]] = set()
        for block, commit in pairs:
            for c in (commit, block.last_commit):
                if c is None or c.height < 1:
                    continue
                try:
                    vals = self.validators_at(min(c.height, top + 2)).validators
                except LookupError:
                    continue
                msg = c.vote_sign_bytes(self.chain_id)
                triples.update((vals[i][0], sig, msg) for i, sig in c.sigs if i < len(vals))
        todo = list(triples)
        if len(todo) < 2 * _SIG_CHUNK:
            return frozenset(t for t in todo if verify(*t))
        chunks = [todo[i : i + _SIG_CHUNK] for i in range(0, len(todo), _SIG_CHUNK)]
        ok = _sig_pool().map(lambda ts: [t for t in ts if verify(*t)], chunks)
        return frozenset(t for part in ok for t in part)

    def _forget_uncommitted(self) -> None:
        """A store batch was abandoned: drop what was cached from its writes."""
        with self._lock:
            self._executed.clear()
        self._last_info = None
        self._priorities = None
        self._params.clear()
        with self._valsets_lock:
            self._valsets.clear()
        height = self.store.latest_version()  # (outside the batch by now: the committed one)
        with self._lock:
            for h in [h for h in self._changed_cps if h > height]:
                del self._changed_cps[h]
        with self.evidence_lock:
            pool = EvidencePool(height=height, max_age=self.evidence.max_age)
            pool.restore_committed(self._committed_evidence(), height)
            self.evidence = pool


_SIG_CHUNK = 16  # signatures per task of a sync batch's parallel pre-check
_SIG_THREADS = 2
_sig_pool_lock = threading.Lock()
_sig_pool_obj: ThreadPoolExecutor | None = None


def _sig_pool() -> ThreadPoolExecutor:
    global _sig_pool_obj
    with _sig_pool_lock:
        if _sig_pool_obj is None:
            _sig_pool_obj = ThreadPoolExecutor(_SIG_THREADS, thread_name_prefix="sync-sigs")
        return _sig_pool_obj


def _grantees(raw: bytes | None) -> set[bytes]:
    """The grantees a stored `cp/` record names (any grant, live or not)."""
    return set() if raw is None else {g["grantee"] for g in decode_record(raw)["grants"]}
