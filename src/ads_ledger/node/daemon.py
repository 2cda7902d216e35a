"""The validator daemon: the trio shell around the ledger, the consensus core, P2P and the API.

One task owns the consensus core (`_consensus_loop`): every input — a peer's message, a
timeout, "transactions are waiting" — is one core step, run whole in a worker thread so that
its fsyncs (WAL, double-sign guard) and the block's LMDB commit never stall the event loop.
After each step the shell drains the core's outbox to P2P and its decisions to the mempool,
the event stream and the metrics. Everything else (P2P, API, block sync, status gossip) only
reads the ledger or feeds the consensus inbox.

Block sync: `commit` messages above our height that arrive together are stored by the ledger in
one LMDB transaction (`Ledger.apply_synced_batch`, each block fully checked), and the core is
then replaced by a fresh one above them, as after a restart (`_sync_step`).

Restart: the store is at height h (one LMDB transaction per block, or per synced batch; the
store is at a whole block either way). The WAL holds the inputs
of height h+1 after the end-of-height marker of h; the core replays them and resumes exactly
where it stopped. A crash between the store commit of h and its WAL marker leaves records of
height h, which are discarded (the block is already stored).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

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
from ads_ledger.core.crypto import verify
from ads_ledger.core.errors import DecodeError, RemoteError
from ads_ledger.core.types import Block, Commit, DuplicateVoteEvidence
from ads_ledger.node.api.routes import ApiConfig
from ads_ledger.node.api.server import serve_http
from ads_ledger.node.backend import NodeApi
from ads_ledger.node.block_sync import STATUS_INTERVAL, SYNC_BATCH, BlockSync
from ads_ledger.node.config import NodeConfig, load_config, load_key, parse_hostport
from ads_ledger.node.hooks import FaultHooks
from ads_ledger.node.intake import TxIntake
from ads_ledger.node.ledger import Ledger
from ads_ledger.node.logs import kv
from ads_ledger.node.mempool import Mempool
from ads_ledger.node.p2p.handshake import node_id, parse_node_id
from ads_ledger.node.p2p.peers import GOSSIP_TYPES, P2PConfig, PeerAddr, PeerManager
from ads_ledger.node.signer import MemberSigner
from ads_ledger.state.genesis import Genesis

__all__ = ["Node", "run_node", "commit_message_plaintext"]

log = logging.getLogger("ads_ledger.node.daemon")

SYNC_GATHER_S = 0.05  # how long the consensus loop waits to gather get_blocks answers…
SYNC_GATHER = 2 * SYNC_BATCH  # …up to this many blocks (two answers: one store transaction)
SERVE_WAIT_STEPS = 500  # × 10 ms: how long block serving waits for a peer's queue to drain
MAX_TXS_MESSAGE = 4096  # a peer's `txs` message carrying more is a protocol violation
MAX_STATUS_PEERS = 256  # node keys a `status` lists at most (a link-aware relay hint, not a directory)
RETRANSMIT_INTERVAL = 1.0  # seconds between re-gossip of our current-round messages
CONSENSUS_TYPES = frozenset({"proposal", "vote", "commit"})
PROPOSAL_ROUNDS_AHEAD = 64  # proposals further ahead of our round are not tracked or relayed
P2P_TYPES = GOSSIP_TYPES | {"commit", "status", "get_blocks"}
# TEST-ONLY switch, read from the environment by fault tests; never set in production.
_TEST_HOOKS = os.environ.get("ADS_TEST_HOOKS") == "1"


class Node:
    """A validator node: open with `Node(cfg)`, run with `await node.run()`."""

    def __init__(self, cfg: NodeConfig, hooks: Callable[["Node"], FaultHooks] | None = None) -> None:
        self.cfg = cfg
        self.genesis = Genesis.load(cfg.genesis_path)
        self.chain_id = self.genesis.chain_id
        self.node_key = load_key(cfg.node_key_path)
        self.validator_key = load_key(cfg.validator_key_path)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.mempool = Mempool(max_txs=cfg.mempool_max_txs, max_bytes=cfg.mempool_max_bytes,
                               max_per_signer=cfg.mempool_max_per_signer,
                               max_per_client=cfg.mempool_max_per_client)  # fmt: skip
        # The core reaps and commits from a worker thread; a block's commit and the mempool's
        # update happen under this lock so that admission never sees one without the other.
        self.commit_guard = threading.RLock()
        self.counters: dict[str, int] = {"txs_received": 0, "txs_rejected": 0, "blocks": 0,
                                         "sync_blocks": 0, "bad_p2p": 0, "proposals_dropped": 0, "sync_peers_distrusted": 0,
                                         "evidence_rejected": 0}  # fmt: skip
        # we are the ledger's host (LedgerHost): it proposes from and commits under our intake
        self.ledger = Ledger.open(cfg.data_dir / "state.lmdb", self.genesis, cfg.keep_versions, host=self,
                                  keep_blocks=cfg.keep_blocks)  # fmt: skip
        self.intake = TxIntake(self.chain_id, self.ledger, self.mempool, lock=self.commit_guard,
                               counters=self.counters, now=self._now,
                               broadcast=lambda t, b: self.p2p.broadcast(t, b), wake=self._wake)  # fmt: skip
        self.wal = FileWAL(cfg.data_dir / "wal")
        self.signer_state = FileSignerState(cfg.data_dir / "signer_state.json")
        self.signer = MemberSigner(DoubleSignGuard(self.validator_key, self.signer_state),
                                   self.ledger.validators_at)  # fmt: skip
        self.core = self._recover_core()
        self.p2p = PeerManager(
            self.node_key, self.chain_id, parse_hostport(cfg.p2p_listen),
            [PeerAddr.parse(p) for p in cfg.peers], self._on_p2p,
            allowed=cfg.p2p_allow,  # a permissioned network: configured peers and these only
            config=P2PConfig(max_frame=cfg.max_frame_bytes, message_types=frozenset(P2P_TYPES),
                             relay_types=GOSSIP_TYPES),
        )  # fmt: skip
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, Any]](4096)
        self.sync = BlockSync(STATUS_INTERVAL)
        self._synced: list[tuple[Block, Commit]] = []  # stored by block sync's fast path, not yet announced
        self.api = NodeApi(self)
        self._proposals_seen: dict[tuple[int, int, bytes], tuple[bytes, int]] = {}
        self._proposals_top = 0  # the height _proposals_seen was last pruned at
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
        core = self._new_core(h)
        if last_ended < h:
            # crashed after storing block h, before its end-of-height marker: h is done
            self.wal.end_height(h)
            kv(log, logging.INFO, "discarded WAL records of a stored height", height=h)
        elif records:
            core.recover(records)
            kv(log, logging.INFO, "replayed consensus WAL", height=h + 1, records=len(records))
        return core

    def _new_core(self, h: int) -> Core:
        # the ledger stores the proposer priorities: the core need not replay them from height 1
        return Core(chain_id=self.chain_id, signer=self.signer, app=self.ledger, wal=self.wal,
                    height=h + 1, last_commit=self.ledger.commit_at(h),
                    priorities=self.ledger.priorities_at_next())  # fmt: skip

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as n:
                self._nursery = n
                self.p2p_port = await n.start(self.p2p.run)
                host, port = parse_hostport(self.cfg.api_listen)
                api_cfg = ApiConfig(tx_rate_per_client=self.cfg.api_tx_rate_per_client,
                                    tx_burst_per_client=self.cfg.api_tx_burst_per_client)  # fmt: skip
                self.api_port = await n.start(functools.partial(serve_http, config=api_cfg),
                                              self.api, host, port)  # fmt: skip
                n.start_soon(self._consensus_loop)
                n.start_soon(self.intake.run)
                n.start_soon(self.intake.run_rechecks)
                n.start_soon(self._status_loop)
                n.start_soon(self._greet_loop)
                n.start_soon(self._retransmit_loop)
                n.start_soon(self.byz.run)
                if _TEST_HOOKS:
                    from ads_ledger.node.testhooks import links_loop  # TEST-ONLY, loaded only then

                    n.start_soon(links_loop, self.cfg.home, self.p2p)
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
            self.signer_state.close()
        with contextlib.suppress(Exception):
            self.ledger.close()

    # ------------------------------------------------------------------ consensus

    def _now(self) -> int:
        return int(time.time() * 1000)

    async def _consensus_loop(self) -> None:
        await trio.to_thread.run_sync(self.core.start, self._now())
        self._after_step()
        while True:
            deadline = self.core.next_deadline()  # (block sync may have replaced the core)
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
            if item is not None and self._syncing(batch):
                # a get_blocks answer is arriving: its blocks are stored together (one store
                # transaction), so wait a moment for the rest rather than take them one by one
                with trio.move_on_after(SYNC_GATHER_S):
                    while len(batch) < SYNC_GATHER:
                        batch.append(await self._inbox.receive())
            await trio.to_thread.run_sync(self._step, batch)
            self._after_step()

    def _syncing(self, batch: Sequence[tuple[str, Any]]) -> bool:
        """The batch holds blocks we asked block sync for, and more are due."""
        top = self.ledger.height
        n = sum(1 for k, p in batch if k == "msg" and isinstance(p, CommitMessage) and p.height > top)
        return 0 < n < SYNC_GATHER and self.sync.asked_to > top + n

    def _step(self, batch: Sequence[tuple[str, Any]]) -> None:
        """One or more core inputs, then any due timeouts (runs in a worker thread)."""
        synced = self._sync_step(batch)
        core = self.core
        for kind, payload in batch:
            if kind == "msg":
                if id(payload) not in synced:
                    core.on_message(payload, self._now())
            elif kind == "txs":
                core.txs_available(self._now())
        d = core.next_deadline()
        if d is not None and d <= self._now():
            core.on_timeout(self._now())

    def _sync_step(self, batch: Sequence[tuple[str, Any]]) -> set[int]:
        """Block sync's fast path (in the consensus worker thread): `commit` messages for two
        or more heights above ours in one batch (a `get_blocks` answer) are verified and stored
        by the ledger in one store transaction, not decided one by one by the core (a WAL
        record, an fsynced end-of-height marker and an LMDB fsync per block). Each block is
        checked as the core's path checks it: its commit against the set deciding its height,
        then `check_block`. If any was stored the core is replaced by a fresh one above them,
        as after a restart. Returns the ids of the messages it applied or refused."""
        msgs = [p for k, p in batch if k == "msg" and isinstance(p, CommitMessage)]
        top = self.ledger.height
        msgs = [m for m in msgs if m.height > top]
        if len({m.height for m in msgs}) < 2:
            return set()  # one height (a live node one block behind): the core decides it and
            # keeps what it buffered for the height after, which a fresh core would not have
        out = self.ledger.apply_synced_batch([(m.block, m.commit) for m in msgs])
        old = self.core
        for block, _, why in out.refused:  # counted as the core counts them
            key = "bad_commit" if why.what == "commit" else "invalid_block"
            old.stats[key] = old.stats.get(key, 0) + 1
            kv(log, logging.WARNING, "block sync: refused a block", height=block.header.height,
               why=why.what, reason=str(why)[:200])  # fmt: skip
        if out.applied:
            h = self.ledger.height
            self.wal.end_height(h)  # the old core's records (of a height now stored) are void
            core = self._new_core(h)
            core.stats = old.stats
            self.core = core
            core.start(self._now())
            self._synced.extend(out.applied)
        # what the batch neither applied nor refused (beyond a gap, or of a height decided
        # meanwhile) goes to the core as before: it counts a lie there or keeps a future block
        used = {id(b) for b, _ in out.applied} | {id(b) for b, _, _ in out.refused}
        return {id(m) for m in msgs if id(m.block) in used}

    def _after_step(self) -> None:
        synced, self._synced = self._synced, []
        for block, commit in synced:
            self._on_decided(block, commit, announce=False)
        if synced:
            self.p2p.broadcast("status", self._status(self.ledger.height))
        for msg in self.core.outbox():
            self._broadcast_consensus(msg)
        for block, commit in self.core.decisions():
            self._on_decided(block, commit)
        self.intake.poke_recheck()  # after a commit: the mempool recheck, off consensus's path
        for ev in self.core.evidence():
            try:
                new = self.ledger.add_evidence(ev)
            except RemoteError:
                continue  # e.g. the pool's bound: our own detection never stops consensus
            if new:
                kv(log, logging.WARNING, "equivocation detected", validator=ev.validator.hex()[:16],
                   height=ev.vote_a.height, round=ev.vote_a.round)  # fmt: skip
                self.p2p.broadcast("evidence", ev.to_obj())
        self._request_blocks(self.sync.want(self.ledger.height))

    def _broadcast_consensus(self, msg: Message) -> None:
        if self.byz.on_send(msg):
            return
        if isinstance(msg, ProposalMessage):
            self.p2p.broadcast("proposal", msg.to_obj())
        elif isinstance(msg, VoteMessage):
            self.p2p.broadcast("vote", msg.to_obj())
        else:
            self.p2p.broadcast("commit", msg.to_obj())

    def _on_decided(self, block: Block, commit: Commit, announce: bool = True) -> None:
        h = block.header.height
        self.counters["blocks"] += 1
        self.api.on_decided(block)
        if h % 100 == 0 or len(block.txs):
            kv(log, logging.INFO, "committed block", height=h, txs=len(block.txs),
               round=commit.round, id=block.block_id().hex()[:12])  # fmt: skip
        if announce:
            self.p2p.broadcast("status", self._status(h))

    def _status(self, height: int) -> dict[str, Any]:
        """A `status` message: our height; `base`, the lowest height whose block we can serve,
        once bodies below it are pruned ([storage] keep_blocks; absent: every height); `peers`,
        the node keys we are connected to (for peers' link-aware relay of transactions)."""
        body: dict[str, Any] = {"height": self.byz.status_height(height)}
        base = self.ledger.bodies_from()
        if base > 1:
            body["base"] = base
        # the peers we are connected to: they need not relay us the transactions one of them sends
        body["peers"] = [parse_node_id(p) for p in self.p2p.connected_peers()[:MAX_STATUS_PEERS]]
        return body

    def _wake(self) -> None:
        """Transactions wait in a mempool that was empty: an idle proposer may want them."""
        with contextlib.suppress(trio.WouldBlock):
            self._inbox_send.send_nowait(("txs", None))

    # ------------------------------------------------------------------ LedgerHost

    def reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        return self.intake.reap(max_bytes, max_txs)

    def has_pending_txs(self) -> bool:
        return self.intake.has_pending_txs()

    def after_commit(self, block: Block, txids: list[bytes]) -> None:
        self.intake.after_commit(block, txids)

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
                if msg.height <= self.sync.asked_to:  # pipelined: half of what we asked is here,
                    self._request_blocks(self.sync.want(msg.height))  # ask the next batch now
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
                    items.append(self.intake.parse(raw))
            if not items:
                return False
            for it in items:
                it.gossip = False  # the peer manager relays the message itself
            await self.intake.submit(items)
            return any(it.result is True for it in items)  # relay what taught us something
        if mtype == "status":
            h = body.get("height") if type(body) is dict else None
            base = body.get("base", 1) if type(body) is dict else None
            links = body.get("peers", []) if type(body) is dict else None
            if (type(h) is not int or h < 0 or type(base) is not int or base < 1 or type(links) is not list
                    or len(links) > MAX_STATUS_PEERS or any(type(x) is not bytes or len(x) != 32 for x in links)):
                raise DecodeError(f"status carries {{height: uint, base?: uint ≥ 1, peers?: [≤ {MAX_STATUS_PEERS} "
                                  "node keys of 32 bytes]}")  # fmt: skip
            self.p2p.note_links(peer, [node_id(x) for x in links])
            self.sync.on_status(peer, h, time.monotonic(), base)  # ignored while distrusted
            self._request_blocks(self.sync.want(self.ledger.height))
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
        if max(start, 1) < self.ledger.bodies_from() and start <= top:
            # pruned here ([storage] keep_blocks): our status says from where we serve, so
            # the peer asks another at once instead of waiting for blocks that do not come
            self.p2p.send(peer, "status", self._status(top))
            return
        for h in range(max(start, 1), min(start + count, top + 1)):
            got = self.ledger.sync_bytes(h)
            if got is None:
                break
            raw, commit = got
            plaintext = commit_message_plaintext(raw, commit)  # the stored bytes, not re-encoded
            # a full outbound queue would disconnect the peer (commits are never dropped): wait
            # for the writer to drain it below half, for a bounded time
            for _ in range(SERVE_WAIT_STEPS):
                queued = self.p2p.queued_bytes(peer)
                if queued is None or queued + len(raw) <= self.p2p.config.queue_bytes // 2:
                    break
                await trio.sleep(0.01)
            if not self.p2p.send_encoded(peer, "commit", plaintext):
                break
            await trio.sleep(0)

    def _request_blocks(self, ask: tuple[str, int] | None) -> None:
        """Send block sync's request, if any, and tell it how that went."""
        if ask is None:
            return
        peer, start = ask
        if self.p2p.send(peer, "get_blocks", {"from": start, "count": SYNC_BATCH}):
            self.sync.asked(peer, start, self.ledger.height, time.monotonic())
        else:  # gone (or its queue is full): its claim must not keep us from asking others
            self.sync.unreachable(peer)

    async def _status_loop(self) -> None:
        while True:
            out = self.sync.forget_unhelpful_peers(self.p2p.connected_peers(), self.ledger.height,
                                                   time.monotonic())  # fmt: skip
            if out is not None:
                self.counters["sync_peers_distrusted"] += 1
                kv(log, logging.WARNING, "block sync: peer did not deliver the blocks it claims; ignoring "
                   "its height", peer=out.peer[:12], claimed=out.claimed, ours=self.ledger.height,
                   seconds=out.seconds)  # fmt: skip
            self.p2p.broadcast("status", self._status(self.ledger.height))
            self._request_blocks(self.sync.tick(self.ledger.height))
            await trio.sleep(STATUS_INTERVAL)

    async def _greet_loop(self) -> None:
        """Our height to each peer as soon as it connects: a node behind asks for blocks at
        once instead of at our next status (up to STATUS_INTERVAL later)."""
        known: set[str] = set()
        while True:
            peers = set(self.p2p.connected_peers())
            for pid in peers - known:
                self.p2p.send(pid, "status", self._status(self.ledger.height))
            known = peers
            await self.p2p.wait_until(lambda: set(self.p2p.connected_peers()) != known)

    async def _retransmit_loop(self) -> None:
        while True:
            await trio.sleep(RETRANSMIT_INTERVAL)
            for msg in self.core.retransmit():
                self._broadcast_consensus(msg)


# The canonical plaintext of P2P message `commit` (protocol.md §3), {"b": {"block", "commit",
# "kind": "commit"}, "t": "commit"} with its keys in canonical order, around the stored canonical
# bytes of a block and of its commit: what encode_message gives for their decoded values.
_COMMIT_MSG = (b"\x82\xa1b\x83\xa5block", b"\xa6commit", b"\xa4kind\xa6commit\xa1t\xa6commit")


def commit_message_plaintext(block_raw: bytes, commit_raw: bytes) -> bytes:
    """`encode_message("commit", {"kind": "commit", "block": B, "commit": C})` where
    `block_raw`/`commit_raw` are the canonical encodings of B and C, without decoding them."""
    return b"".join((_COMMIT_MSG[0], block_raw, _COMMIT_MSG[1], commit_raw, _COMMIT_MSG[2]))


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
