"""Fair admission on a live network: 1,000 keys flood node 0's `POST /txs` from 127.0.0.1 with
valid but useless transactions while an owner on another address (127.0.0.2) grants access to
its charge point; the owner's grant must commit within 5 s of submission.

What makes that hold: a full mempool evicts from whoever holds more than its fair share (the
busiest signer, else the busiest client address: the flood's 1,000 keys share one address),
so the owner's grant is admitted; the proposer reaps in rounds across signers, so the flood's
tx chains do not queue it. Node 0's mempool is made smaller than the flood's key count so that
the flood fills it for certain with fresh keys alone, and the owner submits at a moment it is
seen full: the flood must then see 429s, each with a Retry-After, and the mempool must stay
within its bound. (Blocks drain the pool about every second, so the grant may still be
admitted without eviction if a block lands first; the eviction rules themselves are pinned by
tests/node/test_mempool.py.)

Every process started here is stopped by the fixture; the flood is bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing import propose_tx
from ads_ledger.testing.devnet import Network, create
from ads_ledger.testing.trustlist import TestDeviceCA, issue_attestation, load_device_ca, load_trust_list

pytestmark = pytest.mark.slow

FLOOD_KEYS = 1000
FLOOD_THREADS = 4
SOCKETS_PER_THREAD = 25  # 100 connections of 10 keys each
FLOOD_SECONDS = 14.0  # the whole measurement runs under the flood
FLOOD_MAX_TXS = 200_000  # and never more than this many requests
GRANT_AFTER_S = 3.0  # the flood runs this long, then the owner submits
FULL_WAIT_S = 5.0  # …at a moment node 0's mempool is seen full (or after this long)
GRANT_DEADLINE_S = 5.0
NODE0_MEMPOOL_TXS = 250  # far fewer than the flood's keys: fresh keys alone fill it
OWNER_ADDR = "127.0.0.2"  # all of 127/8 is loopback on Linux
FLOOD_ADDR = "127.0.0.1"
MSGPACK = {"content-type": "application/msgpack"}
NEXT_NONCE = re.compile(r"next nonce is (\d+)")


def _flood_tx(chain: str, device: SigningKey, nonce: int, named: bytes, ca: TestDeviceCA | None = None) -> bytes:
    """The one place flood transactions are made. Nonce 1 is the setup tx that creates the
    device's charge point record (with the testnet manufacturer's attestation, `ca`); every
    later nonce re-proposes `named` as owner of that record, which stays valid and cheap (no
    certificate work) while the record has no owner."""
    if nonce == 1:
        assert ca is not None
        return propose_tx(chain, device, named, ca=ca)
    return make_envelope(chain, "cp.propose", device, nonce, {"owner": named})


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    from ads_ledger.node.config import load_config, write_config

    d = tmp_path_factory.mktemp("fair") / "net"
    create(d, 4)
    cfg = load_config(d / "node0")
    cfg.mempool_max_txs = NODE0_MEMPOOL_TXS
    write_config(cfg)
    n = Network(d)
    try:
        n.start_all()
        n.wait_height(1, timeout=60)
        yield n
    finally:
        n.stop_all()
        for i in list(n.procs):
            n.kill(i)


class _Api:
    """A keep-alive HTTP connection to one node from a chosen loopback source address."""

    def __init__(self, url: str, source: str, timeout: float = 30.0) -> None:
        host, _, port = url.removeprefix("http://").rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source, 0))

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str | None, Any]:
        self.conn.request(method, path, body=body, headers=MSGPACK if body is not None else {})
        resp = self.conn.getresponse()
        data = resp.read()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data.decode(errors="replace")
        return resp.status, resp.getheader("retry-after"), parsed

    def close(self) -> None:
        self.conn.close()


def _submit_all(url: str, raws: list[bytes], source: str) -> list[str]:
    """Submit (no wait) and return the txids; every one must be admitted."""
    api = _Api(url, source)
    txids = []
    try:
        for raw in raws:
            status, _, body = api.call("POST", "/txs", raw)
            assert status == 202, body
            txids.append(body["txid"])
    finally:
        api.close()
    return txids


def _wait_committed(url: str, txids: list[str], timeout: float) -> None:
    api = _Api(url, "127.0.0.3")
    deadline = time.monotonic() + timeout
    try:
        for txid in txids:
            while True:
                status, _, body = api.call("GET", f"/txs/{txid}")
                if status == 200:
                    assert body["ok"], body
                    break
                assert time.monotonic() < deadline, f"setup tx {txid} not committed in {timeout} s"
                time.sleep(0.1)
    finally:
        api.close()


def _metric(url: str, name: str) -> float:
    api = _Api(url, "127.0.0.3", timeout=10)
    try:
        status, _, body = api.call("GET", "/metrics")
    finally:
        api.close()
    assert status == 200
    m = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def _read_responses(sock: socket.socket, n: int, buf: bytes) -> tuple[list[tuple[int, str | None, Any]], bytes]:
    """Read `n` pipelined HTTP/1.1 responses (each with a content-length) from `sock`."""
    out: list[tuple[int, str | None, Any]] = []
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            total = head_end + 4 + int(headers["content-length"])
            if len(buf) >= total:
                body = json.loads(buf[head_end + 4:total])
                out.append((int(lines[0].split()[1]), headers.get("retry-after"), body))
                buf = buf[total:]
                continue
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the node closed the connection")
        buf += chunk
    return out, buf


def _wait_full(url: str, deadline: float) -> float:
    """Poll node 0's pending count until its mempool is full (a block drains it about every
    second and the flood refills it) or the deadline; the last count seen."""
    while True:
        pool = _metric(url, "ads_mempool_txs")
        if pool >= NODE0_MEMPOOL_TXS or time.monotonic() > deadline:
            return pool
        time.sleep(0.01)


class _Flood:
    """FLOOD_THREADS threads, each driving SOCKETS_PER_THREAD keep-alive connections from
    FLOOD_ADDR; each connection owns a slice of the keys and pipelines one tx per key per round
    trip (the node answers one connection's requests in turn, so the flood's rate comes from
    many connections) until `stop` or the count bound."""

    def __init__(self, url: str, chain: str, keys: list[SigningKey], named: bytes) -> None:
        self.url, self.chain, self.keys, self.named = url, chain, keys, named
        host, _, port = url.removeprefix("http://").rpartition(":")
        self.addr = (host, int(port))
        self.stop = threading.Event()
        self.statuses: Counter[tuple[int, str]] = Counter()
        self.bad_retry_after: list[str | None] = []
        self.sent = 0
        self.lock = threading.Lock()
        conns = FLOOD_THREADS * SOCKETS_PER_THREAD
        slices = [keys[i::conns] for i in range(conns)]
        self.threads = [threading.Thread(target=self._run, daemon=True,
                                         args=(slices[t * SOCKETS_PER_THREAD:(t + 1) * SOCKETS_PER_THREAD],))
                        for t in range(FLOOD_THREADS)]  # fmt: skip

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)

    def _request(self, raw: bytes) -> bytes:
        return (b"POST /txs HTTP/1.1\r\nhost: node\r\ncontent-type: application/msgpack\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(raw), raw))  # fmt: skip

    def _run(self, slices: list[list[SigningKey]]) -> None:
        nonce = {k.pub: 2 for keys in slices for k in keys}
        socks = [socket.create_connection(self.addr, timeout=30, source_address=(FLOOD_ADDR, 0))
                 for _ in slices]  # fmt: skip
        bufs = [b""] * len(socks)
        try:
            while not self.stop.is_set():
                with self.lock:
                    if self.sent >= FLOOD_MAX_TXS:
                        return
                    self.sent += sum(map(len, slices))
                for sock, keys in zip(socks, slices):  # send on every connection, then read
                    sock.sendall(b"".join(self._request(_flood_tx(self.chain, k, nonce[k.pub], self.named))
                                          for k in keys))  # fmt: skip
                for i, (sock, keys) in enumerate(zip(socks, slices)):
                    answers, bufs[i] = _read_responses(sock, len(keys), bufs[i])
                    for k, answer in zip(keys, answers):
                        self._note(k, answer, nonce)
        finally:
            for sock in socks:
                sock.close()

    def _note(self, k: SigningKey, answer: tuple[int, str | None, Any], nonce: dict[bytes, int]) -> None:
        status, retry, body = answer
        code = body["error"]["code"] if "error" in body else str(status)
        with self.lock:
            self.statuses[(status, code)] += 1
            if status == 429 and not (retry and retry.isdigit() and int(retry) >= 1):
                self.bad_retry_after.append(retry)
        if status == 202:
            nonce[k.pub] += 1
        elif code == "bad_nonce":  # one of ours was evicted or committed: resync
            m = NEXT_NONCE.search(body["error"]["message"])
            if m:
                nonce[k.pub] = int(m.group(1))


def test_owner_grant_commits_within_5s_under_a_1000_key_flood(net: Network) -> None:
    chain = net.info["chain_id"]
    url = net.apis[0]
    tl = load_trust_list(Path(net.info["eid"]))
    ca = load_device_ca(Path(net.info["device_ca"]))
    now = int(time.time() * 1000)
    owner, device, provider = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    flood_keys = [SigningKey.generate() for _ in range(FLOOD_KEYS)]
    named = SigningKey.generate().pub  # a would-be owner that never accepts

    # setup, committed before the flood: the owner's identity and charge point, the flood's records
    attest = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86400_000)
    ids = _submit_all(url, [make_envelope(chain, "attest", owner, 1, attest),
                            propose_tx(chain, device, owner.pub, ca=ca)],
                      OWNER_ADDR)  # fmt: skip
    _wait_committed(url, ids, 30)
    ids += _submit_all(url, [make_envelope(chain, "cp.accept", owner, 2, {"cp": device.pub})], OWNER_ADDR)
    # the flood's records go in through node 1 (default mempool): node 0's small pool would
    # refuse a burst of 1,000 setup txs, each with certificate work, from one address
    ids += _submit_all(net.apis[1], [_flood_tx(chain, k, 1, named, ca) for k in flood_keys], FLOOD_ADDR)
    _wait_committed(url, ids, 60)

    flood = _Flood(url, chain, flood_keys, named)
    t_flood = time.monotonic()
    flood.start()
    try:
        time.sleep(GRANT_AFTER_S)
        pool_at_grant = _wait_full(url, time.monotonic() + FULL_WAIT_S)
        grant = {"cp": device.pub, "grantee": provider.pub, "scopes": ["meter.read"],
                 "not_before": now - 60_000, "not_after": now + 86400_000, "limits": {},
                 "exclusive": False, "priority": 10, "redelegate": 0, "parent": None}  # fmt: skip
        owner_api = _Api(url, OWNER_ADDR)
        t0 = time.monotonic()
        try:
            status, _, body = owner_api.call("POST", "/txs?wait=commit",
                                             make_envelope(chain, "grant", owner, 3, grant))  # fmt: skip
        finally:
            owner_api.close()
        took = time.monotonic() - t0
        remaining = FLOOD_SECONDS - (time.monotonic() - t_flood)
        if remaining > 0:  # the flood outlasts the measurement
            time.sleep(remaining)
        pool_after = _metric(url, "ads_mempool_txs")
        evicted = _metric(url, "ads_mempool_evicted_total")
    finally:
        flood.join()
    elapsed = time.monotonic() - t_flood
    sent = sum(flood.statuses.values())
    print(f"\nflood: {sent} requests in {elapsed:.1f} s ({sent / elapsed:.0f}/s) from {FLOOD_KEYS} keys; "
          f"answers {dict(flood.statuses)}; mempool {pool_at_grant:.0f} at the grant, "
          f"{pool_after:.0f} later, {evicted:.0f} evicted; grant committed in {took:.2f} s: {body}")  # fmt: skip

    assert status == 200 and body["ok"] is True, body
    assert took <= GRANT_DEADLINE_S, f"the owner's grant took {took:.2f} s under the flood"
    # the grant went into a full mempool (so it got in by eviction); the flood was answered
    # 429s, each with a Retry-After; the mempool kept its bound
    assert pool_at_grant == NODE0_MEMPOOL_TXS, f"the flood never filled the mempool: {pool_at_grant}"
    busy = sum(n for (s, _), n in flood.statuses.items() if s == 429)
    assert busy > 0, flood.statuses
    assert pool_after <= NODE0_MEMPOOL_TXS
    assert not flood.bad_retry_after, f"429s without a valid Retry-After: {flood.bad_retry_after[:5]}"
    assert not [k for k in flood.statuses if k[0] >= 500], flood.statuses
    assert all(p.poll() is None for p in net.procs.values())
