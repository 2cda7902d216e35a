"""Transaction intake: parse, verify, admit to the mempool, gossip; and the mempool's side of
the ledger (reaping proposals, updating after a commit).

`TxIntake`'s checks (`parse`, `verify_and_admit`, `after_commit`, `reap`) are plain synchronous
code over the ledger and the mempool, callable without trio; `run`/`submit`/`admit` are the
trio shell that batches work for them (one worker-thread hop for many signature checks).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import trio

from ads_ledger.core.crypto import H, verify
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import Block
from ads_ledger.node.api.backend import Refusal
from ads_ledger.node.ledger import Ledger
from ads_ledger.node.logs import kv
from ads_ledger.node.mempool import AlreadySeen, Mempool, MempoolError
from ads_ledger.state.bodies import check_body
from ads_ledger.state.context import StateView
from ads_ledger.state.envelope import Envelope, parse_envelope
from ads_ledger.state.machine import check_tx
from ads_ledger.state.reasons import TxRejected
from ads_ledger.state.records import GOV_MEMBERS, acct_key, decode_record

__all__ = ["Intake", "TxIntake", "check_gov_quorum"]

log = logging.getLogger("ads_ledger.node.daemon")

INTAKE_BATCH = 512  # transactions verified in one worker-thread hop at most
INLINE_BATCH = 16  # smaller batches are verified on the event loop if the mempool lock is free
GOSSIP_BATCH_TXS = 1000  # transactions in one `txs` P2P message at most
GOSSIP_BATCH_BYTES = 1024 * 1024  # …and about this many bytes
RECHECK_PER_BLOCK = 256  # signers whose first pending tx is re-checked after a block, at most
BUSY_CODES = frozenset({"mempool_full", "signer_busy", "client_busy"})  # 429: the tx may succeed later
RETRY_AFTER_S = 1  # a block (or two) later there is room again


@dataclass(slots=True, eq=False)
class Intake:
    """A transaction waiting for verification and admission; `result` is True (added),
    False (already known) or the Refusal to answer with."""

    env: Envelope
    txid: bytes
    msg: bytes  # the signed bytes
    gossip: bool = True  # we send it to peers once admitted (False: a peer's batch we relay)
    origin: str | None = None  # the submitting client's address (None: a peer relayed it)
    result: bool | Refusal | None = None
    done: trio.Event = field(default_factory=trio.Event)


def check_gov_quorum(view: StateView, env: Envelope) -> None:
    """Admission of any `gov` tx, not only a signer's first pending one: every `auth` key is a
    member and there are `threshold` of them (signatures were verified already)."""
    raw = view.get(GOV_MEMBERS)
    gov = None if raw is None else decode_record(raw)
    if gov is None:
        raise Refusal("quorum", "this chain has no governance members")
    outsiders = [p for p in env.signers() if p not in set(gov["members"])]
    if outsiders:
        raise Refusal("not_member", f"{outsiders[0].hex()[:16]} is not a governance member")
    if len(env.auth) < gov["threshold"]:
        raise Refusal("quorum", f"gov needs {gov['threshold']} member signatures, this tx has "
                         f"{len(env.auth)}; collect more cosigners before submitting")  # fmt: skip


def nonce_in(view: StateView, signer: bytes) -> int:
    raw = view.get(acct_key(signer))
    return 0 if raw is None else int(decode_record(raw)["nonce"])


class TxIntake:
    """Admission into `mempool` against `ledger`'s latest state, under `lock` (the lock the
    ledger commits blocks under, so admission never sees a block without its mempool update).

    `now()` is the wall clock in ms; `broadcast(type, body)` sends to every peer; `wake()` tells
    consensus that transactions wait (the mempool went from empty to not)."""

    def __init__(self, chain_id: str, ledger: Ledger, mempool: Mempool, *, lock: threading.RLock,
                 counters: dict[str, int], now: Callable[[], int],
                 broadcast: Callable[[str, list[bytes]], object] = lambda t, b: None,
                 wake: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.chain_id = chain_id
        self.ledger = ledger
        self.mempool = mempool
        self.lock = lock
        self.counters = counters
        self.now = now
        self.broadcast = broadcast
        self.wake = wake
        self.tip: tuple[int, int] = (-1, 0)  # (height, its block time), for admission checks
        self.committed_txids: tuple[int, list[bytes]] = (0, [])  # the last block's, for waiters
        self._send, self._recv = trio.open_memory_channel[Intake](math.inf)
        # the node runs the mempool recheck after a commit in its own task (`run_rechecks`), off
        # consensus's path from one height to the next; without it (tests), inside after_commit
        self.defer_recheck = False
        self.recheck_due = False
        self._poke_send, self._poke_recv = trio.open_memory_channel[None](1)

    # ------------------------------------------------------------------ sans-IO checks

    def parse(self, raw: bytes) -> Intake:
        """Parse a transaction once: its sign bytes and txid are reused by every later check."""
        try:
            env = parse_envelope(raw)
        except DecodeError as e:
            raise Refusal("malformed", f"the transaction does not decode: {e}") from e
        try:  # the body's shape (and certificate chain bounds) before any signature work
            check_body(env.type, env.body)
        except TxRejected as e:
            raise Refusal(e.code, e.message) from e
        msg = env.sign_bytes(self.chain_id)
        return Intake(env, H(msg), msg)

    def check_context(self, now: int) -> tuple[StateView, int, int]:
        """(latest state view, block time for admission checks, next height); under the lock."""
        h = self.ledger.height
        if self.tip[0] != h:
            self.tip = (h, self.ledger.last_block_time())
        return self.ledger.state_view(), max(self.tip[1] + 1, now), h + 1

    def verify_and_admit(self, batch: Sequence[Intake]) -> bool:
        """(any thread) Sets each item's `result`; True if the mempool went from empty to not."""
        with self.lock:  # cheap filters first: no signature check for what we already have
            fresh = [it for it in batch if not self.mempool.seen(it.txid)]
            done = self.ledger.committed_txids([it.txid for it in fresh])
            for it in batch:
                if it.txid in done or self.mempool.seen(it.txid):
                    it.result = False
        for it in batch:
            if it.result is None:
                for i, (pub, sig) in enumerate(it.env.auth):
                    if not verify(pub, sig, it.msg):
                        self.counters["txs_rejected"] += 1
                        it.result = Refusal("bad_signature", f"auth[{i}] signature by {pub.hex()} does "
                                               f"not verify; sign it for chain {self.chain_id!r}")  # fmt: skip
                        break
                else:  # keyed by the whole envelope's bytes: block checks reuse the parse
                    self.ledger.note_verified(it.env, it.txid)
        with self.lock:  # nonce reads and adds see one consistent (store, mempool)
            was_empty = len(self.mempool) == 0
            view, t, next_h = self.check_context(self.now())
            nonces: dict[bytes, int] = {}
            for it in batch:
                if it.result is not None:
                    continue
                env = it.env
                if env.signer not in nonces:
                    nonces[env.signer] = nonce_in(view, env.signer)

                def check_first(e_: Envelope) -> None:
                    r = check_tx(view, self.chain_id, e_.raw, t, verify_sigs=False, height=next_h, env=e_)
                    if not r.ok:
                        raise Refusal(r.code, r.log)

                try:
                    if env.type == "gov":  # a quorum is never "completed" later by a proposer
                        check_gov_quorum(view, env)
                    self.mempool.add(it.txid, env, nonces[env.signer], check_first, it.origin)
                except AlreadySeen:
                    it.result = False  # the same tx twice in one batch
                except MempoolError as e:
                    self.counters["txs_rejected"] += 1
                    it.result = (Refusal(e.code, str(e), 429, RETRY_AFTER_S) if e.code in BUSY_CODES
                                 else Refusal(e.code, str(e)))  # fmt: skip
                except Refusal as e:
                    self.counters["txs_rejected"] += 1
                    it.result = e
                else:
                    self.counters["txs_received"] += 1
                    it.result = True
            return was_empty and len(self.mempool) > 0

    def reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        with self.lock:
            return [p.env.raw for p in self.mempool.reap(max_bytes, max_txs)]

    def has_pending_txs(self) -> bool:
        return len(self.mempool) > 0

    def after_commit(self, block: Block, txids: list[bytes]) -> None:
        """(under the commit lock) Drop the block's txs, re-base nonces, re-check a few signers."""
        with self.lock:
            hd = block.header
            self.tip = (hd.height, hd.time)
            self.committed_txids = (hd.height, txids)
            view, t, next_h = self.check_context(self.now())  # one view, no block decode per check
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
            self.mempool.update(txids, lambda signer: nonce_in(view, signer), touched)
            if self.defer_recheck:
                self.recheck_due = True
                return
            dropped = self._recheck(view, t, next_h)
        if dropped:
            kv(log, logging.INFO, "mempool recheck dropped txs", height=block.header.height, txs=dropped)

    def _recheck(self, view: StateView, t: int, next_h: int) -> int:
        """(under the lock) Re-check signers' first pending txs against `view`; returns drops."""
        return self.mempool.recheck(
            lambda env: check_tx(view, self.chain_id, env.raw, t, verify_sigs=False, height=next_h, env=env).ok,
            RECHECK_PER_BLOCK)

    def recheck_now(self) -> int:
        """(any thread) The recheck a commit left due, against the latest state; returns drops."""
        with self.lock:
            if not self.recheck_due:
                return 0
            self.recheck_due = False
            return self._recheck(*self.check_context(self.now()))

    def poke_recheck(self) -> None:
        """(trio thread) A commit left a recheck due: wake `run_rechecks`."""
        if self.recheck_due:
            with contextlib.suppress(trio.WouldBlock):
                self._poke_send.send_nowait(None)

    async def run_rechecks(self) -> None:
        """Run due rechecks in a worker thread, one at a time (several commits, one recheck)."""
        self.defer_recheck = True
        while True:
            await self._poke_recv.receive()
            height = self.tip[0]
            dropped = await trio.to_thread.run_sync(self.recheck_now)
            if dropped:
                kv(log, logging.INFO, "mempool recheck dropped txs", height=height, txs=dropped)

    # ------------------------------------------------------------------ trio shell

    async def admit(self, raw: bytes, origin: str | None = None) -> tuple[bytes, bool]:
        """Check one transaction and add it to the mempool. Returns (txid, newly added);
        raises Refusal. It joins the next verification batch (see `run`). `origin` is the
        submitting client, for the mempool's per-client fairness."""
        item = self.parse(raw)
        item.origin = origin
        await self.submit([item])
        if isinstance(item.result, BaseException):
            raise item.result
        return item.txid, item.result is True

    async def submit(self, items: list[Intake]) -> None:
        for it in items:
            self._send.send_nowait(it)  # unbounded: callers are bounded (HTTP slots, P2P readers)
        await items[-1].done.wait()  # batches are processed in order: the last one done means all

    async def run(self) -> None:
        """Verify and admit queued transactions in batches: one worker-thread hop for many
        signature checks (libsodium releases the GIL), one mempool-lock hold for their admission.
        A small batch is checked on the event loop when the lock is free (measured: the hop's
        wake-ups cost the loop several times a few verifications). Arrival order is kept, so
        each signer's nonces stay in sequence."""
        while True:
            batch = [await self._recv.receive()]
            while len(batch) < INTAKE_BATCH:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if len(batch) <= INLINE_BATCH and self.lock.acquire(blocking=False):
                try:  # a thread hop costs the event loop more than a few verifications
                    signal = self.verify_and_admit(batch)
                finally:
                    self.lock.release()
            else:  # many signatures, or a block commit holds the lock: off the event loop
                signal = await trio.to_thread.run_sync(self.verify_and_admit, batch)
            fresh = [it.env.raw for it in batch if it.result is True and it.gossip]
            for it in batch:
                it.done.set()
            if signal:  # the mempool was empty: an idle proposer may be waiting for this
                self.wake()
            self.gossip(fresh)

    def gossip(self, raws: list[bytes]) -> None:
        """Send newly admitted transactions to every peer as `txs` messages of bounded size."""
        start, size = 0, 0
        for i, raw in enumerate(raws):
            if i > start and (size + len(raw) > GOSSIP_BATCH_BYTES or i - start >= GOSSIP_BATCH_TXS):
                self.broadcast("txs", raws[start:i])
                start, size = i, 0
            size += len(raw) + 8
        if start < len(raws):
            self.broadcast("txs", raws[start:])
