"""Every route of the node HTTP API, over real sockets, against the in-memory fake backend."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
from test_api_fake import (
    CHAIN,
    CP_KEY,
    KEYS,
    OWNER_KEY,
    FakeBackend,
    make_tx,
    run_server,
    with_client,
)

from ads_ledger.client.http import ApiResponseError, NodeClient, NotFound, TransportError
from ads_ledger.core import codec
from ads_ledger.core.crypto import H
from ads_ledger.core.merkle import SparseProof, verify_proof
from ads_ledger.core.types import verify_commit
from ads_ledger.state.envelope import make_envelope

HEX32 = re.compile(r"[0-9a-f]{64}")


def test_status() -> None:
    fake = FakeBackend()
    s = with_client(fake, lambda c: c.status())
    assert s == {"chain_id": CHAIN, "node_id": fake.node_id.hex(), "latest_height": 3,
                 "latest_block_id": fake.blocks[-1].block_id().hex(),
                 "latest_time": fake.blocks[-1].header.time, "catching_up": False}  # fmt: skip


def test_block_renders_every_field_as_hex() -> None:
    fake = FakeBackend()
    b = with_client(fake, lambda c: c.block(2))
    blk = fake.blocks[1]
    assert b["block_id"] == blk.block_id().hex()
    assert b["header"]["height"] == 2 and b["header"]["chain_id"] == CHAIN
    assert b["header"]["prev"] == fake.blocks[0].block_id().hex()
    assert b["last_commit"]["block"] == fake.blocks[0].block_id().hex()
    assert all(HEX32.fullmatch(s[1][:64]) for s in b["last_commit"]["sigs"])
    assert b["txs"] == [] and b["evidence"] == []
    assert set(b) == {"block_id", "header", "txs", "evidence", "last_commit"}


def test_commit_round_trips_and_verifies() -> None:
    fake = FakeBackend()

    def fn(c: NodeClient) -> Any:
        return c.commit(3), c.validators(3)

    (header, commit), valset = with_client(fake, fn)
    assert header == fake.blocks[2].header and commit == fake.commits[2]
    assert valset == fake.valset
    verify_commit(CHAIN, valset, commit, height=3, block_id=header.block_id())


def test_validators_in_set_order() -> None:
    fake = FakeBackend()
    body = with_client(fake, lambda c: c._json("GET", "/validators/1"))
    assert body["height"] == 1
    assert [v["power"] for v in body["validators"]] == [13, 12, 11, 10]
    assert [v["pub"] for v in body["validators"]] == [p.hex() for p, _ in fake.valset.validators]


def test_state_inclusion_history_and_absence_proofs_verify() -> None:
    fake = FakeBackend()
    key = b"cp/" + CP_KEY.pub

    def fn(c: NodeClient) -> Any:
        return c.state(key), c.state(key, height=1), c.state(b"cp/" + bytes(32), height=2)

    latest, first, absent = with_client(fake, fn)
    for (h, value, proof) in (latest, first):
        assert value == fake.states[h - 1][key]
        assert verify_proof(fake.blocks[h - 1].header.state_root, key, value, proof)
    assert latest[0] == 3 and first[0] == 1 and latest[1] != first[1]
    h, value, proof = absent
    assert h == 2 and value is None
    assert verify_proof(fake.blocks[1].header.state_root, b"cp/" + bytes(32), None, proof)


def test_state_json_shape() -> None:
    fake = FakeBackend()
    key = b"acct/" + OWNER_KEY.pub
    body = with_client(fake, lambda c: c._json("GET", f"/state/{key.hex()}?height=2"))
    assert body["key"] == key.hex() and body["height"] == 2
    assert body["value"] == fake.states[1][key].hex()
    assert set(body["proof"]) == {"leaf", "siblings"} and len(body["proof"]["leaf"]) == 2


def test_state_pruned_and_future_heights() -> None:
    fake = FakeBackend()
    fake.pruned_below = 2
    key = (b"cp/" + CP_KEY.pub).hex()

    def fn(c: NodeClient) -> Any:
        out = []
        for q in ("?height=1", "?height=4"):
            with pytest.raises(ApiResponseError) as ei:
                c._json("GET", f"/state/{key}{q}")
            out.append((ei.value.status, ei.value.code))
        return out

    assert with_client(fake, fn) == [(410, "height_pruned"), (404, "height_future")]


def test_a_pruned_block_body_answers_410_and_its_commit_stays() -> None:
    fake = FakeBackend()
    fake.bodies_from = 2  # [storage] keep_blocks pruned block 1's body

    def fn(c: NodeClient) -> Any:
        out = []
        for path in ("/blocks/1", "/blocks/99"):
            with pytest.raises(ApiResponseError) as ei:
                c._json("GET", path)
            out.append((ei.value.status, ei.value.code))
        out.append(c._json("GET", "/commits/1")["header"]["height"])
        out.append(c._json("GET", "/blocks/2")["header"]["height"])
        return out

    assert with_client(fake, fn) == [(410, "height_pruned"), (404, "not_found"), 1, 2]


def test_chargepoint_record_decoded_with_proof() -> None:
    fake = FakeBackend()
    r = with_client(fake, lambda c: c.chargepoint(CP_KEY.pub))
    rec = codec.decode(fake.state[b"cp/" + CP_KEY.pub])
    assert r["cp"] == CP_KEY.pub.hex() and r["height"] == 3
    assert r["owner"] == OWNER_KEY.pub.hex() and r["pending"] is None and r["epoch"] == rec["epoch"]
    g = r["grants"][0]
    assert g["id"] == "07" * 16 and g["limits"] == {"max_power_w": 11000}
    assert g["scopes"] == ["charging.control"] and g["parent"] is None
    value = bytes.fromhex(r["value"])
    assert codec.decode(value) == rec
    from ads_ledger.client.jsonenc import proof_from_json

    root = fake.blocks[2].header.state_root
    assert verify_proof(root, b"cp/" + CP_KEY.pub, value, proof_from_json(r["proof"]))


def test_unknown_chargepoint_is_200_with_non_inclusion_proof() -> None:
    fake = FakeBackend()
    cp = H(b"nobody")
    r = with_client(fake, lambda c: c.chargepoint(cp, height=2))
    assert set(r) == {"cp", "value", "proof", "height"} and r["value"] is None
    from ads_ledger.client.jsonenc import proof_from_json

    root = fake.blocks[1].header.state_root
    assert verify_proof(root, b"cp/" + cp, None, proof_from_json(r["proof"]))


def test_provider_record_decoded_with_proof() -> None:
    fake = FakeBackend()
    prov = {"cap_w": 50_000, "height": 3, "live_w": 11_000, "name": "agg", "roles": ["aggregator"],
            "suspended": False}  # fmt: skip
    fake.state[b"prov/" + KEYS[0].pub] = codec.encode(prov)
    fake.commit_block()
    from ads_ledger.client.jsonenc import proof_from_json

    r = with_client(fake, lambda c: c.provider(KEYS[0].pub))
    assert r["pub"] == KEYS[0].pub.hex() and r["height"] == 4
    # `height` is the height read (as for /chargepoints); the record's own height is in `value`
    assert {k: r[k] for k in prov if k != "height"} == {k: v for k, v in prov.items() if k != "height"}
    value = bytes.fromhex(r["value"])
    assert codec.decode(value) == prov
    assert verify_proof(fake.blocks[3].header.state_root, b"prov/" + KEYS[0].pub, value, proof_from_json(r["proof"]))
    unknown = with_client(fake, lambda c: c.provider(KEYS[1].pub, height=2))
    assert set(unknown) == {"pub", "value", "proof", "height"} and unknown["value"] is None
    assert verify_proof(fake.blocks[1].header.state_root, b"prov/" + KEYS[1].pub, None,
                        proof_from_json(unknown["proof"]))  # fmt: skip


def test_submit_tx_then_wait_commit_then_lookup() -> None:
    fake = FakeBackend()
    tx1, tx2 = make_tx(1), make_tx(2)

    def fn(c: NodeClient) -> Any:
        a = c.submit_tx(tx1)
        b = c.submit_tx(tx2, wait_commit=True)
        return a, b, c.tx(bytes.fromhex(a["txid"])), c.block(4)

    a, b, info, blk = with_client(fake, fn)
    assert a["height"] is None and a["ok"] is None and a["code"] == "pending"
    assert set(a) == {"txid", "height", "ok", "code", "log"}
    assert b["height"] == 4 and b["ok"] is True
    assert info["height"] == 4 and info["index"] == 0 and info["tx"] == tx1.hex()
    assert blk["txs"] == [tx1.hex(), tx2.hex()]


def test_wait_commit_timeout_answers_202_pending() -> None:
    """DESIGN §8: a tx admitted but not included in time is 202 with ok null and code
    "pending" — never 200 "ok" (which a wallet would read as success)."""
    from ads_ledger.node.api import ApiConfig

    fake = FakeBackend()

    def fn(c: NodeClient) -> Any:
        return c.request("POST", "/txs?wait=commit", make_tx(1), {"content-type": "application/msgpack"})

    status, _, data = with_client(fake, fn, ApiConfig(tx_wait_timeout_s=0.001))
    body = codec.decode(codec.encode(__import__("json").loads(data)))
    assert status == 202 and body["ok"] is None and body["code"] == "pending" and body["height"] is None


def test_refused_tx_gets_4xx_with_typed_code() -> None:
    fake = FakeBackend()
    bad_sig = bytearray(make_tx(1))
    bad_sig[-1] ^= 1

    def fn(c: NodeClient) -> list[tuple[int, str]]:
        out = []
        c.submit_tx(make_tx(1))
        uncoded = make_envelope(CHAIN, "test.uncoded", OWNER_KEY, 2, {})
        for raw in (b"\xc1garbage", bytes(bad_sig), make_tx(1), make_tx(5), b"", uncoded):
            with pytest.raises(ApiResponseError) as ei:
                c.submit_tx(raw)
            out.append((ei.value.status, ei.value.code))
        return out

    assert with_client(fake, fn) == [(400, "malformed"), (400, "bad_signature"),
                                     (409, "duplicate"), (400, "bad_nonce"), (400, "malformed"),
                                     (400, "malformed")]


def test_post_tx_http_level_refusals() -> None:
    fake = FakeBackend()
    tx = make_tx(1)

    def fn(c: NodeClient) -> list[tuple[int, str]]:
        out = []
        cases = [
            ("/txs", tx, {"content-type": "application/json"}),
            ("/txs", tx, {}),
            ("/txs?wait=block", tx, {"content-type": "application/msgpack"}),
            ("/txs?wait=commit&x=1", tx, {"content-type": "application/msgpack"}),
            ("/txs", b"\x00" * (64 * 1024 + 1), {"content-type": "application/msgpack"}),
        ]
        for path, body, hdrs in cases:
            with pytest.raises(ApiResponseError) as ei:
                c._json("POST", path, body, hdrs)
            out.append((ei.value.status, ei.value.code))
        return out

    assert with_client(fake, fn) == [
        (415, "unsupported_media_type"), (415, "unsupported_media_type"), (400, "bad_query"),
        (400, "bad_query"), (413, "body_too_large"),
    ]  # fmt: skip
    assert fake.mempool == []  # nothing refused reached the node


BAD_REQUESTS = [
    ("GET", "/txs/zz", 400, "bad_hex"),
    ("GET", "/txs/" + "AB" * 32, 400, "bad_hex"),
    ("GET", "/txs/abc", 400, "bad_hex"),
    ("GET", "/txs/" + "ab" * 31, 400, "bad_length"),
    ("GET", "/txs/" + "ab" * 32, 404, "not_found"),
    ("GET", "/blocks/-1", 400, "bad_height"),
    ("GET", "/blocks/0", 400, "bad_height"),
    ("GET", "/blocks/abc", 400, "bad_height"),
    ("GET", "/blocks/1.5", 400, "bad_height"),
    ("GET", "/blocks/%2B1", 400, "bad_height"),
    ("GET", "/blocks/9223372036854775808", 400, "bad_height"),
    ("GET", "/blocks/99999999999999999999999", 400, "bad_height"),
    ("GET", "/blocks/4", 404, "not_found"),
    ("GET", "/commits/4", 404, "not_found"),
    ("GET", "/commits/x", 400, "bad_height"),
    ("GET", "/validators/6", 404, "not_found"),
    ("GET", "/state/" + "ab" * 257, 400, "bad_length"),
    ("GET", "/state/0g", 400, "bad_hex"),
    ("GET", "/state/00?height=-3", 400, "bad_height"),
    ("GET", "/state/00?height=", 400, "bad_height"),
    ("GET", "/state/00?height=1&height=2", 400, "bad_query"),
    ("GET", "/state/00?hieght=1", 400, "bad_query"),
    ("GET", "/state/%ff", 400, "bad_request"),
    ("GET", "/state/00?height=%ff", 400, "bad_query"),
    ("GET", "/state/00?" + "&".join(f"a{i}=1" for i in range(20)), 400, "bad_query"),
    ("GET", "/chargepoints/" + "ab" * 33, 400, "bad_length"),
    ("GET", "/chargepoints/xyz", 400, "bad_hex"),
    ("GET", "/providers/" + "ab" * 31, 400, "bad_length"),
    ("GET", "/status?verbose=1", 400, "bad_query"),
    ("GET", "/grants", 400, "bad_query"),
    ("GET", "/grants?grantee=zz", 400, "bad_hex"),
    ("GET", "/grants?grantee=" + "ab" * 31, 400, "bad_length"),
    ("GET", "/grants?owner=" + "ab" * 32, 400, "bad_query"),
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/status/", 404, "not_found"),
    ("GET", "/blocks/", 404, "not_found"),
    ("GET", "/", 404, "not_found"),
    ("POST", "/status", 405, "method_not_allowed"),
    ("DELETE", "/txs", 405, "method_not_allowed"),
    ("PUT", "/blocks/1", 405, "method_not_allowed"),
]


def test_every_bad_request_has_its_typed_error() -> None:
    fake = FakeBackend()

    def fn(c: NodeClient) -> list[tuple[str, str, int, str]]:
        out = []
        for method, path, _, _ in BAD_REQUESTS:
            with pytest.raises(ApiResponseError) as ei:
                c._json(method, path, b"" if method != "GET" else None)
            assert ei.value.message, path
            out.append((method, path, ei.value.status, ei.value.code))
        return out

    assert with_client(fake, fn) == BAD_REQUESTS


def test_405_names_allowed_methods_and_404_is_typed() -> None:
    fake = FakeBackend()

    def fn(c: NodeClient) -> Any:
        status, _, _ = c.request("PATCH", "/txs")
        conn = c._connection()
        conn.request("POST", "/blocks/1", body=b"")
        resp = conn.getresponse()
        allow = resp.getheader("allow")
        resp.read()
        with pytest.raises(NotFound):
            c.block(10)
        return status, resp.status, allow

    assert with_client(fake, fn) == (405, 405, "GET")


def test_accept_header() -> None:
    fake = FakeBackend()

    def fn(c: NodeClient) -> list[int]:
        return [c.request("GET", path, headers={"accept": acc})[0] for path, acc in [
            ("/status", "text/html"), ("/status", "application/json;q=0, text/html"),
            ("/status", "application/*"), ("/status", "text/html, */*;q=0.1"),
            ("/metrics", "application/json"),
            ("/metrics", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            ("/events", "application/json"),
        ]]  # fmt: skip

    assert with_client(fake, fn) == [406, 406, 200, 200, 406, 200, 406]


PROM_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\n"])*",?)*\})? '
    r"(-?[0-9.e+]+|NaN|[+-]Inf)$"
)


def parse_prometheus(text: str) -> dict[str, list[tuple[str, float]]]:
    """A strict reader of the text format: HELP and TYPE come once, before a name's samples."""
    samples: dict[str, list[tuple[str, float]]] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped and name not in samples
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge") and name not in typed and name not in samples
            typed[name] = kind
        else:
            m = PROM_SAMPLE.match(line)
            assert m, line
            assert m.group(1) in typed and m.group(1) in helped, line
            samples.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(4))))
    return samples


