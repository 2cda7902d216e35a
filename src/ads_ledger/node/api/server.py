"""The HTTP/1.1 server of the node API: a thin trio shell around httptools and `routes.dispatch`.

httptools (llhttp, Node.js's parser) does the parsing in C, including chunked bodies and the
request-smuggling rules; writing a response is a few bytes we format ourselves. (h11, which this
server used before, cost ~250 µs of pure Python per POST /txs cycle: more than the signature
check the request exists for.)

One task per connection, at most `max_connections` at once (further clients wait in the
listen backlog). Each connection serves requests in turn (keep-alive) under three deadlines:
idle between requests, the whole of one request, and each write. Bodies over `max_body` get
413, header blocks over `max_header_bytes` get 431, malformed HTTP gets 400 and the
connection closes. Cancelling `serve_http` closes the listeners and every connection.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from http import HTTPStatus
from typing import Any

import httptools
import trio

from ads_ledger.node.api.backend import NodeBackend
from ads_ledger.node.api.routes import (
    ApiConfig,
    ApiContext,
    ApiError,
    EventStream,
    Request,
    Response,
    dispatch,
    error_response,
)

__all__ = ["serve_http", "serve_listeners", "ApiConfig"]

log = logging.getLogger("ads_ledger.node.api")

RECV_BYTES = 16 * 1024
SERVER_HEADER = ("server", "ads-ledger")
MAX_PIPELINED = 64  # parsed requests waiting for their turn on one connection, at most
_REASONS = {int(s): s.phrase.encode() for s in HTTPStatus}
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError)


class _Close(Exception):
    """Stop serving this connection (the peer left, timed out, or we must close)."""


async def serve_http(
    backend: NodeBackend,
    host: str,
    port: int,
    *,
    config: ApiConfig | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on host:port until cancelled. `task_status.started(port)` gives the bound
    port (useful with port 0). Raises OSError if it cannot listen."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    await serve_listeners(backend, listeners, config=config, task_status=task_status)


async def serve_listeners(
    backend: NodeBackend,
    listeners: list[trio.SocketListener],
    *,
    config: ApiConfig | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """As serve_http, on listeners the caller opened (closed when this returns); the port
    given to `task_status.started` is the first listener's."""
    port = listeners[0].socket.getsockname()[1]
    ctx = ApiContext(backend, config or ApiConfig())
    slots = trio.Semaphore(ctx.config.max_connections)
    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(_accept_loop, listener, ctx, slots, nursery)
            task_status.started(port)
    finally:
        for listener in listeners:
            await _close_quietly(listener)


async def _close_quietly(resource: Any) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await resource.aclose()
        except _GONE:
            pass


async def _accept_loop(listener: trio.SocketListener, ctx: ApiContext, slots: trio.Semaphore,
                       nursery: trio.Nursery) -> None:  # fmt: skip
    while True:
        await slots.acquire()  # bound concurrent connections: the rest wait in the backlog
        try:
            stream = await listener.accept()
        except OSError as e:
            slots.release()
            if e.errno not in _ACCEPT_RETRY:
                raise
            log.warning("accept failed (%s); retrying shortly", e)
            await trio.sleep(0.1)
            continue
        nursery.start_soon(_connection_task, stream, ctx, slots)


async def _connection_task(stream: trio.SocketStream, ctx: ApiContext,
                           slots: trio.Semaphore) -> None:  # fmt: skip
    ctx.stats.connections_open += 1
    ctx.stats.connections_total += 1
    try:
        await _Connection(stream, ctx).serve()
    except Exception:  # a bug of ours: it must cost this connection only, never the server
        log.exception("API connection failed")
    finally:
        ctx.stats.connections_open -= 1
        slots.release()
        await _close_quietly(stream)


def _peer_host(stream: trio.SocketStream) -> str:
    """The client's address (host only), "" if the socket cannot say (a test stream)."""
    try:
        peer = stream.socket.getpeername()
    except (OSError, AttributeError):
        return ""
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class _StopParsing(Exception):
    """Raised inside a parser callback to stop at a request we refuse (`_Connection.refusal`)."""


