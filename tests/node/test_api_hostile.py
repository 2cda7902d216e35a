"""Hostile clients against the API server: garbage, truncation, huge heads, slowloris, floods.

Every loop is bounded in count and time. The server must answer 4xx (or close) and keep serving.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Iterator

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_fake import FakeBackend, json_body, make_tx, raw_exchange, run_server, status_of

from ads_ledger.node.api import ApiConfig, serve_http

FAST = ApiConfig(idle_timeout_s=0.5, request_timeout_s=0.5, write_timeout_s=2.0,
                 max_header_bytes=4096, max_connections=8)  # fmt: skip
GET_STATUS = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(autouse=True)
def no_server_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Hostile input is the client's fault: the server must never log one of its own bugs."""
    caplog.set_level(logging.WARNING, logger="ads_ledger.node.api")
    yield
    bugs = [r for r in caplog.records if r.name.startswith("ads_ledger.node.api") and r.levelno >= 40]
    assert not bugs, [r.getMessage() for r in bugs]


async def assert_still_serving(port: int) -> None:
    resp = await raw_exchange(port, GET_STATUS.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert status_of(resp) == 200, resp[:200]


def test_random_bytes_never_5xx() -> None:
    rng = random.Random(1234)
    seeds = [b"GET / HTTP/1.1\r\n", b"POST /txs HTTP/1.1\r\nContent-Length: 5\r\n", b"\r\n\r\n",
             b"Transfer-Encoding: chunked\r\n", b"Host: a\r\n", b"\x00\xff", b"HTTP/1.1 200 OK\r\n"]

    async def body(port: int) -> list[int]:
        statuses: list[int] = []

        async def one(data: bytes) -> None:
            # half-close after sending, so a partial request fails at once instead of timing out
            resp = await raw_exchange(port, data, read_s=2.0, eof=True)
            assert not resp or resp.startswith(b"HTTP/1.1 "), resp[:100]
            statuses.append(status_of(resp))

        for _ in range(50):  # 50 rounds of 6 concurrent clients
            async with trio.open_nursery() as n:
                for i in range(6):
                    if i % 2:
                        data = rng.randbytes(rng.randrange(1, 300))
                    else:
                        data = b"".join(rng.choice(seeds) for _ in range(rng.randrange(1, 8)))
                        if rng.random() < 0.5:
                            pos = rng.randrange(len(data))
                            data = data[:pos] + rng.randbytes(3) + data[pos:]
                    n.start_soon(one, data)
        await assert_still_serving(port)
        return statuses

    statuses = run_server(FakeBackend(), body, FAST, limit_s=60)
    assert all(s == 0 or 200 <= s < 500 for s in statuses), statuses
    assert len(statuses) == 300 and statuses.count(400) > 100  # the garbage was in fact refused as such


def test_garbage_gets_a_clear_json_400() -> None:
    async def body(port: int) -> Any:
        return await raw_exchange(port, b"HELLO THERE\r\n\r\n")

    resp = run_server(FakeBackend(), body, FAST)
    assert status_of(resp) == 400
    err = json_body(resp)["error"]
    assert err["code"] == "bad_request" and "malformed HTTP" in err["message"]


def test_truncated_requests_at_every_cut() -> None:
    """A request cut anywhere, then closed: no response or a 4xx; never a crash."""
    full = (b"POST /txs?wait=commit HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
            b"Content-Length: 40\r\n\r\n" + b"\x00" * 40)  # fmt: skip

    async def body(port: int) -> list[int]:
        out = []
        for cut in range(0, len(full), 7):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(full[:cut])
                await stream.send_eof()
                resp = b""
                with trio.move_on_after(2):
                    while chunk := await stream.receive_some(4096):
                        resp += chunk
                out.append(status_of(resp))
        await assert_still_serving(port)
        return out

    statuses = run_server(FakeBackend(), body, FAST, limit_s=60)
    assert all(s == 0 or 400 <= s < 500 for s in statuses), statuses


def test_partial_request_left_open_gets_408() -> None:
    async def body(port: int) -> tuple[int, float]:
        t0 = time.monotonic()
        resp = await raw_exchange(port, b"GET /status HTTP/1.1\r\nHost: x\r\n", read_s=5)
        return status_of(resp), time.monotonic() - t0

    status, took = run_server(FakeBackend(), body, FAST)
    assert status == 408 and 0.4 < took < 3


def test_slowloris_is_cut_off_by_the_request_deadline() -> None:
    """One byte every 50 ms never completes the head; the server answers 408 within its deadline."""

    async def body(port: int) -> tuple[bytes, float]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        t0 = time.monotonic()
        got = b""
        async with stream:
            async def drip() -> None:
                try:
                    for b in (b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200):
                        await stream.send_all(bytes([b]))
                        await trio.sleep(0.05)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            async with trio.open_nursery() as n:
                n.start_soon(drip)
                with trio.move_on_after(5):
                    while chunk := await stream.receive_some(4096):
                        got += chunk
                n.cancel_scope.cancel()
        return got, time.monotonic() - t0

    got, took = run_server(FakeBackend(), body, FAST)
    assert status_of(got) == 408 and took < 3


def test_idle_keepalive_connection_is_closed_quietly() -> None:
    async def body(port: int) -> tuple[bytes, float]:
        t0 = time.monotonic()
        return await raw_exchange(port, b"", read_s=5), time.monotonic() - t0

    got, took = run_server(FakeBackend(), body, FAST)
    assert got == b"" and 0.4 < took < 3


def test_huge_headers_get_431() -> None:
    async def body(port: int) -> list[int]:
        big_one = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n"
        many = b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n"
        return [status_of(await raw_exchange(port, r)) for r in (big_one, many)]

    assert run_server(FakeBackend(), body, FAST) == [431, 431]


def test_an_unfinished_head_arriving_in_pieces_is_bounded() -> None:
    """A head that never ends, sent in pieces faster than the request deadline: 431 once the
    pieces exceed the limit, not buffered until the deadline (the parser holds what it got)."""

    async def body(port: int) -> tuple[int, float]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        t0 = time.monotonic()
        got = b""
        async with stream:
            try:
                await stream.send_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: ")
                for _ in range(8):  # 8 × 1,500 bytes of one header value, 20 ms apart
                    await trio.sleep(0.02)
                    await stream.send_all(b"a" * 1500)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            with trio.move_on_after(3):
                while chunk := await stream.receive_some(4096):
                    got += chunk
        return status_of(got), time.monotonic() - t0

    status, took = run_server(FakeBackend(), body, FAST)
    assert status == 431 and took < FAST.request_timeout_s + 0.4


def test_pipelining_is_bounded_and_earlier_requests_are_answered() -> None:
    from ads_ledger.node.api.server import MAX_PIPELINED

    reqs = GET_STATUS * (MAX_PIPELINED + 10)

    async def body(port: int) -> bytes:
        return await raw_exchange(port, reqs)

    resp = run_server(FakeBackend(), body, FAST)
    statuses = [int(part[:3]) for part in resp.split(b"HTTP/1.1 ")[1:]]
    assert statuses[:MAX_PIPELINED] == [200] * MAX_PIPELINED and statuses[-1] == 400, statuses
    assert b"pipelined requests" in resp


def test_oversized_bodies_get_413_declared_or_chunked() -> None:
    head = b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
    declared = head + b"Content-Length: 70000\r\n\r\n" + b"\x00" * 1000
    chunk = b"%x\r\n%s\r\n" % (30000, b"\x00" * 30000)
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"

    async def body(port: int) -> list[Any]:
        out = []
        for r in (declared, chunked):
            resp = await raw_exchange(port, r)
            out.append((status_of(resp), json_body(resp)["error"]["code"]))
        return out

    fake = FakeBackend()
    assert run_server(fake, body, FAST) == [(413, "body_too_large")] * 2
    assert fake.mempool == []


def test_chunked_body_and_expect_100_continue() -> None:
    tx = make_tx(1)
    head = (b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n")  # fmt: skip

    async def body(port: int) -> bytes:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(head + b"Transfer-Encoding: chunked\r\n\r\n")
            interim = await stream.receive_some(4096)
            assert interim.startswith(b"HTTP/1.1 100 "), interim
            await stream.send_all(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tx), tx))
            out = b""
            with trio.fail_after(3):
                while chunk := await stream.receive_some(4096):
                    out += chunk
            return out

    fake = FakeBackend()
    resp = run_server(fake, body, FAST)
    assert status_of(resp) == 202 and json_body(resp)["code"] == "pending"
    assert fake.mempool == [tx]


