"""An in-memory NodeBackend for the HTTP layer's tests and bench (the real node comes later).

It holds a real little chain: headers and commits signed by four validators, a state map per
height with a naive JMT-compatible sparse Merkle tree for roots and proofs, and a mempool that
a `commit_block()` call turns into the next block (publishing a NewBlock to subscribers).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import trio

from ads_ledger.client.http import NodeClient
from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.core.errors import DecodeError, RemoteError, SignatureError
from ads_ledger.core.merkle import PLACEHOLDER, SparseProof, bit, leaf_hash, node_hash, verify_proof
from ads_ledger.core.types import PRECOMMIT, ZERO32, Block, Commit, Header, ValidatorSet, Vote
from ads_ledger.node.api import ApiConfig, serve_http
from ads_ledger.node.api.backend import (
    HeightUnavailable,
    Metric,
    NewBlock,
    NodeStatus,
    Refusal,
    StateRead,
    SubmitResult,
    TxInfo,
)
from ads_ledger.state.envelope import make_envelope, parse_envelope
from fixtures import KEYS

CHAIN = "ads-test"
CP_KEY = SigningKey(b"\x55" * 32)
OWNER_KEY = SigningKey(b"\x66" * 32)


# ---------------------------------------------------------------- naive sparse Merkle tree


def _subtree(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not leaves:
        return PLACEHOLDER
    if len(leaves) == 1:
        return leaf_hash(*leaves[0])
    left = [lf for lf in leaves if bit(lf[0], depth) == 0]
    right = [lf for lf in leaves if bit(lf[0], depth) == 1]
    return node_hash(_subtree(left, depth + 1), _subtree(right, depth + 1))


def smt_root(state: dict[bytes, bytes]) -> bytes:
    return _subtree([(H(k), H(v)) for k, v in state.items()], 0)


def smt_prove(state: dict[bytes, bytes], key: bytes) -> SparseProof:
    kh = H(key)
    cur = [(H(k), H(v)) for k, v in state.items()]
    sibs: list[bytes] = []
    depth = 0
    while len(cur) > 1:
        b = bit(kh, depth)
        sibs.append(_subtree([lf for lf in cur if bit(lf[0], depth) != b], depth + 1))
        cur = [lf for lf in cur if bit(lf[0], depth) == b]
        depth += 1
    return SparseProof(cur[0] if cur else None, tuple(sibs))


class ReasonError(RemoteError):
    """Stands in for ads_ledger.state.reasons refusals: a RemoteError with a class-level code."""

    code = "bad_nonce"


# ---------------------------------------------------------------- the fake node


class FakeBackend:
    def __init__(self, blocks: int = 3) -> None:
        self.chain_id = CHAIN
        self.node_id = H(b"node-0")
        self.valset = ValidatorSet(tuple((k.pub, 10 + i) for i, k in enumerate(KEYS)))
        self.blocks: list[Block] = []
        self.commits: list[Commit] = []
        self.states: list[dict[bytes, bytes]] = []
        self.txs: dict[bytes, TxInfo] = {}
        self.mempool: list[bytes] = []
        self.pruned_below = 1
        self.bodies_from = 1  # [storage] keep_blocks: block bodies below it are pruned
        self.subscribers: list[trio.MemorySendChannel[NewBlock]] = []
        self.nonces: dict[bytes, int] = {}
        self.state: dict[bytes, bytes] = {}
        for h in range(blocks):
            if h == 0:
                self.state[b"cp/" + CP_KEY.pub] = codec.encode(self.cp_record(epoch=1))
            elif h == 1:
                self.state[b"acct/" + OWNER_KEY.pub] = codec.encode({"nonce": 0, "identity": None})
            else:
                self.state[b"cp/" + CP_KEY.pub] = codec.encode(self.cp_record(epoch=h))
            self.commit_block()

    @staticmethod
    def cp_record(epoch: int) -> dict[str, Any]:
        grant = {"id": b"\x07" * 16, "issuer": OWNER_KEY.pub, "grantee": KEYS[0].pub,
                 "scopes": ["charging.control"], "not_before": 1, "not_after": 2**40,
                 "limits": {"max_power_w": 11000}, "exclusive": False, "priority": 5,
                 "redelegate": 0, "parent": None, "height": 1}  # fmt: skip
        return {"owner": OWNER_KEY.pub, "pending": None, "epoch": epoch, "grants": [grant],
                "updated": epoch}  # fmt: skip

    def latest(self) -> int:
        return len(self.blocks)

    def commit_block(self) -> Block:
        """Make block latest+1 from the mempool, sign its commit, publish it."""
        height = self.latest() + 1
        txs, self.mempool = tuple(self.mempool), []
        prev = self.blocks[-1] if self.blocks else None
        header = Header(
            chain_id=CHAIN, height=height, time=1_700_000_000_000 + height * 1000,
            prev=prev.block_id() if prev else ZERO32,
            txs_root=H(b"txs" + bytes(len(txs))), evidence_root=H(b""),
            state_root=smt_root(self.state), validators=self.valset.hash(),
            next_validators=self.valset.hash(), proposer=KEYS[height % 4].pub,
            last_commit=self.commits[-1].hash() if self.commits else ZERO32,
        )  # fmt: skip
        block = Block(header, txs, (), self.commits[-1] if self.commits else None)
        votes = [Vote(PRECOMMIT, height, 0, header.block_id(), k.pub).signed(CHAIN, k)
                 for k in KEYS[:3]]  # fmt: skip
        self.blocks.append(block)
        self.commits.append(Commit.from_votes(self.valset, votes))
        self.states.append(dict(self.state))
        for i, raw in enumerate(txs):
            txid = parse_envelope(raw).txid(CHAIN)
            self.txs[txid] = TxInfo(txid, height, i, True, "ok", "", raw)
        for s in list(self.subscribers):
            try:
                s.send_nowait(NewBlock(header, len(txs)))
            except (trio.WouldBlock, trio.BrokenResourceError):
                self.subscribers.remove(s)  # slow or gone: it reconnects
                s.close()
        return block

    # ------------------------------------------------------------ NodeBackend

    def status(self) -> NodeStatus:
        last = self.blocks[-1].header if self.blocks else None
        return NodeStatus(CHAIN, self.node_id, self.latest(),
                          last.block_id() if last else None, last.time if last else None, False)

    async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float,
                        client: str | None = None) -> SubmitResult:  # fmt: skip
        try:
            env = parse_envelope(raw)
            env.verify_signatures(CHAIN)
        except SignatureError as e:
            raise Refusal("bad_signature", str(e)) from None
        except DecodeError as e:
            raise Refusal("malformed", str(e)) from None
        if env.type == "test.uncoded":  # a node that lets an uncoded RemoteError escape
            raise DecodeError("body does not decode")
        txid = env.txid(CHAIN)
        if txid in self.txs or raw in self.mempool:
            raise Refusal("duplicate", "this transaction is already known", status=409)
        if env.nonce != self.nonces.get(env.signer, 0) + 1:
            raise ReasonError(f"nonce must be {self.nonces.get(env.signer, 0) + 1}")
        self.nonces[env.signer] = env.nonce
        self.mempool.append(raw)
        if not wait_commit:
            return SubmitResult(txid, None, None, "pending", "")
        with trio.move_on_after(timeout_s):
            await trio.sleep(0.01)
            self.commit_block()
            info = self.txs[txid]
            return SubmitResult(txid, info.height, info.ok, info.code, info.log)
        return SubmitResult(txid, None, None, "pending", "not included in time")

    def get_tx(self, txid: bytes) -> TxInfo | None:
        t = self.txs.get(txid)
        if t is not None and t.height < self.bodies_from:
            raise HeightUnavailable("pruned", f"the body of block {t.height} is pruned")
        return t

    def get_block(self, height: int) -> Block | None:
        if 1 <= height < self.bodies_from:
            raise HeightUnavailable("pruned", f"the body of block {height} is pruned")
        return self.blocks[height - 1] if 1 <= height <= self.latest() else None

    def get_commit(self, height: int) -> tuple[Header, Commit] | None:
        if not 1 <= height <= self.latest():
            return None
        return self.blocks[height - 1].header, self.commits[height - 1]

    def get_validators(self, height: int) -> ValidatorSet | None:
        return self.valset if 1 <= height <= self.latest() + 2 else None

    def get_state(self, key: bytes, height: int | None) -> StateRead:
        h = self.latest() if height is None else height
        if h > self.latest():
            raise HeightUnavailable("future", f"height {h} is beyond the latest {self.latest()}")
        if h < self.pruned_below:
            raise HeightUnavailable("pruned", f"state below height {self.pruned_below} is pruned")
        st = self.states[h - 1]
        return StateRead(h, st.get(key), smt_prove(st, key))

    def get_grants(self, grantee: bytes) -> tuple[int, list[tuple[bytes, dict[str, Any]]]]:
        """Scans the latest state's cp/ records (the real node keeps an index)."""
        out = []
        for k, v in sorted(self.states[-1].items()):
            if k.startswith(b"cp/"):
                out += [(k[3:], g) for g in codec.decode(v)["grants"] if g["grantee"] == grantee]  # type: ignore[index]
        return self.latest(), out

    @asynccontextmanager
    async def subscribe_blocks(self) -> AsyncIterator[AsyncIterator[NewBlock]]:
        send, recv = trio.open_memory_channel[NewBlock](16)
        self.subscribers.append(send)
        try:
            async with recv:
                yield recv
        finally:
            if send in self.subscribers:
                self.subscribers.remove(send)

    def metrics(self) -> Sequence[Metric]:
        return [
            Metric("ads_height", "gauge", "latest committed height", self.latest()),
            Metric("ads_mempool_txs", "gauge", "transactions waiting", len(self.mempool)),
            Metric("ads_peer_bytes_total", "counter", 'bytes "sent"\nor received', 12.5,
                   {"peer": 'a"b\\c', "dir": "out"}),
        ]  # fmt: skip


