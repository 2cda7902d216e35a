"""The node as the HTTP API sees it: `NodeApi` implements `api.backend.NodeBackend` over the
node's ledger, intake, block sync, consensus core and P2P, and keeps what only the API needs
(commit waiters, block subscribers, recent block times for the rates)."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

import trio

from ads_ledger.core.types import Block, Commit, Header, ValidatorSet
from ads_ledger.node.api.backend import (
    HeightUnavailable,
    Metric,
    NewBlock,
    NodeStatus,
    StateRead,
    SubmitResult,
    TxInfo,
)
from ads_ledger.node.storage.store import VersionUnavailable
from ads_ledger.state.envelope import parse_envelope

if TYPE_CHECKING:
    from ads_ledger.node.daemon import Node

__all__ = ["NodeApi"]


@dataclass(slots=True)
class _Sub:
    send: trio.MemorySendChannel[NewBlock]


class NodeApi:
    """`NodeBackend` for a running `Node`."""

    def __init__(self, node: "Node") -> None:
        self.node = node
        self.ledger = node.ledger
        self._subs: list[_Sub] = []
        self._waiters: dict[bytes, trio.Event] = {}
        self._block_times: deque[tuple[float, int]] = deque(maxlen=64)  # (wall s, num txs)

    @property
    def node_id(self) -> bytes:
        return self.node.node_key.pub

    def on_decided(self, block: Block) -> None:
        """A block was committed: wake its transactions' waiters, tell the subscribers."""
        h = block.header.height
        self._block_times.append((time.monotonic(), len(block.txs)))
        if self._waiters:
            ch, txids = self.node.intake.committed_txids
            if ch != h:
                txids = [parse_envelope(t).txid(self.node.chain_id) for t in block.txs]
            for txid in txids:
                ev = self._waiters.pop(txid, None)
                if ev is not None:
                    ev.set()
        changed = self.ledger.changed_cps(h)
        note = NewBlock(block.header, len(block.txs), None if changed is None else tuple(changed))
        for sub in list(self._subs):
            try:
                sub.send.send_nowait(note)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subs.remove(sub)  # a slow subscriber reconnects and catches up
                sub.send.close()

    # ------------------------------------------------------------------ NodeBackend

    def status(self) -> NodeStatus:
        info = self.ledger.last_info()
        return NodeStatus(
            chain_id=self.node.chain_id,
            node_id=self.node.node_key.pub,
            latest_height=0 if info is None else info.height,
            latest_block_id=None if info is None else info.block_id,
            latest_time=None if info is None else info.time,
            catching_up=self.node.sync.catching_up(0 if info is None else info.height),
        )

    async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float,
                        client: str | None = None) -> SubmitResult:  # fmt: skip
        self.node.byz.on_submit(raw)
        txid, _ = await self.node.intake.admit(raw, client)  # gossiped to peers by the intake loop once admitted
        if wait_commit and self.ledger.tx_location(txid) is None:
            ev = self._waiters.setdefault(txid, trio.Event())
            with trio.move_on_after(timeout_s):
                await ev.wait()
        info = self.get_tx(txid)
        if info is None:
            return SubmitResult(txid, None, None, "pending", "admitted to the mempool; not yet in a block")
        return SubmitResult(txid, info.height, info.ok, info.code, info.log)

    def get_tx(self, txid: bytes) -> TxInfo | None:
        loc = self.ledger.tx_location(txid)
        if loc is None:
            return None
        h, i = loc
        block = self.ledger.block(h)
        res = self.ledger.tx_result(h, i)
        if block is None or res is None:
            self._pruned_body(h)
            return None
        return TxInfo(txid, h, i, res["ok"], res["code"], res["log"], block.txs[i])

    def get_block(self, height: int) -> Block | None:
        b = self.ledger.block(height)
        if b is None:
            self._pruned_body(height)
        return b

    def _pruned_body(self, height: int) -> None:
        """HeightUnavailable("pruned") if block `height`'s body is pruned ([storage] keep_blocks)."""
        if self.ledger.body_pruned(height):
            raise HeightUnavailable("pruned", f"the body of block {height} is pruned on this node (it keeps "
                                    f"blocks from height {self.ledger.bodies_from()}; headers and commits of "
                                    "every height stay); ask an archive node")  # fmt: skip

    def get_commit(self, height: int) -> tuple[Header, Commit] | None:
        hdr = self.ledger.header(height)
        c = self.ledger.commit_at(height)
        return None if hdr is None or c is None else (hdr, c)

    def get_validators(self, height: int) -> ValidatorSet | None:
        if height < 1 or height > self.ledger.height + 2:
            return None
        try:
            return self.ledger.validators_at(height)
        except LookupError:
            return None

    def get_grants(self, grantee: bytes) -> tuple[int, list[tuple[bytes, dict[str, Any]]]]:
        return self.ledger.grants_of(grantee)

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
        node = self.node
        info = self.ledger.last_info()
        now = time.monotonic()
        recent = [(t, n) for t, n in self._block_times if now - t <= 10.0]
        tps = sum(n for _, n in recent) / 10.0
        gaps = [b[0] - a[0] for a, b in zip(list(self._block_times)[:-1], list(self._block_times)[1:])]
        pm = node.p2p.metrics()
        out = [
            Metric("ads_height", "gauge", "latest committed height", 0 if info is None else info.height),
            Metric("ads_round", "gauge", "consensus round at the current height", node.core.round),
            Metric("ads_peers", "gauge", "connected validator peers", len(node.p2p.connected_peers())),
            Metric("ads_mempool_txs", "gauge", "pending transactions", len(node.mempool)),
            Metric("ads_mempool_bytes", "gauge", "pending transaction bytes", node.mempool.total_bytes),
            Metric("ads_mempool_signers", "gauge", "signers with pending transactions",
                   node.mempool.signer_count()),
            Metric("ads_mempool_evicted_total", "counter", "pending transactions evicted from the "
                   "busiest signer to admit a less busy one", node.mempool.evicted),
            Metric("ads_block_interval_seconds", "gauge", "mean seconds between recent blocks",
                   (sum(gaps) / len(gaps)) if gaps else 0.0),
            Metric("ads_tx_per_second", "gauge", "committed transactions per second over 10 s", tps),
        ]
        for name, value in sorted(node.counters.items()):
            out.append(Metric(f"ads_{name}_total", "counter", f"{name.replace('_', ' ')}", value))
        for name, value in sorted(node.core.stats.items()):
            out.append(Metric("ads_consensus_events_total", "counter", "consensus core events", value,
                              {"event": name}))  # fmt: skip
        for name, value in sorted(pm.items()):
            out.append(Metric("ads_p2p_total", "counter", "p2p counters", value, {"what": name}))
        return out