def test_pipelined_keepalive_requests_on_one_connection() -> None:
    reqs = (b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /blocks/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /blocks/9 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /validators/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # fmt: skip

    async def body(port: int) -> bytes:
        return await raw_exchange(port, reqs)

    resp = run_server(FakeBackend(), body, FAST)
    statuses = [int(part[:3]) for part in resp.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 200, 404, 200]


def test_keepalive_sequential_requests_reuse_the_connection() -> None:
    async def body(port: int) -> list[int]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        out = []
        async with stream:
            for path in (b"/status", b"/blocks/2", b"/nope", b"/commits/1", b"/status"):
                await stream.send_all(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                resp = b""
                with trio.fail_after(3):
                    while b"\r\n\r\n" not in resp or len(resp.split(b"\r\n\r\n", 1)[1]) < int(
                            resp.split(b"content-length: ")[1].split(b"\r\n")[0]):
                        resp += await stream.receive_some(65536)
                out.append(status_of(resp))
        return out

    assert run_server(FakeBackend(), body, FAST) == [200, 200, 404, 200, 200]


def test_http10_and_odd_targets() -> None:
    async def body(port: int) -> list[int]:
        return [status_of(await raw_exchange(port, r)) for r in (
            b"GET /status HTTP/1.0\r\n\r\n",
            b"GET http://x/status HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /status HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
            b"GET /status HTTP/2.0\r\nHost: x\r\n\r\n",
            b"GET /st\xc3\xa4tus HTTP/1.1\r\nHost: x\r\n\r\n",
        )]  # fmt: skip

    assert run_server(FakeBackend(), body, FAST) == [200, 400, 400, 400, 400, 400]


def test_connection_limit_holds_third_client_until_a_slot_frees() -> None:
    cfg = ApiConfig(idle_timeout_s=5, request_timeout_s=5, max_connections=2)

    async def body(port: int) -> tuple[bytes, int]:
        holders = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        for h in holders:
            await h.send_all(GET_STATUS)
            await h.receive_some(65536)
        early = await raw_exchange(port, GET_STATUS, read_s=0.4)
        await holders[0].aclose()
        late = await raw_exchange(port, GET_STATUS.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        await holders[1].aclose()
        return early, status_of(late)

    early, late = run_server(FakeBackend(), body, cfg)
    assert early == b"" and late == 200


def test_cancel_shuts_down_with_open_connections() -> None:
    async def main() -> tuple[bytes, float]:
        fake = FakeBackend()
        async with trio.open_nursery() as n:
            port = await n.start(lambda task_status: serve_http(
                fake, "127.0.0.1", 0, config=ApiConfig(idle_timeout_s=30), task_status=task_status))
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await stream.receive_some(4096)
            t0 = time.monotonic()
            n.cancel_scope.cancel()
        took = time.monotonic() - t0
        got = b""
        with trio.fail_after(2):
            while chunk := await idle.receive_some(4096):
                got += chunk
        await idle.aclose()
        await stream.aclose()
        try:
            await trio.open_tcp_stream("127.0.0.1", port)
            refused = False
        except OSError:
            refused = True
        assert refused
        assert fake.subscribers == []
        return got, took

    got, took = trio.run(main)
    assert got == b"" and took < 2


_SHARED_FAKE = FakeBackend(blocks=2)
SEGMENTS = ["status", "txs", "blocks", "commits", "validators", "state", "chargepoints", "events",
            "metrics", "openapi.json", "1", "0", "-1", "ab" * 32, "AB", "%ff", "%2F", "", "x" * 300]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "get", "HEAD", "X" * 20]),
    segments=st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=20)), max_size=4),
    query=st.lists(st.tuples(st.sampled_from(["height", "wait", "x", ""]),
                             st.one_of(st.sampled_from(["commit", "1", "-1", "%zz"]),
                                       st.text(max_size=10))), max_size=3),
    accept=st.one_of(st.none(), st.sampled_from(["*/*", "text/html", "a;q=x", ",,;", "*/*;q=nan"])),
    ctype=st.sampled_from(["", "application/msgpack", "application/msgpack; charset=x", "x/y"]),
    body=st.binary(max_size=200),
)
def test_dispatch_never_fails_on_any_request(method: str, segments: list[str],
                                             query: list[tuple[str, str]], accept: str | None,
                                             ctype: str, body: bytes) -> None:  # fmt: skip
    """Routing and handlers, without sockets: any request gets a 2xx/4xx, never an exception."""
    from urllib.parse import quote

    from ads_ledger.node.api.routes import ApiContext, EventStream, Request, dispatch

    target = "/" + "/".join(s if "%" in s else quote(s, safe="") for s in segments)
    if query:
        target += "?" + "&".join(f"{quote(k)}={v}" for k, v in query)
    headers = {"content-type": ctype} | ({"accept": accept} if accept is not None else {})
    ctx = ApiContext(_SHARED_FAKE)

    async def run() -> Any:
        return await dispatch(ctx, Request(method, target, headers, body))

    _, resp = trio.run(run)
    if not isinstance(resp, EventStream):
        assert 200 <= resp.status < 500, (target, resp)
        if resp.status >= 400:
            assert set(json_body(b"\r\n\r\n" + resp.body)["error"]) == {"code", "message"}