def make_tx(nonce: int = 1, key: SigningKey = OWNER_KEY) -> bytes:
    return make_envelope(CHAIN, "cp.accept", key, nonce, {"cp": CP_KEY.pub})


# ---------------------------------------------------------------- self-check of the fake


def test_naive_smt_proofs_verify() -> None:
    state = {b"k%d" % i: b"v%d" % i for i in range(40)}
    root = smt_root(state)
    for k, v in state.items():
        assert verify_proof(root, k, v, smt_prove(state, k))
        assert not verify_proof(root, k, v + b"x", smt_prove(state, k))
    for i in range(40, 60):
        assert verify_proof(root, b"k%d" % i, None, smt_prove(state, b"k%d" % i))
    assert smt_root({}) == PLACEHOLDER and smt_prove({}, b"x") == SparseProof(None, ())


# ---------------------------------------------------------------- harness

T = TypeVar("T")


def run_server(backend: Any, body: Callable[[int], Awaitable[T]], config: ApiConfig | None = None,
               *, limit_s: float = 20.0) -> T:  # fmt: skip
    """Start serve_http on 127.0.0.1:0, run `body(port)`, cancel the server, return the result."""

    async def main() -> T:
        with trio.fail_after(limit_s):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(partial(serve_http, backend, "127.0.0.1", 0,
                                                   config=config))  # fmt: skip
                result = await body(port)
                nursery.cancel_scope.cancel()
            return result

    return trio.run(main)


