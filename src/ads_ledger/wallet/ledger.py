"""`Ledger`: the wallet's view of the network through one or more node URLs (DESIGN §8).

It reads accounts and records, signs and submits transactions, and waits for their commit:
- failover: a node that does not answer (refused, reset, timed out, garbage) is skipped and
  the next URL tried; `NodeUnreachable` names every URL tried and why;
- a nonce race (`bad_nonce`: another tx of the same key got in first) is retried with a fresh
  nonce after the next block, at most `NONCE_RETRIES` times;
- a tx admitted (202 `pending`) is followed through `GET /txs/{txid}` until it commits or
  `commit_timeout_s` runs out; if the signer's nonce moves past it meanwhile (another tx of the
  same key, through another node, got that nonce), it is a nonce race; if it just vanished (a
  node restarted), the same bytes go out again every 5 s;
- a refusal, before inclusion or in its block, is `TxRefused` with the ledger's code.

A POST whose answer was lost may still have arrived; re-sending the same bytes is safe (same
txid: a node answers with the committed outcome, or holds it once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from ads_ledger.client.http import ApiResponseError, NodeClient, NotFound, TransportError
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import DecodeError
from ads_ledger.state.envelope import make_envelope, parse_envelope
from ads_ledger.state.records import GOV_MEMBERS, GOV_PARAMS, GOV_VALIDATORS, acct_key, cp_key
from ads_ledger.wallet.errors import NodeUnreachable, TxRefused, WalletError

__all__ = ["Ledger", "TxOutcome", "NONCE_RETRIES"]

T = TypeVar("T")
NONCE_RETRIES = 4
_BUSY = ("signer_busy", "client_busy", "mempool_full", "rate_limited")


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """A committed transaction: its id, block height, and the node that answered."""

    txid: bytes
    height: int
    code: str
    log: str
    node: str
    nonce: int

    @property
    def grant_id(self) -> bytes:
        """The id of the grant a `grant` tx created (DESIGN §4: txid[:16])."""
        return self.txid[:16]


class Ledger:
    """`Ledger(["http://127.0.0.1:26657", ...])`; a context manager. Not thread-safe."""

    def __init__(self, nodes: Sequence[str], *, timeout_s: float = 10.0, commit_timeout_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        urls = [u for u in nodes if u]
        if not urls:
            raise WalletError("no node given", hint="pass --node URL or set ADS_NODE")
        self.urls = urls
        self.timeout_s = timeout_s
        self.commit_timeout_s = commit_timeout_s
        self.clock, self.sleep = clock, sleep
        self._clients: dict[str, NodeClient] = {}
        self._primary = 0
        self._chain_id: str | None = None

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def node(self) -> str:
        """The URL that answered last (or will be tried first)."""
        return self.urls[self._primary]

    # ------------------------------------------------------------------ failover

    def _client(self, url: str) -> NodeClient:
        c = self._clients.get(url)
        if c is None:
            try:
                c = self._clients[url] = NodeClient(url, timeout_s=self.timeout_s)
            except ValueError as e:
                raise WalletError(str(e), hint="a node URL looks like http://127.0.0.1:26657") from e
        return c

    def call(self, f: Callable[[NodeClient], T]) -> T:
        """`f(client)` on the first node that answers; an error answer (4xx/5xx with a code)
        is the node's word and is raised as is."""
        tried: list[tuple[str, str]] = []
        n = len(self.urls)
        for k in range(n):
            i = (self._primary + k) % n
            url = self.urls[i]
            try:
                out = f(self._client(url))
            except (TransportError, DecodeError, OSError) as e:
                tried.append((url, str(e) or type(e).__name__))
                self._clients.pop(url, None)
                continue
            self._primary = i
            return out
        raise NodeUnreachable(tried)

    # ------------------------------------------------------------------ reads

    def status(self) -> dict[str, Any]:
        return self.call(lambda c: c.status())

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            cid = self.status().get("chain_id")
            if not isinstance(cid, str):
                raise WalletError(f"{self.node} sent no chain id", code="node")
            self._chain_id = cid
        return self._chain_id

    def height(self) -> int:
        h = self.status().get("latest_height")
        return h if type(h) is int else 0

    def state(self, key: bytes) -> Any:
        """The decoded value at `key` in the latest state (None if absent). Unverified: use
        `ads_ledger.wallet.verified` where the answer matters."""
        _, raw, _ = self.call(lambda c: c.state(key))
        return None if raw is None else codec.decode(raw)

    def account(self, pub: bytes) -> dict[str, Any] | None:
        v = self.state(acct_key(pub))
        return v if isinstance(v, dict) else None

    def nonce(self, pub: bytes) -> int:
        """The account's last committed nonce (0 for a new account)."""
        a = self.account(pub)
        return 0 if a is None else int(a.get("nonce", 0))

    def record(self, cp: bytes) -> dict[str, Any] | None:
        v = self.state(cp_key(cp))
        return v if isinstance(v, dict) else None

    def members(self) -> dict[str, Any]:
        v = self.state(GOV_MEMBERS)
        return v if isinstance(v, dict) else {"members": [], "threshold": 0}

    def validators(self) -> list[list[Any]]:
        v = self.state(GOV_VALIDATORS)
        return v if isinstance(v, list) else []

    def params(self) -> dict[str, int]:
        v = self.state(GOV_PARAMS)
        return v if isinstance(v, dict) else {}

    def grants_of(self, grantee: bytes) -> dict[str, Any]:
        """GET /grants?grantee=: the index (unproven; verify each record)."""
        return self.call(lambda c: c.grants(grantee))

    # ------------------------------------------------------------------ writes

    def submit(self, key: SigningKey, ttype: str, body: dict[str, Any], *,
               cosigners: Sequence[SigningKey] = (), nonce: int | None = None) -> TxOutcome:  # fmt: skip
        """Sign and submit; wait for commit. Retries a nonce race unless `nonce` is fixed."""
        for attempt in range(NONCE_RETRIES + 1):
            n = nonce if nonce is not None else self.nonce(key.pub) + 1
            raw = make_envelope(self.chain_id, ttype, key, n, body, cosigners)
            try:
                return self.submit_raw(raw)
            except TxRefused as e:
                if e.code != "bad_nonce" or nonce is not None or attempt == NONCE_RETRIES or e.height is not None:
                    raise
            self._await_block()  # the tx that took our nonce commits; read the nonce again
        raise AssertionError("unreachable")

    def submit_raw(self, raw: bytes) -> TxOutcome:
        """Submit signed bytes, wait for their commit; TxRefused if refused."""
        try:
            env = parse_envelope(raw)
        except DecodeError as e:
            raise WalletError(f"not a transaction: {e}", code="malformed") from e
        txid = env.txid(self.chain_id)
        deadline = self.clock() + self.commit_timeout_s
        r = self._post(raw, txid, deadline)
        last_post = last_nonce = self.clock()
        while r.get("height") is None:  # admitted, not yet included: follow it
            now = self.clock()
            if now >= deadline:
                raise WalletError(f"transaction {txid.hex()} was admitted by {self.node} but not committed "
                                  f"within {self.commit_timeout_s:.0f} s", code="pending",
                                  hint=f"it may still commit: check later with GET /txs/{txid.hex()}")  # fmt: skip
            self.sleep(0.1)
            try:
                r = self.call(lambda c: c.tx(txid))
                continue
            except NotFound:
                r = {"height": None}
            if self.clock() - last_nonce >= 1.0:  # a tx of the same nonce committed: ours never will
                last_nonce = self.clock()
                if self.nonce(env.signer) >= env.nonce:
                    try:
                        r = self.call(lambda c: c.tx(txid))
                    except NotFound:
                        raise TxRefused("bad_nonce", f"nonce {env.nonce} was taken by another transaction of "
                                        f"{env.signer.hex()[:16]}…", txid=txid) from None  # fmt: skip
                    continue
            if self.clock() - last_post >= 5.0:  # dropped somewhere (a restart, an eviction): same bytes again
                last_post = self.clock()
                r = self._post(raw, txid, deadline)
        height = int(r["height"])
        code = str(r.get("code"))
        if not r.get("ok"):
            raise TxRefused(code, str(r.get("log", "")), txid=txid, height=height)
        return TxOutcome(txid, height, code, str(r.get("log", "")), self.node, env.nonce)

    def _post(self, raw: bytes, txid: bytes, deadline: float) -> dict[str, Any]:
        """POST /txs (no server-side wait: we follow the tx ourselves, so a dropped one is seen)."""
        busy = 0
        while True:
            try:
                return self.call(lambda c: c.submit_tx(raw))
            except ApiResponseError as e:
                if e.code == "duplicate":  # the node holds it already (an earlier POST did arrive)
                    return {"height": None}
                if e.code in _BUSY and busy < 5 and self.clock() < deadline:
                    busy += 1
                    self.sleep(min(1.0 * busy, max(0.0, deadline - self.clock())))
                    continue
                raise TxRefused(e.code, e.message, txid=txid) from None

    def wait_height(self, height: int, timeout_s: float = 30.0) -> int:
        """Wait until the answering node has committed `height`; its height."""
        deadline = self.clock() + timeout_s
        while True:
            h = self.height()
            if h >= height:
                return h
            if self.clock() >= deadline:
                raise WalletError(f"{self.node} did not reach height {height} within {timeout_s:.0f} s", code="node")
            self.sleep(0.1)

    def _await_block(self) -> None:
        try:
            self.wait_height(self.height() + 1, timeout_s=10.0)
        except WalletError:
            pass  # a stalled chain shows in the next attempt's answer