class _Connection:
    """One client connection: the parser's callbacks collect requests, `serve` answers them
    in order (keep-alive and pipelining) until the connection closes."""

    def __init__(self, stream: trio.SocketStream, ctx: ApiContext) -> None:
        self.stream = stream
        self.ctx = ctx
        self.cfg = ctx.config
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[tuple[Request, bool, bool]] = deque()  # (request, keep-alive, HTTP/1.0)
        self.refusal: ApiError | None = None
        self._served = 0  # requests answered on this connection
        self.client = _peer_host(stream)
        self._in_message = False  # bytes of a request arrived; it is not complete yet
        self._headers_done = False
        self._head_bytes = 0  # head bytes received in chunks after the one the request began in
        self._began_here = False
        self._continue = False  # the client waits for "100 Continue" before sending its body
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()

    # -------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self._in_message, self._headers_done, self._began_here = True, False, True
        self._head_bytes, self._url, self._headers, self._body = 0, b"", [], bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        head_bytes = len(self._url) + sum(len(n) + len(v) + 4 for n, v in self._headers)
        if head_bytes > self.cfg.max_header_bytes:
            self._stop(ApiError(431, "headers_too_large", f"request head exceeds {self.cfg.max_header_bytes} bytes"))
        for name, value in self._headers:
            low = name.lower()
            if low == b"content-length" and value.strip().isdigit() and int(value) > self.cfg.max_body:
                self._stop(ApiError(413, "body_too_large", f"request body exceeds {self.cfg.max_body} bytes"))
            elif low == b"expect" and value.strip().lower() == b"100-continue":
                self._continue = True

    def on_body(self, body: bytes) -> None:
        if len(self._body) + len(body) > self.cfg.max_body:
            self._stop(ApiError(413, "body_too_large", f"request body exceeds {self.cfg.max_body} bytes"))
        self._body += body

    def on_message_complete(self) -> None:
        self._in_message, self._continue = False, False
        version = self.parser.get_http_version()
        try:
            method, target = self.parser.get_method().decode("ascii"), self._url.decode("ascii")
        except UnicodeDecodeError:
            self._stop(ApiError(400, "bad_request", "method and target must be ASCII"))
        if version not in ("1.0", "1.1"):
            self._stop(ApiError(400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served"))
        headers: dict[str, str] = {}
        for name, value in self._headers:
            k, v = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        if version == "1.1" and "host" not in headers:  # RFC 9112 §3.2
            self._stop(ApiError(400, "bad_request", "malformed HTTP request: an HTTP/1.1 request needs a Host header"))
        req = Request(method, target, headers, bytes(self._body), self.client)
        self.ready.append((req, self.parser.should_keep_alive(), version == "1.0"))
        if len(self.ready) > MAX_PIPELINED:
            self._stop(ApiError(400, "bad_request", f"more than {MAX_PIPELINED} pipelined requests; "
                                "read the answers before sending more"))

    def _stop(self, refusal: ApiError) -> None:
        self.refusal = refusal
        raise _StopParsing()

    def _feed(self, data: bytes) -> None:
        """Parse `data`; ApiError (after the requests completed before it) for what we refuse."""
        self._began_here = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.refusal = ApiError(400, "bad_request", "protocol upgrades (and CONNECT) are not served")
        except httptools.HttpParserError as e:
            if self.refusal is None:  # else a callback stopped the parser on purpose
                self.refusal = ApiError(400, "bad_request", f"malformed HTTP request: {e}")
        if self.refusal is None and self._in_message and not self._headers_done:
            # the parser buffers an incomplete head: bound it (the exact check runs once it is whole)
            self._head_bytes += 0 if self._began_here else len(data)
            if self._head_bytes > self.cfg.max_header_bytes:
                self.refusal = ApiError(431, "headers_too_large",
                                        f"request head exceeds {self.cfg.max_header_bytes} bytes")

    # -------------------------------------------------------------- serving

    async def serve(self) -> None:
        try:
            while True:
                got = await self._read_request()
                if got is None:
                    return
                req, keep_alive, http10 = got
                self._served += 1
                t0 = time.perf_counter()
                try:
                    name, resp = await dispatch(self.ctx, req)
                except Exception:  # our bug, never the client's: log it, answer 500, go on
                    log.exception("API handler failed for %s %s", req.method, req.target[:200])
                    name, resp = "error", error_response(500, "internal", "internal error")
                if isinstance(resp, EventStream):
                    self.ctx.stats.requests[(name, 200)] += 1
                    await self._stream(resp, chunked=not http10)
                    return
                self.ctx.stats.requests[(name, resp.status)] += 1
                await self._respond(resp, close=not keep_alive, head_only=req.method == "HEAD")
                log.debug("%s %s -> %d in %.1f ms", req.method, req.target[:200], resp.status,
                          (time.perf_counter() - t0) * 1e3)  # fmt: skip
                if not keep_alive:
                    await self._shutdown()
                    return
        except _Close:
            return
        except _GONE:
            return

    # -------------------------------------------------------------- reading

    async def _read_request(self) -> tuple[Request, bool, bool] | None:
        """The next complete request, or None when the client is gone or idled out."""
        if not self.ready and self.refusal is None and not self._in_message:
            # silent sockets must not hold connection slots: a short wait for a new
            # connection's first byte, and a short keep-alive when the server is busy
            wait = self.cfg.idle_timeout_s
            if self._served == 0:
                wait = min(wait, self.cfg.first_byte_timeout_s)
            if self.ctx.stats.connections_open * 4 > self.cfg.max_connections * 3:
                wait = min(wait, self.cfg.busy_idle_timeout_s)
            data = b""
            with trio.move_on_after(wait):
                data = await self.stream.receive_some(RECV_BYTES)
            if not data:
                return None  # idle timeout or a clean close between requests
            self._feed(data)
        if not self.ready and self.refusal is None:
            try:
                with trio.fail_after(self.cfg.request_timeout_s):
                    while not self.ready and self.refusal is None:
                        if self._continue:
                            self._continue = False
                            await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
                        data = await self.stream.receive_some(RECV_BYTES)
                        if not data:  # the client closed (or half-closed) inside a request
                            self.refusal = ApiError(400, "bad_request",
                                                    "malformed HTTP request: the connection ended inside a request")
                            break
                        self._feed(data)
            except trio.TooSlowError:
                self.ctx.stats.protocol_errors += 1
                await self._refuse(408, "request_timeout",
                                   f"the request did not arrive within {self.cfg.request_timeout_s} s")
        if self.ready:  # requests completed before a refused one are answered first
            return self.ready.popleft()
        assert self.refusal is not None
        self.ctx.stats.protocol_errors += 1
        await self._refuse(self.refusal.status, self.refusal.code, self.refusal.message)
        return None  # not reached: _refuse raises _Close

    # -------------------------------------------------------------- writing

    async def _write(self, data: bytes) -> None:
        with trio.fail_after(self.cfg.write_timeout_s):
            await self.stream.send_all(data)

    @staticmethod
    def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        lines += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers]
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _respond(self, resp: Response, *, close: bool = False, head_only: bool = False) -> None:
        headers = [("content-type", resp.content_type), ("content-length", str(len(resp.body))),
                   ("cache-control", "no-store"), SERVER_HEADER, *resp.headers]  # fmt: skip
        if close:
            headers.append(("connection", "close"))
        head = self._head(resp.status, headers)
        await self._write(head if head_only else head + resp.body)

    async def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer an error and close."""
        try:
            await self._respond(error_response(status, code, message), close=True)
        except _GONE:
            raise _Close() from None
        await self._shutdown()
        raise _Close()

    async def _shutdown(self) -> None:
        """Half-close and drain briefly so the client reads our last response before the FIN."""
        with trio.move_on_after(1):
            try:
                await self.stream.send_eof()
                drained = 0
                while drained < 4 * self.cfg.max_body:
                    chunk = await self.stream.receive_some(RECV_BYTES)
                    if not chunk:
                        break
                    drained += len(chunk)
            except _GONE:
                pass

    async def _stream(self, es: EventStream, *, chunked: bool) -> None:
        """Serve an event stream until the client leaves, the source ends, or we are cancelled.
        HTTP/1.1 gets chunked frames; HTTP/1.0 a body that ends when the connection does."""

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        self.ctx.stats.subscribers += 1
        try:
            headers = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-store"),
                       ("x-accel-buffering", "no"), SERVER_HEADER, ("connection", "close")]  # fmt: skip
            if chunked:
                headers.append(("transfer-encoding", "chunked"))
            await self._write(self._head(200, headers) + frame(b": ads-ledger block events\n\n"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_eof, nursery.cancel_scope)
                send, recv = trio.open_memory_channel[bytes](0)
                nursery.start_soon(self._pump, es, send)
                while True:
                    data = b": ping\n\n"
                    with trio.move_on_after(self.cfg.events_heartbeat_s):
                        try:
                            data = await recv.receive()
                        except trio.EndOfChannel:
                            break
                    await self._write(frame(data))
                if chunked:
                    await self._write(b"0\r\n\r\n")
                nursery.cancel_scope.cancel()
        except _GONE:
            pass
        finally:
            self.ctx.stats.subscribers -= 1

    async def _pump(self, es: EventStream, send: trio.MemorySendChannel[bytes]) -> None:
        async with send, es.open() as items:
            async for item in items:
                await send.send(es.render(item))

    async def _watch_eof(self, scope: trio.CancelScope) -> None:
        """While streaming, read and drop client bytes; the client closing ends the stream."""
        try:
            while await self.stream.receive_some(RECV_BYTES):
                pass
        except _GONE:
            pass
        scope.cancel()