def with_client(backend: Any, fn: Callable[[NodeClient], T], config: ApiConfig | None = None,
                **kw: Any) -> T:  # fmt: skip
    """Run blocking `fn(client)` in a thread against a served `backend`."""

    async def body(port: int) -> T:
        def sync() -> T:
            with NodeClient(f"http://127.0.0.1:{port}", timeout_s=10) as c:
                return fn(c)

        return await trio.to_thread.run_sync(sync)

    return run_server(backend, body, config, **kw)


async def raw_exchange(port: int, data: bytes, *, read_s: float = 3.0, eof: bool = False) -> bytes:
    """Send raw bytes (then half-close if `eof`), read until the server closes or `read_s` passes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out = bytearray()
    async with stream:
        with trio.move_on_after(read_s):
            try:
                if data:
                    await stream.send_all(data)
                if eof:
                    await stream.send_eof()
                while chunk := await stream.receive_some(65536):
                    out += chunk
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    return bytes(out)


def status_of(response: bytes) -> int:
    """The status code of the first HTTP response in `response` (0 if none)."""
    if not response.startswith(b"HTTP/1.1 "):
        return 0
    return int(response[9:12])


def json_body(response: bytes) -> Any:
    import json

    return json.loads(response.split(b"\r\n\r\n", 1)[1])
