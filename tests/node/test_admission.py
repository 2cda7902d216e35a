"""Fair admission at the API: the per-client token bucket (sans-IO and over sockets), the 429s
with Retry-After, the new config keys and metrics. The mempool's own rules are in test_mempool."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from test_api_fake import FakeBackend, make_tx, run_server

from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.api.backend import Refusal
from ads_ledger.node.api.ratelimit import ClientRateLimiter, client_key
from ads_ledger.node.api.routes import ApiConfig, ApiContext, Request, dispatch
from ads_ledger.node.config import ConfigError, NodeConfig, load_config, write_config
from ads_ledger.node.intake import TxIntake
from ads_ledger.node.mempool import Mempool
from ads_ledger.state.envelope import parse_envelope

MSGPACK = {"content-type": "application/msgpack"}

# ---------------------------------------------------------------- the limiter, sans-IO


def test_defaults_let_one_address_sustain_2000_tx_per_second() -> None:
    cfg = ApiConfig()
    lim = ClientRateLimiter(cfg.tx_rate_per_client, cfg.tx_burst_per_client)
    refused, now = 0, 1000.0
    for _ in range(10 * 2000):  # ten seconds at 2,000 tx/s, evenly spaced
        now += 1 / 2000
        refused += lim.take("10.0.0.1", now) > 0
    assert refused == 0
    refused = sum(lim.take("10.0.0.1", now) > 0 for _ in range(int(cfg.tx_burst_per_client) - 1))
    assert refused == 0  # and a burst on top of it, at one instant


def test_bucket_refuses_past_the_burst_and_refills_at_the_rate() -> None:
    lim = ClientRateLimiter(rate=10, burst=5)
    assert all(lim.take("a", 0.0) == 0 for _ in range(5))
    wait = lim.take("a", 0.0)
    assert wait == pytest.approx(0.1) and lim.retry_after(wait) == 1 and lim.limited == 1
    assert lim.take("b", 0.0) == 0  # another client has its own bucket
    assert lim.take("a", 0.1) == 0 and lim.take("a", 0.1) > 0
    assert all(lim.take("a", 10.0) == 0 for _ in range(5))  # refilled, but never above burst
    assert lim.take("a", 10.0) > 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    lim = ClientRateLimiter(rate=0.25, burst=1)
    lim.take("a", 0.0)
    wait = lim.take("a", 0.0)
    assert wait == pytest.approx(4.0) and lim.retry_after(wait) == 4
    assert ClientRateLimiter.retry_after(0.001) == 1


def test_client_table_is_bounded_lru() -> None:
    lim = ClientRateLimiter(rate=1, burst=1, max_clients=100)
    for i in range(10_000):
        lim.take(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 0.0)
    assert len(lim) == 100
    lim.take("192.0.2.1", 0.0)
    for i in range(50):  # the busy client keeps being used: it stays in the table
        lim.take(f"198.51.100.{i}", 0.0)
        assert lim.take("192.0.2.1", 0.0) > 0


def test_ipv6_clients_share_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    lim = ClientRateLimiter(rate=1, burst=1)
    assert lim.take("2001:db8::1", 0.0) == 0 and lim.take("2001:db8::2", 0.0) > 0


def test_rate_zero_turns_the_limit_off() -> None:
    lim = ClientRateLimiter(rate=0, burst=1)
    assert all(lim.take("a", 0.0) == 0 for _ in range(1000))
    with pytest.raises(ValueError):
        ClientRateLimiter(rate=-1, burst=1)


# ---------------------------------------------------------------- the route


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _post(ctx: ApiContext, raw: bytes, client: str) -> Any:
    _, resp = trio.run(dispatch, ctx, Request("POST", "/txs", MSGPACK, raw, client))
    return resp


def test_post_tx_over_the_rate_is_429_rate_limited_with_retry_after() -> None:
    clock = _Clock()
    ctx = ApiContext(FakeBackend(), ApiConfig(tx_rate_per_client=2, tx_burst_per_client=2), clock=clock)
    key = SigningKey.generate()
    assert _post(ctx, make_tx(1, key), "10.0.0.1").status == 202
    assert _post(ctx, make_tx(2, key), "10.0.0.1").status == 202
    r = _post(ctx, make_tx(3, key), "10.0.0.1")
    assert r.status == 429 and json.loads(r.body)["error"]["code"] == "rate_limited"
    assert dict(r.headers)["retry-after"] == "1"
    assert _post(ctx, make_tx(3, key), "10.0.0.2").status == 202  # another address
    clock.t = 0.5
    assert _post(ctx, make_tx(4, key), "10.0.0.1").status == 202
    assert ctx.stats.rate_limited == 1
    _, metrics = trio.run(dispatch, ctx, Request("GET", "/metrics", {}))
    assert b"ads_api_rate_limited_total 1\n" in metrics.body


class _BusyBackend(FakeBackend):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal

    async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float,
                        client: str | None = None) -> Any:  # fmt: skip
        raise self.refusal


@pytest.mark.parametrize("code", ["mempool_full", "signer_busy"])
def test_mempool_429s_carry_retry_after(code: str) -> None:
    ctx = ApiContext(_BusyBackend(Refusal(code, "busy", 429, retry_after=3)))
    r = _post(ctx, make_tx(1), "10.0.0.1")
    assert r.status == 429 and dict(r.headers)["retry-after"] == "3"
    assert json.loads(r.body)["error"]["code"] == code


def test_every_429_carries_retry_after() -> None:
    ctx = ApiContext(FakeBackend(), ApiConfig(max_subscribers=0))
    _, r = trio.run(dispatch, ctx, Request("GET", "/events", {}))
    assert r.status == 429 and int(dict(r.headers)["retry-after"]) >= 1


def test_rate_limit_keys_on_the_socket_peer_address() -> None:
    """Over real sockets: 127.0.0.1 exhausts its bucket; 127.0.0.2 (also loopback) is served."""
    key = SigningKey.generate()

    def post(port: int, source: str, raw: bytes) -> tuple[int, str | None, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        try:
            conn.request("POST", "/txs", body=raw, headers=MSGPACK)
            resp = conn.getresponse()
            return resp.status, resp.getheader("retry-after"), json.loads(resp.read())
        finally:
            conn.close()

    async def body(port: int) -> list[tuple[int, str | None, Any]]:
        out = []
        for nonce, source in ((1, "127.0.0.1"), (2, "127.0.0.1"), (2, "127.0.0.2")):
            out.append(await trio.to_thread.run_sync(post, port, source, make_tx(nonce, key)))
        return out

    a, b, c = run_server(FakeBackend(), body, ApiConfig(tx_rate_per_client=1, tx_burst_per_client=1))
    assert a[0] == 202
    assert b[0] == 429 and b[1] == "1" and b[2]["error"]["code"] == "rate_limited"
    assert c[0] == 202


# ---------------------------------------------------------------- the intake's 429s


def test_intake_answers_signer_busy_and_client_busy_with_429_and_evicts(tmp_path: Path) -> None:
    from test_intake import CHAIN, GOV, T0, VALS, _Host

    from ads_ledger.node.ledger import Ledger
    from ads_ledger.state.genesis import Genesis
    from ads_ledger.testing import propose_tx, test_device_ca

    g = Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS],
                members=[k.pub for k in GOV], threshold=2, anchors=[],
                device_anchors=test_device_ca().anchors_der())  # fmt: skip
    host = _Host()
    ledger = Ledger.open(tmp_path / "db", g, host=host)
    try:
        mp = Mempool(max_txs=65, max_per_signer=64)
        intake = host.intake = TxIntake(CHAIN, ledger, mp, lock=host.commit_guard,
                                        counters={"txs_received": 0, "txs_rejected": 0},
                                        now=lambda: T0 + 120_000)  # fmt: skip
        dev, other, third = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
        raws = [propose_tx(CHAIN, dev, other.pub, nonce=n) for n in range(1, 66)]  # the first attested
        items = [intake.parse(r) for r in raws]
        intake.verify_and_admit(items)
        assert all(it.result is True for it in items[:64])
        busy = items[64].result
        assert isinstance(busy, Refusal) and (busy.code, busy.status, busy.retry_after) == ("signer_busy", 429, 1)
        # one slot left: `other` takes it; `third` evicts one of dev's 64 (fair share)
        for k in (other, third):
            (it,) = [intake.parse(propose_tx(CHAIN, k, dev.pub))]
            intake.verify_and_admit([it])
            assert it.result is True
        assert len(mp) == 65 and mp.pending_of(dev.pub) == 63 and mp.evicted == 1
        assert parse_envelope(raws[63]).txid(CHAIN) not in mp
        # the submitting client's address reaches the mempool: its bound answers client_busy
        mp.max_per_client = 1
        a, b = (intake.parse(propose_tx(CHAIN, SigningKey.generate(), dev.pub)) for _ in range(2))
        a.origin = b.origin = "10.0.0.1"
        intake.verify_and_admit([a, b])
        assert a.result is True and mp.pending_of_client("10.0.0.1") == 1
        assert isinstance(b.result, Refusal) and (b.result.code, b.result.status) == ("client_busy", 429)
    finally:
        ledger.close()


# ---------------------------------------------------------------- config


def test_config_writes_loads_and_validates_the_admission_keys(tmp_path: Path) -> None:
    cfg = NodeConfig(home=tmp_path)
    assert (cfg.mempool_max_per_signer, cfg.api_tx_rate_per_client, cfg.api_tx_burst_per_client) == (64, 4000, 8000)
    cfg.mempool_max_per_signer, cfg.api_tx_rate_per_client, cfg.api_tx_burst_per_client = 100, 50, 70
    text = write_config(cfg).read_text()
    assert "max_per_signer = 100" in text and "tx_rate_per_client = 50" in text
    assert "# pending transactions held per signer at most" in text
    back = load_config(tmp_path)
    assert (back.mempool_max_per_signer, back.api_tx_rate_per_client, back.api_tx_burst_per_client) == (100, 50, 70)
    for section, key, value, match in (("mempool", "max_per_signer", 63, "≥ 64"),
                                       ("mempool", "max_per_client", -1, "≥ 0"),
                                       ("api", "tx_rate_per_client", -1, "≥ 0"),
                                       ("api", "tx_burst_per_client", 0, "≥ 1"),
                                       ("api", "tx_rate_per_client", 1.5, "must be a int")):  # fmt: skip
        (tmp_path / "config.toml").write_text(f"[{section}]\n{key} = {value}\n")
        with pytest.raises(ConfigError, match=match):
            load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[api]\ntx_rate_per_client = 0\n")
    assert load_config(tmp_path).api_tx_rate_per_client == 0  # off


def test_openapi_documents_the_429s_and_their_retry_after() -> None:
    from ads_ledger.node.api.openapi import ERROR_CODES, document

    post = document()["paths"]["/txs"]["post"]["responses"]["429"]
    assert post["headers"]["Retry-After"]["schema"]["minimum"] == 1
    assert all(c in post["description"] for c in ("rate_limited", "signer_busy", "client_busy", "mempool_full"))
    assert "rate_limited" in ERROR_CODES
    events = document()["paths"]["/events"]["get"]["responses"]["429"]
    assert "Retry-After" in events["headers"]


def test_route_passes_the_client_address_to_the_backend() -> None:
    seen: list[str | None] = []

    class Recording(FakeBackend):
        async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float,
                            client: str | None = None) -> Any:  # fmt: skip
            seen.append(client)
            return await super().submit_tx(raw, wait_commit, timeout_s, client)

    ctx = ApiContext(Recording())
    _post(ctx, make_tx(1), "10.0.0.9")
    _post(ctx, make_tx(2), "")
    assert seen == ["10.0.0.9", None]
