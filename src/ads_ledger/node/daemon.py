"""The validator daemon: the trio shell around the ledger, the consensus core, P2P and the API.

One task owns the consensus core (`_consensus_loop`): every input — a peer's message, a
timeout, "transactions are waiting" — is one core step, run whole in a worker thread so that
its fsyncs (WAL, double-sign guard) and the block's LMDB commit never stall the event loop.
After each step the shell drains the core's outbox to P2P and its decisions to the mempool,
the event stream and the metrics. Everything else (P2P, API, block sync, status gossip) only
reads the ledger or feeds the consensus inbox.

Restart: the store is at height h (one LMDB transaction per block). The WAL holds the inputs
of height h+1 after the end-of-height marker of h; the core replays them and resumes exactly
where it stopped. A crash between the store commit of h and its WAL marker leaves records of
height h, which are discarded (the block is already stored).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import trio

from ads_ledger.consensus.core import Core
from ads_ledger.consensus.messages import (
    CommitMessage,
    Message,
    ProposalMessage,
    VoteMessage,
    message_from_obj,
)
from ads_ledger.consensus.privval import DoubleSignGuard, FileSignerState
from ads_ledger.consensus.wal import FileWAL
from ads_ledger.core import codec
from ads_ledger.core.crypto import H, verify
from ads_ledger.core.errors import AdsError, DecodeError, RemoteError
from ads_ledger.core.types import (
    Block,
    Commit,
    DuplicateVoteEvidence,
    Header,
    Proposal,
    ValidatorSet,
    Vote,
)
from ads_ledger.node.api.backend import (
    HeightUnavailable,
    Metric,
    NewBlock,
    NodeStatus,
    StateRead,
    TxInfo,
    TxRejected,
    TxResult,
)
from ads_ledger.node.api.server import serve_http
from ads_ledger.node.config import NodeConfig, load_config, load_key, parse_hostport
from ads_ledger.node.hooks import FaultHooks
from ads_ledger.node.ledger import Ledger
from ads_ledger.node.logs import kv
from ads_ledger.node.mempool import AlreadySeen, Mempool, MempoolError
from ads_ledger.node.p2p.peers import GOSSIP_TYPES, P2PConfig, PeerAddr, PeerManager
from ads_ledger.node.storage.store import VersionUnavailable
from ads_ledger.state.envelope import Envelope, parse_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.state.machine import check_tx
from ads_ledger.state.records import GOV_MEMBERS, acct_key, decode_record

__all__ = ["Node", "run_node"]

log = logging.getLogger("ads_ledger.node.daemon")

SYNC_STALL_TICKS = 3  # status intervals without a block while a sync batch is asked
SYNC_DISTRUST_S = 10.0  # …after which that peer's height claims are ignored this long,
SYNC_DISTRUST_MAX_S = 600.0  # …doubling at each further strike up to this
SYNC_MIN_PROGRESS = 8  # heights a sync batch must move us on by (consensus alone: ~1/s)
SYNC_BATCH = 64  # blocks asked of one peer at a time (the next batch is asked half way through)
SERVE_WAIT_STEPS = 500  # × 10 ms: how long block serving waits for a peer's queue to drain
INTAKE_BATCH = 512  # transactions verified in one worker-thread hop at most
INLINE_BATCH = 16  # smaller batches are verified on the event loop if the mempool lock is free
GOSSIP_BATCH_TXS = 1000  # transactions in one `txs` P2P message at most
GOSSIP_BATCH_BYTES = 1024 * 1024  # …and about this many bytes
RECHECK_PER_BLOCK = 256  # signers whose first pending tx is re-checked after a block, at most
MAX_TXS_MESSAGE = 4096  # a peer's `txs` message carrying more is a protocol violation
STATUS_INTERVAL = 1.0  # seconds between our height announcements
RETRANSMIT_INTERVAL = 1.0  # seconds between re-gossip of our current-round messages
CONSENSUS_TYPES = frozenset({"proposal", "vote", "commit"})
PROPOSAL_ROUNDS_AHEAD = 64  # proposals further ahead of our round are not tracked or relayed
P2P_TYPES = GOSSIP_TYPES | {"commit", "status", "get_blocks"}
# TEST-ONLY switch, read from the environment by fault tests; never set in production.
_TEST_HOOKS = os.environ.get("ADS_TEST_HOOKS") == "1"


@dataclass(slots=True)
class _Sub:
    send: trio.MemorySendChannel[NewBlock]


@dataclass(slots=True, eq=False)
class _Intake:
    """A transaction waiting for verification and admission; `result` is True (added),
    False (already known) or the TxRejected to answer with."""

    env: Envelope
    txid: bytes
    msg: bytes  # the signed bytes
    gossip: bool = True  # we send it to peers once admitted (False: a peer's batch we relay)
    result: bool | TxRejected | None = None
    done: trio.Event = field(default_factory=trio.Event)


class NotAValidator(AdsError):
    """Our key is not in the validator set of that height: we do not sign (a full node)."""


class _MemberSigner:
    """The double-sign guard, asked only for heights whose validator set holds our key.

    A node that is not a validator (a full node that follows by sync and gossip) would
    otherwise sign votes; the core counts its own votes, and one from outside the set breaks
    building the commit (`Commit.from_votes`). The core treats the refusal as `sign_refused`."""

    def __init__(self, guard: DoubleSignGuard, validators_at: Callable[[int], ValidatorSet]) -> None:
        self.guard = guard
        self.validators_at = validators_at

    @property
    def pub(self) -> bytes:
        return self.guard.pub

    def _check(self, height: int) -> None:
        try:
            member = self.validators_at(height).index_of(self.guard.pub) is not None
        except LookupError:
            member = False
        if not member:
            raise NotAValidator(f"our key is not in the validator set of height {height}")

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        self._check(proposal.height)
        return self.guard.sign_proposal(chain_id, proposal)

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        self._check(vote.height)
        return self.guard.sign_vote(chain_id, vote)


def _check_gov_quorum(view: Any, env: Envelope) -> None:
    """Admission of any `gov` tx, not only a signer's first pending one: every `auth` key is a
    member and there are `threshold` of them (signatures were verified already)."""
    raw = view.get(GOV_MEMBERS)
    gov = None if raw is None else decode_record(raw)
    if gov is None:
        raise TxRejected("quorum", "this chain has no governance members")
    outsiders = [p for p in env.signers() if p not in set(gov["members"])]
    if outsiders:
        raise TxRejected("not_member", f"{outsiders[0].hex()[:16]} is not a governance member")
    if len(env.auth) < gov["threshold"]:
        raise TxRejected("quorum", f"gov needs {gov['threshold']} member signatures, this tx has "
                         f"{len(env.auth)}; collect more cosigners before submitting")  # fmt: skip


def _nonce_in(view: Any, signer: bytes) -> int:
    raw = view.get(acct_key(signer))
    return 0 if raw is None else int(decode_record(raw)["nonce"])


class Node:
    """A validator node: open with `Node(cfg)`, run with `await node.run()`."""

    def __init__(self, cfg: NodeConfig, hooks: Callable[["Node"], FaultHooks] | None = None) -> None:
        self.cfg = cfg
        self.genesis = Genesis.load(cfg.genesis_path)
        self.chain_id = self.genesis.chain_id
        self.node_key = load_key(cfg.node_key_path)
        self.validator_key = load_key(cfg.validator_key_path)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger.open(cfg.data_dir / "state.lmdb", self.genesis, cfg.keep_versions)
        self.wal = FileWAL(cfg.data_dir / "wal")
        self.signer = _MemberSigner(
            DoubleSignGuard(self.validator_key, FileSignerState(cfg.data_dir / "signer_state.json")),
            self.ledger.validators_at)
        self.mempool = Mempool(max_txs=cfg.mempool_max_txs, max_bytes=cfg.mempool_max_bytes)
        # The core reaps and commits from a worker thread; a block's commit and the mempool's
        # update happen under this lock so that admission never sees one without the other.
        self._mp_lock = threading.RLock()
        self.ledger.reap = self._reap
        self.ledger.has_pending_txs = lambda: len(self.mempool) > 0
        self.ledger.commit_guard = self._mp_lock
        self.ledger.after_commit = self._mempool_after_commit
        self.core = self._recover_core()
        self.p2p = PeerManager(
            self.node_key, self.chain_id, parse_hostport(cfg.p2p_listen),
            [PeerAddr.parse(p) for p in cfg.peers], self._on_p2p,
            allowed=cfg.p2p_allow,  # a permissioned network: configured peers and these only
            config=P2PConfig(max_frame=cfg.max_frame_bytes, message_types=frozenset(P2P_TYPES),
                             relay_types=GOSSIP_TYPES),
        )  # fmt: skip
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, Any]](4096)
        self._intake_send, self._intake_recv = trio.open_memory_channel[_Intake](math.inf)
        self._tip: tuple[int, int] = (-1, 0)  # (height, its block time), for admission checks
        self._committed_txids: tuple[int, list[bytes]] = (0, [])  # the last block's, for waiters
        self._subs: list[_Sub] = []
        self._waiters: dict[bytes, trio.Event] = {}
        self._peer_heights: dict[str, int] = {}
        self._sync_asked: int = 0  # highest height requested by block sync
        self._sync_peer: str | None = None  # …and of whom
        self._proposals_seen: dict[tuple[int, int, bytes], tuple[bytes, int]] = {}
        self._proposals_top = 0  # the height _proposals_seen was last pruned at
        self._distrust: dict[str, float] = {}
        self._strikes: dict[str, int] = {}  # peer → times it failed to deliver claimed blocks
        # (peer, when asked, our height then, its claimed height): judged after the stall window
        self._sync_watch: tuple[str, float, int, int] | None = None  # peer → monotonic time until its heights are ignored
        self._block_times: deque[tuple[float, int]] = deque(maxlen=64)  # (wall s, num txs)
        self.counters: dict[str, int] = {"txs_received": 0, "txs_rejected": 0, "blocks": 0,
                                         "sync_blocks": 0, "bad_p2p": 0, "proposals_dropped": 0, "sync_peers_distrusted": 0,
                                         "evidence_rejected": 0}  # fmt: skip
        self.api_port: int | None = None
        self.p2p_port: int | None = None
        self._stopping = False
        self.byz = FaultHooks() if hooks is None else hooks(self)  # TEST-ONLY faults; honest: no-ops

    # ------------------------------------------------------------------ startup

    def _recover_core(self) -> Core:
        h = self.ledger.height
        last_ended, records = self.wal.replay()
        if last_ended > h:
            raise RuntimeError(
                f"the consensus WAL ended height {last_ended} but the store is at {h}: the store "
                "lost committed blocks; restore it from a backup or resync this node from peers"
            )
        # the ledger stores the proposer priorities: the core need not replay them from height 1
        core = Core(chain_id=self.chain_id, signer=self.signer, app=self.ledger, wal=self.wal,
                    height=h + 1, last_commit=self.ledger.commit_at(h),
                    priorities=self.ledger.priorities_at_next())  # fmt: skip
        if last_ended < h:
            # crashed after storing block h, before its end-of-height marker: h is done
            self.wal.end_height(h)
            kv(log, logging.INFO, "discarded WAL records of a stored height", height=h)
        elif records:
            core.recover(records)
            kv(log, logging.INFO, "replayed consensus WAL", height=h + 1, records=len(records))
        return core

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as n:
                self._nursery = n
                self.p2p_port = await n.start(self.p2p.run)
                host, port = parse_hostport(self.cfg.api_listen)
                self.api_port = await n.start(serve_http, self, host, port)
                n.start_soon(self._consensus_loop)
                n.start_soon(self._intake_loop)
                n.start_soon(self._status_loop)
                n.start_soon(self._retransmit_loop)
                n.start_soon(self.byz.run)
                if _TEST_HOOKS:
                    n.start_soon(self._test_links_loop)
                for key in self.cfg.ignored:
                    kv(log, logging.WARNING, "config.toml key ignored: consensus timing and block "
                       "limits are on chain (genesis params, gov params.set)", key=key)  # fmt: skip
                kv(log, logging.INFO, "node started", moniker=self.cfg.moniker, chain=self.chain_id,
                   height=self.ledger.height, p2p=self.p2p_port, api=self.api_port,
                   node_id=self.p2p.node_id[:16], validator=self.validator_key.pub.hex()[:16])  # fmt: skip
                task_status.started()
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping = True
        n = getattr(self, "_nursery", None)
        if n is not None:
            n.cancel_scope.cancel()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.wal.close()
        with contextlib.suppress(Exception):
            self.ledger.close()

    # ------------------------------------------------------------------ consensus

    def _now(self) -> int:
        return int(time.time() * 1000)

    async def _consensus_loop(self) -> None:
        core = self.core
        await trio.to_thread.run_sync(core.start, self._now())
        self._after_step()
        while True:
            deadline = core.next_deadline()
            item: tuple[str, Any] | None = None
            if deadline is None:
                item = await self._inbox.receive()
            else:
                delay = max(0.0, (deadline - self._now()) / 1000)
                with trio.move_on_after(delay):
                    item = await self._inbox.receive()
            batch = [item] if item is not None else []
            while len(batch) < 256:  # take what is already queued: one thread hop for many
                try:
                    batch.append(self._inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await trio.to_thread.run_sync(self._step, batch)
            self._after_step()

    def _step(self, batch: Sequence[tuple[str, Any]]) -> None:
        """One or more core inputs, then any due timeouts (runs in a worker thread)."""
        core = self.core
        for kind, payload in batch:
            if kind == "msg":
                core.on_message(payload, self._now())
            elif kind == "txs":
                core.txs_available(self._now())
        d = core.next_deadline()
        if d is not None and d <= self._now():
            core.on_timeout(self._now())

    def _after_step(self) -> None:
        for msg in self.core.outbox():
            self._broadcast_consensus(msg)
        for block, commit in self.core.decisions():
            self._on_decided(block, commit)
        for ev in self.core.evidence():
            try:
                new = self.ledger.add_evidence(ev)
            except RemoteError:
                continue  # e.g. the pool's bound: our own detection never stops consensus
            if new:
                kv(log, logging.WARNING, "equivocation detected", validator=ev.validator.hex()[:16],
                   height=ev.vote_a.height, round=ev.vote_a.round)  # fmt: skip
                self.p2p.broadcast("evidence", ev.to_obj())
        ask = self._want_sync()
        if ask is not None:
            self._request_blocks(*ask)

    def _broadcast_consensus(self, msg: Message) -> None:
        if self.byz.on_send(msg):
            return
        if isinstance(msg, ProposalMessage):
            self.p2p.broadcast("proposal", msg.to_obj())
        elif isinstance(msg, VoteMessage):
            self.p2p.broadcast("vote", msg.to_obj())
        else:
            self.p2p.broadcast("commit", msg.to_obj())

    def _on_decided(self, block: Block, commit: Commit) -> None:
        h = block.header.height
        self.counters["blocks"] += 1
        self._block_times.append((time.monotonic(), len(block.txs)))
        if self._waiters:
            ch, txids = self._committed_txids
            if ch != h:
                txids = [parse_envelope(t).txid(self.chain_id) for t in block.txs]
            for txid in txids:
                ev = self._waiters.pop(txid, None)
                if ev is not None:
                    ev.set()
        note = NewBlock(block.header, len(block.txs))
        for sub in list(self._subs):
            try:
                sub.send.send_nowait(note)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subs.remove(sub)  # a slow subscriber reconnects and catches up
                sub.send.close()
        if h % 100 == 0 or len(block.txs):
            kv(log, logging.INFO, "committed block", height=h, txs=len(block.txs),
               round=commit.round, id=block.block_id().hex()[:12])  # fmt: skip
        self.p2p.broadcast("status", {"height": self.byz.status_height(h)})

    async def _test_links_loop(self) -> None:
        """TEST-ONLY: HOME/test_links.json {"down": [node_id, ...]} severs links (partitions)."""
        path = self.cfg.home / "test_links.json"
        down: set[str] = set()
        while True:
            await trio.sleep(0.2)
            try:
                want = set(json.loads(path.read_text()).get("down", [])) if path.exists() else set()
            except (ValueError, OSError):
                continue
            for pid in want - down:
                self.p2p.set_link(pid, False)
            for pid in down - want:
                self.p2p.set_link(pid, True)
            down = want

    def _mempool_after_commit(self, block: Block, txids: list[bytes]) -> None:
        with self._mp_lock:
            hd = block.header
            self._tip = (hd.height, hd.time)
            self._committed_txids = (hd.height, txids)
            view, t, next_h = self._check_context(self._now())  # one view, no block decode per check
            touched: list[bytes] | None = None
            if len(txids) == len(block.txs):  # only the block's signers' nonces moved
                touched = []
                for raw, txid in zip(block.txs, txids):
                    signer = self.mempool.signer_of(txid)
                    if signer is None:
                        with contextlib.suppress(DecodeError):
                            signer = parse_envelope(raw).signer
                    if signer is not None:
                        touched.append(signer)
            self.mempool.update(txids, lambda signer: _nonce_in(view, signer), touched)
            dropped = self.mempool.recheck(
                lambda env: check_tx(view, self.chain_id, env.raw, t, verify_sigs=False, height=next_h).ok,
                RECHECK_PER_BLOCK)
        if dropped:
            kv(log, logging.INFO, "mempool recheck dropped txs", height=block.header.height, txs=dropped)

    def _reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        with self._mp_lock:
            return [p.env.raw for p in self.mempool.reap(max_bytes, max_txs)]

    # ------------------------------------------------------------------ P2P input

    async def _on_p2p(self, peer: str, mtype: str, body: codec.Value) -> bool:
        """A peer's message. RemoteError disconnects the peer; True relays gossip."""
        if mtype in CONSENSUS_TYPES:
            try:
                if type(body) is not dict or body.get("kind") != mtype:
                    raise DecodeError(f"a {mtype} message must carry kind {mtype!r}")
                msg = message_from_obj(body)
            except DecodeError as e:
                self.counters["bad_p2p"] += 1
                raise DecodeError(f"bad {mtype} message: {e}") from e
            if isinstance(msg, CommitMessage):
                if msg.height <= self.ledger.height:
                    return False
                self.counters["sync_blocks"] += 1  # blocks received with their commits
            elif isinstance(msg, ProposalMessage) and not self._first_proposal(msg):
                return False  # neither kept nor relayed (DESIGN §6: one per height and round)
            await self._inbox_send.send(("msg", msg))
            return mtype != "commit"
        if mtype in ("tx", "txs"):
            raws = [body] if mtype == "tx" else body
            if type(raws) is not list or len(raws) > MAX_TXS_MESSAGE or any(type(r) is not bytes for r in raws):
                raise DecodeError(f"a {mtype} message carries envelope bytes (at most {MAX_TXS_MESSAGE})")
            items = []
            for raw in raws:
                with contextlib.suppress(RemoteError):  # one bad tx does not spoil the batch
                    items.append(self._intake(raw))
            if not items:
                return False
            for it in items:
                it.gossip = False  # the peer manager relays the message itself
            await self._submit_intake(items)
            return any(it.result is True for it in items)  # relay what taught us something
        if mtype == "status":
            h = body.get("height") if type(body) is dict else None
            if type(h) is not int or h < 0:
                raise DecodeError("status carries {height: uint}")
            if self._distrust.get(peer, 0.0) <= time.monotonic():  # see _status_loop
                self._peer_heights[peer] = h
            ask = self._want_sync()
            if ask is not None:
                self._request_blocks(*ask)
            return False
        if mtype == "get_blocks":
            if type(body) is not dict or type(body.get("from")) is not int or type(body.get("count")) is not int:
                raise DecodeError("get_blocks carries {from: uint, count: uint}")
            await self._serve_blocks(peer, body["from"], min(max(body["count"], 0), SYNC_BATCH))
            return False
        if mtype == "evidence":
            try:
                ev = DuplicateVoteEvidence.from_obj(body)
                return self.ledger.add_evidence(ev)
            except RemoteError as e:  # malformed, too old, not verifying: dropped and counted
                self.counters["evidence_rejected"] += 1
                if self.counters["evidence_rejected"] % 100 == 1:
                    kv(log, logging.WARNING, "evidence rejected", peer=peer[:12], why=str(e)[:120],
                       rejected=self.counters["evidence_rejected"])  # fmt: skip
                if isinstance(e, DecodeError):
                    raise  # malformed bytes: a protocol violation, the peer is disconnected
                return False  # (an honest peer a few blocks behind may relay it at the edge)
        return False

    def _first_proposal(self, msg: ProposalMessage) -> bool:
        """True for the first well-signed proposal of a validator for (height, round) within
        reach (it is kept and relayed); a second, different one is dropped and counted, so a
        proposer flooding a round costs one signature check per message and is never relayed."""
        p = msg.proposal
        top = self.ledger.height
        if not top < p.height <= top + 2:
            return False  # decided already, or too far ahead to matter
        if p.round > self.core.round + PROPOSAL_ROUNDS_AHEAD:
            # the core would compute proposer(round) — O(round) — before the signature check;
            # a round this far ahead is reached by votes (L55) and its proposal retransmitted
            return False
        try:
            member = self.ledger.validators_at(p.height).index_of(p.proposer) is not None
        except LookupError:
            member = False
        if msg.block_id != p.block or not member or not verify(p.proposer, p.sig, p.sign_bytes(self.chain_id)):
            # (a real signature copied beside another block must not shadow the real proposal)
            self.counters["bad_p2p"] += 1
            return False
        key = (p.height, p.round, p.proposer)
        seen = self._proposals_seen.get(key)
        if seen is None:
            if self._proposals_top != top:  # bounded: 2 heights × rounds in reach × validators
                self._proposals_seen = {k: v for k, v in self._proposals_seen.items() if k[0] > top}
                self._proposals_top = top
            self._proposals_seen[key] = (p.block, p.pol_round)
            return True
        if seen != (p.block, p.pol_round):
            self.counters["proposals_dropped"] += 1
            if self.counters["proposals_dropped"] % 100 == 1:
                kv(log, logging.WARNING, "a validator sent a second proposal for one round; dropped",
                   validator=p.proposer.hex()[:16], height=p.height, round=p.round,
                   dropped=self.counters["proposals_dropped"])  # fmt: skip
        return False

    async def _serve_blocks(self, peer: str, start: int, count: int) -> None:
        if await self.byz.serve_blocks(peer, start, count):
            return
        top = self.ledger.height
        for h in range(max(start, 1), min(start + count, top + 1)):
            raw = self.ledger.block_bytes(h)
            commit = self.ledger.commit_at(h)
            if raw is None or commit is None:
                break
            body = {"kind": "commit", "block": codec.decode(raw, max_size=64 * 1024 * 1024),
                    "commit": commit.to_obj()}
            # a full outbound queue would disconnect the peer (commits are never dropped): wait
            # for the writer to drain it below half, for a bounded time
            for _ in range(SERVE_WAIT_STEPS):
                queued = self.p2p.queued_bytes(peer)
                if queued is None or queued + len(raw) <= self.p2p.config.queue_bytes // 2:
                    break
                await trio.sleep(0.01)
            if not self.p2p.send(peer, "commit", body):
                break
            await trio.sleep(0)

    def _want_sync(self) -> tuple[str, int] | None:
        """(peer, from height) when a peer is ahead of us and nothing is asked already."""
        ours = self.ledger.height
        if not self._peer_heights:
            return None
        peer, top = max(self._peer_heights.items(), key=lambda kv_: kv_[1])
        if top <= ours:
            return None
        if self._sync_asked > ours + SYNC_BATCH // 2:
            return None  # a batch is on its way
        return peer, max(ours + 1, self._sync_asked + 1)

    def _request_blocks(self, peer: str, start: int) -> None:
        if self.p2p.send(peer, "get_blocks", {"from": start, "count": SYNC_BATCH}):
            self._sync_asked = start + SYNC_BATCH - 1
            self._sync_peer = peer
            if self._sync_watch is None or self._sync_watch[0] != peer:
                claimed = self._peer_heights.get(peer, start)
                self._sync_watch = (peer, time.monotonic(), self.ledger.height, claimed)
        else:  # gone (or its queue is full): its claim must not keep us from asking others
            self._peer_heights.pop(peer, None)

    def _forget_unhelpful_peers(self) -> None:
        """Heights of disconnected peers are forgotten. A peer we asked for blocks must have
        moved us on, within SYNC_STALL_TICKS status intervals, by SYNC_MIN_PROGRESS heights (or
        to its claimed height): consensus alone moves a live node ~1 height/s, sync ~hundreds.
        Otherwise its height is ignored, for longer each time (one lying status must neither
        stall block sync nor keep a live validator saying it is catching up)."""
        connected = set(self.p2p.connected_peers())
        for pid in [p for p in self._peer_heights if p not in connected]:
            del self._peer_heights[pid]
        watch = self._sync_watch
        if watch is None or time.monotonic() - watch[1] < SYNC_STALL_TICKS * STATUS_INTERVAL:
            return
        self._sync_watch = None
        peer, _, base, claimed = watch
        if self.ledger.height - base >= min(SYNC_MIN_PROGRESS, claimed - base):
            return  # it delivered
        strikes = self._strikes[peer] = self._strikes.get(peer, 0) + 1
        hold = min(SYNC_DISTRUST_S * 2 ** (strikes - 1), SYNC_DISTRUST_MAX_S)
        self.counters["sync_peers_distrusted"] += 1
        kv(log, logging.WARNING, "block sync: peer did not deliver the blocks it claims; ignoring "
           "its height", peer=peer[:12], claimed=claimed, ours=self.ledger.height, seconds=hold)  # fmt: skip
        self._peer_heights.pop(peer, None)
        self._distrust[peer] = time.monotonic() + hold
        if self._sync_peer == peer:
            self._sync_asked, self._sync_peer = 0, None

    async def _status_loop(self) -> None:
        while True:
            self._forget_unhelpful_peers()
            self.p2p.broadcast("status", {"height": self.byz.status_height(self.ledger.height)})
            if self._sync_asked and self._sync_asked <= self.ledger.height:
                self._sync_asked = 0
            ask = self._want_sync()
            if ask is None and self._sync_asked and self._sync_asked > self.ledger.height:
                self._sync_asked = 0  # a lost batch: ask again next time
            elif ask is not None:
                self._request_blocks(*ask)
            await trio.sleep(STATUS_INTERVAL)

    async def _retransmit_loop(self) -> None:
        while True:
            await trio.sleep(RETRANSMIT_INTERVAL)
            for msg in self.core.retransmit():
                self._broadcast_consensus(msg)

    # ------------------------------------------------------------------ transactions

    def _intake(self, raw: bytes) -> _Intake:
        """Parse a transaction once: its sign bytes and txid are reused by every later check."""
        try:
            env = parse_envelope(raw)
        except DecodeError as e:
            raise TxRejected("malformed", f"the transaction does not decode: {e}") from e
        msg = env.sign_bytes(self.chain_id)
        return _Intake(env, H(msg), msg)

    async def _admit(self, raw: bytes) -> tuple[bytes, bool]:
        """Check one transaction and add it to the mempool. Returns (txid, newly added);
        raises TxRejected. It joins the next verification batch (see `_intake_loop`)."""
        item = self._intake(raw)
        await self._submit_intake([item])
        if isinstance(item.result, BaseException):
            raise item.result
        return item.txid, item.result is True

    async def _submit_intake(self, items: list[_Intake]) -> None:
        for it in items:
            self._intake_send.send_nowait(it)  # unbounded: callers are bounded (HTTP slots, P2P readers)
        await items[-1].done.wait()  # batches are processed in order: the last one done means all

    async def _intake_loop(self) -> None:
        """Verify and admit queued transactions in batches: one worker-thread hop for many
        signature checks (libsodium releases the GIL), one mempool-lock hold for their admission.
        A small batch is checked on the event loop when the lock is free (measured: the hop's
        wake-ups cost the loop several times a few verifications). Arrival order is kept, so
        each signer's nonces stay in sequence."""
        while True:
            batch = [await self._intake_recv.receive()]
            while len(batch) < INTAKE_BATCH:
                try:
                    batch.append(self._intake_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if len(batch) <= INLINE_BATCH and self._mp_lock.acquire(blocking=False):
                try:  # a thread hop costs the event loop more than a few verifications
                    signal = self._verify_and_admit(batch)
                finally:
                    self._mp_lock.release()
            else:  # many signatures, or a block commit holds the lock: off the event loop
                signal = await trio.to_thread.run_sync(self._verify_and_admit, batch)
            fresh = [it.env.raw for it in batch if it.result is True and it.gossip]
            for it in batch:
                it.done.set()
            if signal:  # the mempool was empty: an idle proposer may be waiting for this
                with contextlib.suppress(trio.WouldBlock):
                    self._inbox_send.send_nowait(("txs", None))
            self._gossip_txs(fresh)

    def _gossip_txs(self, raws: list[bytes]) -> None:
        """Send newly admitted transactions to every peer as `txs` messages of bounded size."""
        start, size = 0, 0
        for i, raw in enumerate(raws):
            if i > start and (size + len(raw) > GOSSIP_BATCH_BYTES or i - start >= GOSSIP_BATCH_TXS):
                self.p2p.broadcast("txs", raws[start:i])
                start, size = i, 0
            size += len(raw) + 8
        if start < len(raws):
            self.p2p.broadcast("txs", raws[start:])

    def _verify_and_admit(self, batch: Sequence[_Intake]) -> bool:
        """(worker thread) Sets each item's `result`; True if the mempool went from empty to not."""
        with self._mp_lock:  # cheap filters first: no signature check for what we already have
            for it in batch:
                if self.mempool.seen(it.txid) or self.ledger.tx_location(it.txid) is not None:
                    it.result = False
        for it in batch:
            if it.result is None:
                for i, (pub, sig) in enumerate(it.env.auth):
                    if not verify(pub, sig, it.msg):
                        self.counters["txs_rejected"] += 1
                        it.result = TxRejected("bad_signature", f"auth[{i}] signature by {pub.hex()} does "
                                               f"not verify; sign it for chain {self.chain_id!r}")  # fmt: skip
                        break
                else:  # keyed by the whole envelope's bytes: block checks may skip these
                    self.ledger.note_verified(H(it.env.raw))
        with self._mp_lock:  # nonce reads and adds see one consistent (store, mempool)
            was_empty = len(self.mempool) == 0
            view, t, next_h = self._check_context(self._now())
            nonces: dict[bytes, int] = {}
            for it in batch:
                if it.result is not None:
                    continue
                env = it.env
                if env.signer not in nonces:
                    nonces[env.signer] = _nonce_in(view, env.signer)

                def check_first(e_: Envelope) -> None:
                    r = check_tx(view, self.chain_id, e_.raw, t, verify_sigs=False, height=next_h)
                    if not r.ok:
                        raise TxRejected(r.code, r.log)

                try:
                    if env.type == "gov":  # a quorum is never "completed" later by a proposer
                        _check_gov_quorum(view, env)
                    self.mempool.add(it.txid, env, nonces[env.signer], check_first)
                except AlreadySeen:
                    it.result = False  # the same tx twice in one batch
                except MempoolError as e:
                    self.counters["txs_rejected"] += 1
                    it.result = TxRejected(e.code, str(e), 429 if e.code == "mempool_full" else 400)
                except TxRejected as e:
                    self.counters["txs_rejected"] += 1
                    it.result = e
                else:
                    self.counters["txs_received"] += 1
                    it.result = True
            return was_empty and len(self.mempool) > 0

    def _check_context(self, now: int) -> tuple[Any, int, int]:
        """(latest state view, block time for admission checks, next height); under the lock."""
        h = self.ledger.height
        if self._tip[0] != h:
            self._tip = (h, self.ledger.last_block_time())
        return self.ledger.state_view(), max(self._tip[1] + 1, now), h + 1

    # ------------------------------------------------------------------ NodeBackend

    @property
    def node_id(self) -> bytes:
        return self.node_key.pub

    def status(self) -> NodeStatus:
        info = self.ledger.last_info()
        # connected, believed peers only; with two or more, the second highest claim, so that
        # one lying peer cannot make a live node say it is catching up
        claims = sorted(self._peer_heights.values(), reverse=True)
        top = claims[1] if len(claims) >= 2 else (claims[0] if claims else 0)
        return NodeStatus(
            chain_id=self.chain_id,
            node_id=self.node_key.pub,
            latest_height=0 if info is None else info.height,
            latest_block_id=None if info is None else info.block_id,
            latest_time=None if info is None else info.time,
            catching_up=top > (0 if info is None else info.height) + 1,
        )

    async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float) -> TxResult:
        self.byz.on_submit(raw)
        txid, _ = await self._admit(raw)  # gossiped to peers by the intake loop once admitted
        if wait_commit and self.ledger.tx_location(txid) is None:
            ev = self._waiters.setdefault(txid, trio.Event())
            with trio.move_on_after(timeout_s):
                await ev.wait()
        info = self.get_tx(txid)
        if info is None:
            return TxResult(txid, None, None, "pending", "admitted to the mempool; not yet in a block")
        return TxResult(txid, info.height, info.ok, info.code, info.log)

    def get_tx(self, txid: bytes) -> TxInfo | None:
        loc = self.ledger.tx_location(txid)
        if loc is None:
            return None
        h, i = loc
        block = self.ledger.block(h)
        res = self.ledger.tx_result(h, i)
        if block is None or res is None:
            return None
        return TxInfo(txid, h, i, res["ok"], res["code"], res["log"], block.txs[i])

    def get_block(self, height: int) -> Block | None:
        return self.ledger.block(height)

    def get_commit(self, height: int) -> tuple[Header, Commit] | None:
        b = self.ledger.block(height)
        c = self.ledger.commit_at(height)
        return None if b is None or c is None else (b.header, c)

    def get_validators(self, height: int) -> ValidatorSet | None:
        if height < 1 or height > self.ledger.height + 2:
            return None
        try:
            return self.ledger.validators_at(height)
        except LookupError:
            return None

    def get_state(self, key: bytes, height: int | None) -> StateRead:
        top = self.ledger.height
        if top == 0:
            raise HeightUnavailable("future", "no block is committed yet; state is provable from height 1")
        if height is not None and height > top:
            raise HeightUnavailable("future", f"height {height} is beyond the latest, {top}")
        if height is not None and height < 1:
            raise HeightUnavailable("pruned", "state is provable from height 1")
        try:
            h, value, proof = self.ledger.get_state(key, height)
        except VersionUnavailable as e:
            raise HeightUnavailable("pruned", f"{e}; ask an archive node or a more recent height") from e
        return StateRead(h, value, proof)

    @contextlib.asynccontextmanager
    async def subscribe_blocks(self) -> AsyncIterator[AsyncIterator[NewBlock]]:
        send, recv = trio.open_memory_channel[NewBlock](64)
        sub = _Sub(send)
        self._subs.append(sub)
        try:
            async with recv:
                yield recv.__aiter__()
        finally:
            if sub in self._subs:
                self._subs.remove(sub)
            send.close()

    def metrics(self) -> Sequence[Metric]:
        info = self.ledger.last_info()
        now = time.monotonic()
        recent = [(t, n) for t, n in self._block_times if now - t <= 10.0]
        tps = sum(n for _, n in recent) / 10.0
        gaps = [b[0] - a[0] for a, b in zip(list(self._block_times)[:-1], list(self._block_times)[1:])]
        pm = self.p2p.metrics()
        out = [
            Metric("ads_height", "gauge", "latest committed height", 0 if info is None else info.height),
            Metric("ads_round", "gauge", "consensus round at the current height", self.core.round),
            Metric("ads_peers", "gauge", "connected validator peers", len(self.p2p.connected_peers())),
            Metric("ads_mempool_txs", "gauge", "pending transactions", len(self.mempool)),
            Metric("ads_mempool_bytes", "gauge", "pending transaction bytes", self.mempool.total_bytes),
            Metric("ads_block_interval_seconds", "gauge", "mean seconds between recent blocks",
                   (sum(gaps) / len(gaps)) if gaps else 0.0),
            Metric("ads_tx_per_second", "gauge", "committed transactions per second over 10 s", tps),
        ]
        for name, value in sorted(self.counters.items()):
            out.append(Metric(f"ads_{name}_total", "counter", f"{name.replace('_', ' ')}", value))
        for name, value in sorted(self.core.stats.items()):
            out.append(Metric("ads_consensus_events_total", "counter", "consensus core events", value,
                              {"event": name}))  # fmt: skip
        for name, value in sorted(pm.items()):
            out.append(Metric("ads_p2p_total", "counter", "p2p counters", value, {"what": name}))
        return out


async def run_node(home: Path | str, hooks: Callable[["Node"], FaultHooks] | None = None) -> None:
    """`ads node start`: run until SIGINT/SIGTERM, then stop cleanly. `hooks` makes the
    TEST-ONLY faults of a Byzantine validator (ads_ledger.testing.byzantine)."""
    cfg = load_config(home)
    node = Node(cfg, hooks)
    async with trio.open_nursery() as n:

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                async for s in sigs:
                    kv(log, logging.INFO, "stopping", signal=signal.Signals(s).name)
                    node.stop()
                    n.cancel_scope.cancel()
                    return

        n.start_soon(watch_signals)
        await node.run()
        n.cancel_scope.cancel()