def test_metrics_are_parseable_prometheus_text() -> None:
    fake = FakeBackend()

    def fn(c: NodeClient) -> tuple[str, str]:
        c.status()
        c.status()
        with pytest.raises(NotFound):
            c.block(99)
        status, ctype, body = c.request("GET", "/metrics")
        assert status == 200
        return ctype, body.decode()

    ctype, text = with_client(fake, fn)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    samples = parse_prometheus(text)
    assert samples["ads_height"] == [("", 3.0)]
    assert samples["ads_peer_bytes_total"] == [('{dir="out",peer="a\\"b\\\\c"}', 12.5)]
    reqs = dict(samples["ads_api_requests_total"])
    assert reqs['{route="/status",status="200"}'] == 2.0
    assert reqs['{route="/blocks/{height}",status="404"}'] == 1.0
    assert samples["ads_api_connections_total"] == [("", 1.0)]  # keep-alive: one connection


def test_handler_bug_is_500_and_server_survives(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeBackend):
        def status(self) -> Any:
            raise RuntimeError("planted bug")

    def fn(c: NodeClient) -> Any:
        with pytest.raises(ApiResponseError) as ei:
            c.status()
        return ei.value.status, ei.value.code, c.block(1)["header"]["height"]

    assert with_client(Broken(), fn) == (500, "internal", 1)
    assert any("planted bug" in (r.exc_text or "") for r in caplog.records)


