"""Requests/s of the node HTTP API (GET /status, GET /chargepoints/{cp}) over one keep-alive
connection from one client thread, against the in-memory fake backend of the tests.

Beside them, two raw limits measured in the same run:
- `echo_rt_per_s`: round trips/s of a 200-byte message over loopback TCP between a trio echo
  server and one blocking client thread (the same transport and thread layout, no HTTP);
- `h11_rt_per_s`: in-process h11 round trips/s (client request → server parse → response →
  client parse), i.e. the HTTP framing cost alone.

Run: `.venv/bin/python bench/bench_api.py [--seconds 3]`. Prints one JSON line and a human line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import h11
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ads_ledger.api import serve_http  # noqa: E402
from test_api_fake import CP_KEY, FakeBackend  # noqa: E402


def _rate(fn: Callable[[], None], seconds: float) -> float:
    for _ in range(50):  # warm up
        fn()
    n, t0 = 0, time.perf_counter()
    while (dt := time.perf_counter() - t0) < seconds:
        for _ in range(50):
            fn()
        n += 50
    return n / dt


def http_rates(seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for name, path in (("status_rps", "/status"),
                           ("chargepoint_rps", f"/chargepoints/{CP_KEY.pub.hex()}")):  # fmt: skip
            def one(path: str = path) -> None:
                conn.request("GET", path)
                resp = conn.getresponse()
                if resp.status != 200:
                    raise SystemExit(f"{path} answered {resp.status}")
                resp.read()

            out[name] = _rate(one, seconds)
        conn.close()

    async def main() -> None:
        async with trio.open_nursery() as n:
            port = await n.start(partial(serve_http, FakeBackend(), "127.0.0.1", 0))
            await trio.to_thread.run_sync(client, port)
            n.cancel_scope.cancel()

    trio.run(main)
    return out


def echo_rate(seconds: float) -> float:
    result: list[float] = []

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    def client(port: int) -> None:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"x" * 200

        def one() -> None:
            s.sendall(msg)
            got = 0
            while got < len(msg):
                got += len(s.recv(65536))

        result.append(_rate(one, seconds))
        s.close()

    async def main() -> None:
        async with trio.open_nursery() as n:
            listeners = await n.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            await trio.to_thread.run_sync(client, port)
            n.cancel_scope.cancel()

    trio.run(main)
    return result[0]


def h11_rate(seconds: float) -> float:
    cli, srv = h11.Connection(h11.CLIENT), h11.Connection(h11.SERVER)
    body = b'{"chain_id":"ads-test","latest_height":3}\n'

    def one() -> None:
        req = h11.Request(method="GET", target="/status", headers=[("host", "x")])
        srv.receive_data(cli.send(req) + cli.send(h11.EndOfMessage()))
        assert isinstance(srv.next_event(), h11.Request)
        assert isinstance(srv.next_event(), h11.EndOfMessage)
        out = srv.send(h11.Response(status_code=200, headers=[
            ("content-type", "application/json"), ("content-length", str(len(body)))]))
        cli.receive_data(out + srv.send(h11.Data(data=body)) + srv.send(h11.EndOfMessage()))
        assert isinstance(cli.next_event(), h11.Response)
        assert isinstance(cli.next_event(), h11.Data)
        assert isinstance(cli.next_event(), h11.EndOfMessage)
        cli.start_next_cycle()
        srv.start_next_cycle()

    return _rate(one, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = ap.parse_args()
    rates = http_rates(args.seconds)
    echo = echo_rate(args.seconds)
    h11_rt = h11_rate(args.seconds)
    out = {
        "bench": "api",
        **{k: round(v) for k, v in rates.items()},
        "echo_rt_per_s": round(echo),
        "h11_rt_per_s": round(h11_rt),
        "status_vs_echo": round(rates["status_rps"] / echo, 3),
        "status_vs_h11": round(rates["status_rps"] / h11_rt, 3),
    }
    print(json.dumps(out))
    print(f"GET /status {rates['status_rps']:.0f} req/s, GET /chargepoints/{{cp}} "
          f"{rates['chargepoint_rps']:.0f} req/s (one keep-alive client thread); raw limits: "
          f"loopback echo {echo:.0f} rt/s, h11 in-process {h11_rt:.0f} rt/s "
          f"(status = {out['status_vs_echo']:.0%} of echo, {out['status_vs_h11']:.0%} of h11)")


if __name__ == "__main__":
    main()
