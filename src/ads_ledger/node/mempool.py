"""The mempool: pending transactions waiting for a block (sans-IO; the node verifies signatures
in worker threads before calling `add`).

Admission, cheapest check first: size and shape, the seen-cache, the per-signer and
per-client bounds, the count/byte limits (or whom to evict), the signer's nonce sequence, then the state machine's own `check_tx` against committed state for a
signer's first pending transaction (later ones depend on earlier pending effects, so they are
checked by execution in the block; a failure there still consumes the nonce, see tx rules).
Each signer's txs are kept in nonce order; `reap` takes them in rounds across signers.

Fair admission: a signer holds at most `max_per_signer` pending txs (`SignerBusy` past it),
and a client (the `origin` the API passes: its address) at most `max_per_client`
(`ClientBusy`; txs relayed by peers have no origin and no such bound). When the pool is full a
newcomer is not starved by whoever holds the most:
  1. if the busiest signer holds at least two more than the newcomer's signer, that signer's
     newest tx (highest nonce, so its chain stays consecutive) is evicted;
  2. else, if the busiest client holds at least two more than the newcomer's client, the newest
     tx of the signer of that client's newest tx is evicted (many fresh keys with one tx each
     from one address are one client);
  3. else the newcomer is refused `MempoolFull`: everyone holds about its fair share.
Evicted txs leave the seen-cache, so they can be submitted again. Counts live in `Tally`
buckets: finding the busiest is O(1) amortised.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ads_ledger.core.errors import RemoteError
from ads_ledger.node.tally import Tally
from ads_ledger.state.envelope import Envelope

__all__ = ["Mempool", "MempoolFull", "AlreadySeen", "NonceGap", "SignerBusy", "ClientBusy",
           "PendingTx", "MempoolError", "MIN_PER_SIGNER"]

MIN_PER_SIGNER = 64  # a bulk client chains this many txs per key before a block includes them


class MempoolError(RemoteError):
    """A transaction the mempool refuses; `code` is the API's typed reason."""

    code = "mempool"


class AlreadySeen(MempoolError):
    code = "duplicate"


class MempoolFull(MempoolError):
    code = "mempool_full"


class NonceGap(MempoolError):
    code = "bad_nonce"


class SignerBusy(MempoolError):
    """The signer already has `max_per_signer` pending txs; retry after the next block."""

    code = "signer_busy"


class ClientBusy(MempoolError):
    """The client already has `max_per_client` pending txs; retry after the next block."""

    code = "client_busy"


@dataclass(slots=True)
class PendingTx:
    txid: bytes
    env: Envelope
    size: int
    arrival: int  # a counter, not a clock: keeps the core free of time
    origin: str | None = None  # the submitting client; None: relayed by a peer