def test_events_stream_two_blocks() -> None:
    fake = FakeBackend()

    async def body(port: int) -> list[dict[str, Any]]:
        async def commit_when_subscribed() -> None:
            while not fake.subscribers:
                await trio.sleep(0.01)
            fake.commit_block()
            fake.mempool.append(make_tx(1))
            fake.commit_block()

        async with trio.open_nursery() as n:
            n.start_soon(commit_when_subscribed)
            with NodeClient(f"http://127.0.0.1:{port}", timeout_s=5) as c:
                events = await trio.to_thread.run_sync(lambda: list(c.events(max_events=2)))
        # the server notices the client left and drops the subscription
        with trio.fail_after(3):
            while fake.subscribers:
                await trio.sleep(0.01)
        return events

    events = run_server(fake, body)
    assert [e["height"] for e in events] == [4, 5]
    assert [e["num_txs"] for e in events] == [0, 1]
    assert all(e["changed_cps"] == [] for e in events)  # the fake's blocks change no record
    assert events[1]["block_id"] == fake.blocks[4].block_id().hex()
    assert events[1]["header"]["prev"] == fake.blocks[3].block_id().hex()


def test_client_transport_error_when_nothing_listens() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with NodeClient(f"127.0.0.1:{port}", timeout_s=2) as c, pytest.raises(TransportError):
        c.status()