def test_slow_body_gets_408() -> None:
    head = (b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
            b"Content-Length: 100\r\n\r\n")  # fmt: skip

    async def body(port: int) -> tuple[int, float]:
        t0 = time.monotonic()
        resp = await raw_exchange(port, head + b"\x00" * 10, read_s=5)
        return status_of(resp), time.monotonic() - t0

    fake = FakeBackend()
    status, took = run_server(fake, body, FAST)
    assert status == 408 and took < 3 and fake.mempool == []


def test_client_that_never_reads_is_dropped_by_the_write_deadline() -> None:
    """Pipelined requests whose responses are never read: the server's writes stall, its write
    deadline fires, the connection is closed and the slot is freed."""
    cfg = ApiConfig(write_timeout_s=0.3, idle_timeout_s=5, request_timeout_s=5)
    req = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"

    async def body(port: int) -> tuple[bool, str]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        closed = False
        async with stream:
            with trio.move_on_after(8):
                try:
                    while True:  # ~40 bytes each; the server stops reading once it is stuck
                        await stream.send_all(req * 100)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    closed = True
            if not closed:  # our send buffer may be what filled up: the socket must be dead
                with trio.move_on_after(3):
                    try:
                        while await stream.receive_some(1 << 20):
                            pass
                        closed = True
                    except trio.BrokenResourceError:
                        closed = True
        await trio.sleep(0.2)
        metrics = await raw_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                           b"Connection: close\r\n\r\n")  # fmt: skip
        line = [x for x in metrics.decode().splitlines()
                if x.startswith("ads_api_connections_open ")]  # fmt: skip
        return closed, line[0]

    closed, open_line = run_server(FakeBackend(), body, cfg, limit_s=30)
    assert closed
    assert open_line == "ads_api_connections_open 1"  # only the /metrics connection itself


def test_many_concurrent_clients_beyond_the_connection_limit_are_all_served() -> None:
    cfg = ApiConfig(max_connections=4, idle_timeout_s=2, request_timeout_s=2)

    async def body(port: int) -> list[int]:
        statuses: list[int] = []

        async def one(i: int) -> None:
            path = b"/status" if i % 2 else b"/blocks/%d" % (1 + i % 3)
            resp = await raw_exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                                            b"\r\n\r\n" % path, read_s=10)  # fmt: skip
            statuses.append(status_of(resp))

        async with trio.open_nursery() as n:
            for i in range(40):
                n.start_soon(one, i)
        return statuses

    assert run_server(FakeBackend(), body, cfg) == [200] * 40