@dataclass
class Mempool:
    """Pending transactions in arrival order, with a bounded seen-cache of recent txids."""

    max_txs: int = 5000
    max_bytes: int = 64 * 1024 * 1024
    cache_size: int = 20000
    max_per_signer: int = MIN_PER_SIGNER
    max_per_client: int = 0  # 0: no bound per client
    evicted: int = 0  # txs evicted to make room for a less busy signer or client, ever
    _txs: "OrderedDict[bytes, PendingTx]" = field(default_factory=OrderedDict)
    _by_signer: dict[bytes, list[bytes]] = field(default_factory=dict)
    _signers: Tally[bytes] = field(default_factory=Tally)
    _by_origin: "dict[str, OrderedDict[bytes, None]]" = field(default_factory=dict)
    _origins: Tally[str] = field(default_factory=Tally)
    _seen: "OrderedDict[bytes, None]" = field(default_factory=OrderedDict)
    _bytes: int = 0
    _counter: int = 0
    _recheck_cursor: int = 0

    def __len__(self) -> int:
        return len(self._txs)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __contains__(self, txid: bytes) -> bool:
        return txid in self._txs

    def seen(self, txid: bytes) -> bool:
        return txid in self._seen or txid in self._txs

    def _remember(self, txid: bytes) -> None:
        self._seen[txid] = None
        self._seen.move_to_end(txid)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    def pending_of(self, signer: bytes) -> int:
        return len(self._by_signer.get(signer, ()))

    def pending_of_client(self, origin: str) -> int:
        return self._origins.count(origin)

    def busiest(self) -> tuple[bytes, int] | None:
        """A signer holding the most pending txs, with its count (None: the pool is empty)."""
        return self._signers.busiest()

    def _full(self, size: int) -> bool:
        return len(self._txs) >= self.max_txs or self._bytes + size > self.max_bytes

    def _victim(self, signer: bytes, origin: str | None) -> bytes | None:
        """The signer whose newest tx makes room for a newcomer (rules 1 and 2 above), or None."""
        top = self._signers.busiest()
        if top is not None and top[1] >= self._signers.count(signer) + 2:
            return top[0]
        client = self._origins.busiest()
        if origin is None or client is None or client[1] < self._origins.count(origin) + 2:
            return None  # a relayed tx competes by signer only: peers are not clients
        newest = next(reversed(self._by_origin[client[0]]))
        victim = self._txs[newest].env.signer
        return None if victim == signer else victim  # never break the newcomer's own chain

    def _refuse_full(self) -> MempoolFull:
        return MempoolFull(
            f"the mempool holds {len(self._txs)} transactions ({self._bytes} bytes) and no "
            "signer or client more than its fair share; try again after the next block"
        )

    def expected_nonce(self, signer: bytes, committed_nonce: int) -> int:
        """The nonce the signer's next transaction must carry, counting pending ones."""
        return committed_nonce + 1 + len(self._by_signer.get(signer, ()))

    def add(
        self,
        txid: bytes,
        env: Envelope,
        committed_nonce: int,
        check_first: Callable[[Envelope], None] | None = None,
        origin: str | None = None,
    ) -> PendingTx:
        """Admit a signature-checked envelope or raise a MempoolError (or check_first's error).

        `committed_nonce` is the signer's nonce in committed state; `check_first` runs the
        state machine's stateful check when this is the signer's first pending transaction;
        `origin` names the submitting client (None: a peer relayed it)."""
        if self.seen(txid):
            raise AlreadySeen(f"transaction {txid.hex()} was already received")
        size = len(env.raw)
        mine = self.pending_of(env.signer)
        if mine >= self.max_per_signer:
            raise SignerBusy(
                f"the signer has {mine} transactions pending, the most this node holds per "
                "signer; try again after the next block"
            )
        if origin is not None and 0 < self.max_per_client <= self._origins.count(origin):
            raise ClientBusy(
                f"this client has {self._origins.count(origin)} transactions pending, the most "
                "this node holds per client; try again after the next block"
            )
        if size > self.max_bytes or (self._full(size) and self._victim(env.signer, origin) is None):
            raise self._refuse_full()  # before the state check: a full pool costs no more
        want = self.expected_nonce(env.signer, committed_nonce)
        if env.nonce != want:
            raise NonceGap(
                f"nonce {env.nonce} is out of sequence: the signer's next nonce is {want} "
                f"({committed_nonce} committed, {want - committed_nonce - 1} pending)"
            )
        if check_first is not None and want == committed_nonce + 1:
            check_first(env)
        while self._full(size):
            victim = self._victim(env.signer, origin)
            if victim is None:  # bytes: evicting whole fair shares did not make room
                raise self._refuse_full()
            self._evict_newest(victim)
        self._counter += 1
        p = PendingTx(txid, env, size, self._counter, origin)
        self._txs[txid] = p
        self._by_signer.setdefault(env.signer, []).append(txid)
        self._signers.add(env.signer, 1)
        if origin is not None:
            self._by_origin.setdefault(origin, OrderedDict())[txid] = None
            self._origins.add(origin, 1)
        self._bytes += size
        self._remember(txid)
        return p

    def _evict_newest(self, signer: bytes) -> None:
        """Drop the signer's highest-nonce pending tx and forget it, so it can come back."""
        txid = self._by_signer[signer][-1]
        self._remove(txid)
        self._seen.pop(txid, None)
        self.evicted += 1

    def reap(self, max_bytes: int, max_txs: int | None = None) -> list[PendingTx]:
        """Transactions for a block within the byte and count limits, in rounds: every pending
        signer's next tx (signers in the order they became pending), then every signer's
        second, and so on. Each signer's txs stay in nonce order, and a signer with one tx
        waiting is not queued behind another's long chain: a flood fills later rounds only."""
        out: list[PendingTx] = []
        used = 0
        active = list(self._by_signer.values())
        depth = 0
        while active and (max_txs is None or len(out) < max_txs):
            deeper: list[list[bytes]] = []
            for ids in active:
                if max_txs is not None and len(out) >= max_txs:
                    break
                p = self._txs[ids[depth]]
                if used + p.size > max_bytes:
                    continue  # this signer stops here: its later nonces cannot skip this one
                out.append(p)
                used += p.size
                if len(ids) > depth + 1:
                    deeper.append(ids)
            active = deeper
            depth += 1
        return out

    def update(
        self,
        included: Iterable[bytes],
        committed_nonce: Callable[[bytes], int],
        touched: Iterable[bytes] | None = None,
    ) -> int:
        """After a block: drop included txs and any now stale (nonce already used). Returns drops.

        `touched` names the signers of the block's transactions (only their nonces can have
        moved); None checks every pending signer."""
        dropped = 0
        for txid in included:
            self._remember(txid)
            if self._remove(txid):
                dropped += 1
        signers = list(self._by_signer) if touched is None else [s for s in set(touched) if s in self._by_signer]
        for signer in signers:
            n = committed_nonce(signer)
            for txid in list(self._by_signer.get(signer, ())):
                if self._txs[txid].env.nonce <= n:
                    self._remove(txid)
                    dropped += 1
            # a gap (e.g. a tx lost) makes every later one unexecutable: drop them too
            ids = self._by_signer.get(signer, [])
            expect = n + 1
            for txid in list(ids):
                if self._txs[txid].env.nonce != expect:
                    self._remove(txid)
                    dropped += 1
                else:
                    expect += 1
        return dropped

    def signer_count(self) -> int:
        """Signers with pending transactions."""
        return len(self._by_signer)

    def signer_of(self, txid: bytes) -> bytes | None:
        p = self._txs.get(txid)
        return None if p is None else p.env.signer

    def recheck(self, check: Callable[[Envelope], bool], limit: int = 1000) -> int:
        """Re-run the state check on each signer's first pending tx (after a block changed the
        state); a signer whose first tx now fails loses all its pending txs. Returns drops.

        At most `limit` signers per call; the next call continues after the last one checked,
        so with more pending signers than `limit` each is still rechecked every few blocks."""
        dropped = 0
        signers = list(self._by_signer)
        if len(signers) > limit:
            start = self._recheck_cursor % len(signers)
            signers = (signers[start:] + signers[:start])[:limit]
            self._recheck_cursor = start + limit
        for signer in signers:
            ids = self._by_signer.get(signer)
            if not ids or check(self._txs[ids[0]].env):
                continue
            for txid in list(ids):
                self._remove(txid)
                dropped += 1
        return dropped

    def _remove(self, txid: bytes) -> bool:
        p = self._txs.pop(txid, None)
        if p is None:
            return False
        self._bytes -= p.size
        ids = self._by_signer.get(p.env.signer)
        if ids is not None:
            ids.remove(txid)
            self._signers.add(p.env.signer, -1)
            if not ids:
                del self._by_signer[p.env.signer]
        if p.origin is not None:
            mine = self._by_origin[p.origin]
            del mine[txid]
            self._origins.add(p.origin, -1)
            if not mine:
                del self._by_origin[p.origin]
        return True

    def pending(self) -> list[PendingTx]:
        return list(self._txs.values())