def test_events_heartbeat_and_subscriber_limit() -> None:
    from test_api_fake import json_body, raw_exchange, status_of

    from ads_ledger.node.api import ApiConfig

    cfg = ApiConfig(events_heartbeat_s=0.1, max_subscribers=1)

    async def body(port: int) -> tuple[bytes, bytes]:
        first = await trio.open_tcp_stream("127.0.0.1", port)
        async with first:
            await first.send_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            with trio.move_on_after(0.8):
                while chunk := await first.receive_some(4096):
                    got += chunk
            second = await raw_exchange(
                port, b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return got, second

    got, second = run_server(FakeBackend(), body, cfg)
    assert got.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in got
    assert b"transfer-encoding: chunked" in got.lower()
    assert got.count(b": ping\n\n") >= 2
    assert status_of(second) == 429 and json_body(second)["error"]["code"] == "too_many_subscribers"


def test_client_survives_the_server_closing_idle_keepalive() -> None:
    from ads_ledger.node.api import ApiConfig

    fake = FakeBackend()

    def fn(c: NodeClient) -> Any:
        import time as _t

        first = c.status()["latest_height"]
        _t.sleep(0.5)  # the server's idle timeout closes the connection meanwhile
        posted = c.submit_tx(make_tx(1))  # a POST is not retried: it must go out on a fresh one
        _t.sleep(0.5)
        return first, posted["code"], c.block(1)["header"]["height"]

    assert with_client(fake, fn, ApiConfig(idle_timeout_s=0.2)) == (3, "pending", 1)


def test_render_metrics_edge_values() -> None:
    from ads_ledger.node.api.backend import Metric
    from ads_ledger.node.api.metrics import render_metrics

    text = render_metrics([
        Metric("a_total", "counter", "first", 1, {"x": "1"}),
        Metric("b", "gauge", "flag", True),
        Metric("a_total", "counter", "first", 2, {"x": "2"}),
        Metric("c", "gauge", "odd", float("nan")),
        Metric("d", "gauge", "big", float("-inf")),
    ]).decode()  # fmt: skip
    samples = parse_prometheus(text)
    assert samples["a_total"] == [('{x="1"}', 1.0), ('{x="2"}', 2.0)]  # grouped under one HELP
    assert samples["b"] == [("", 1.0)]
    assert "c NaN\n" in text and "d -Inf\n" in text
    for bad in ("1abc", "a-b", ""):
        with pytest.raises(ValueError):
            Metric(bad, "gauge", "h", 1)
    with pytest.raises(ValueError):
        Metric("ok", "gauge", "h", 1, {"bad-label": "v"})


def test_light_bundle_is_one_verifiable_round_trip() -> None:
    """GET /light/{cp}: header, commit, set, record and params at one height, all verifiable."""
    from ads_ledger.core.types import Commit, Header, ValidatorSet
    from ads_ledger.light.verify import verify_signed_header, verify_state

    fake = FakeBackend()
    b = with_client(fake, lambda c: c.light(CP_KEY.pub))
    header = Header.from_obj(b["header"])
    verify_signed_header(header.chain_id, header, Commit.from_obj(b["commit"]), ValidatorSet.from_obj(b["validators"]))
    verify_state(header, b"cp/" + CP_KEY.pub, b["record"]["value"], SparseProof.from_obj(b["record"]["proof"]))
    verify_state(header, b"gov/params", b["params"]["value"], SparseProof.from_obj(b["params"]["proof"]))
    assert b["height"] == header.height == fake.latest()
    status, _, body = with_client(fake, lambda c: c.request("GET", f"/light/{CP_KEY.pub.hex()}", None,
                                                            {"accept": "application/json"}))  # fmt: skip
    assert status == 406


def test_light_bundle_at_a_pruned_height_still_serves_the_signed_header() -> None:
    fake = FakeBackend()
    fake.pruned_below = 2
    b = with_client(fake, lambda c: c.light(CP_KEY.pub, 1))
    assert b["height"] == 1 and b["record"] is None and b["params"] is None and b["commit"]
    assert with_client(fake, lambda c: c.light(CP_KEY.pub, 2))["record"] is not None
