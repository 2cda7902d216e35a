"""The HTTP/1.1 server of the node API: a thin trio shell around h11 and `routes.dispatch`.

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
from typing import Any

import h11
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


class _Connection:
    """One client connection: h11 state plus the socket, serving requests until it closes."""

    def __init__(self, stream: trio.SocketStream, ctx: ApiContext) -> None:
        self.stream = stream
        self.ctx = ctx
        self.cfg = ctx.config
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.cfg.max_header_bytes)
        self._served = 0  # requests answered on this connection
        self.client = _peer_host(stream)

    async def serve(self) -> None:
        try:
            while True:
                req = await self._read_request()
                if req is None:
                    return
                self._served += 1
                t0 = time.perf_counter()
                try:
                    name, resp = await dispatch(self.ctx, req)
                except Exception:  # our bug, never the client's: log it, answer 500, go on
                    log.exception("API handler failed for %s %s", req.method, req.target[:200])
                    name, resp = "error", error_response(500, "internal", "internal error")
                if isinstance(resp, EventStream):
                    self.ctx.stats.requests[(name, 200)] += 1
                    await self._stream(resp)
                    return
                self.ctx.stats.requests[(name, resp.status)] += 1
                await self._respond(resp)
                log.debug("%s %s -> %d in %.1f ms", req.method, req.target[:200], resp.status,
                          (time.perf_counter() - t0) * 1e3)  # fmt: skip
                if self.conn.our_state is h11.MUST_CLOSE:
                    await self._shutdown()
                    return
                self.conn.start_next_cycle()
        except _Close:
            return
        except _GONE:
            return

    # -------------------------------------------------------------- reading

    async def _receive(self) -> None:
        data = await self.stream.receive_some(RECV_BYTES)
        self.conn.receive_data(data)  # b"" tells h11 the peer closed

    async def _next_event(self) -> Any:
        while True:
            ev = self.conn.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            await self._receive()

    async def _read_request(self) -> Request | None:
        """The next complete request, or None when the client is gone or idled out."""
        if not self.conn.trailing_data[0]:
            # silent sockets must not hold connection slots: a short wait for a new
            # connection's first byte, and a short keep-alive when the server is busy
            wait = self.cfg.idle_timeout_s
            if self._served == 0:
                wait = min(wait, self.cfg.first_byte_timeout_s)
            if self.ctx.stats.connections_open * 4 > self.cfg.max_connections * 3:
                wait = min(wait, self.cfg.busy_idle_timeout_s)
            with trio.move_on_after(wait):
                await self._receive()
            if not self.conn.trailing_data[0]:
                return None  # idle timeout or a clean close between requests
        try:
            with trio.fail_after(self.cfg.request_timeout_s):
                return await self._read_started_request()
        except trio.TooSlowError:
            self.ctx.stats.protocol_errors += 1
            await self._refuse(408, "request_timeout",
                               f"the request did not arrive within {self.cfg.request_timeout_s} s")
        except h11.RemoteProtocolError as e:
            self.ctx.stats.protocol_errors += 1
            if e.error_status_hint == 431:
                await self._refuse(431, "headers_too_large",
                                   f"request head exceeds {self.cfg.max_header_bytes} bytes")
            else:
                await self._refuse(400, "bad_request", f"malformed HTTP request: {e}")
        except ApiError as e:
            self.ctx.stats.protocol_errors += 1
            await self._refuse(e.status, e.code, e.message)
        return None

    async def _read_started_request(self) -> Request | None:
        ev = await self._next_event()
        if isinstance(ev, h11.ConnectionClosed):
            return None
        assert isinstance(ev, h11.Request)
        try:
            method, target = ev.method.decode("ascii"), ev.target.decode("ascii")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_request", "method and target must be ASCII") from None
        if ev.http_version not in (b"1.0", b"1.1"):
            raise ApiError(400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served")
        # h11 bounds only an incomplete head; a head that arrives whole is bounded here
        head_bytes = len(ev.target) + sum(len(n) + len(v) + 4 for n, v in ev.headers)
        if head_bytes > self.cfg.max_header_bytes:
            raise ApiError(431, "headers_too_large",
                           f"request head exceeds {self.cfg.max_header_bytes} bytes")
        headers: dict[str, str] = {}
        for name, value in ev.headers:
            k, v = name.decode("ascii", "replace"), value.decode("latin-1")
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        limit = self.cfg.max_body
        declared = headers.get("content-length")
        if declared is not None and int(declared.split(",")[0]) > limit:  # h11 checked it is an int
            raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        body = bytearray()
        while True:
            ev = await self._next_event()
            if isinstance(ev, h11.Data):
                body += ev.data
                if len(body) > limit:
                    raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
            elif isinstance(ev, h11.EndOfMessage):
                return Request(method, target, headers, bytes(body), self.client)
            else:  # ConnectionClosed mid-body: h11 raises before this; be safe anyway
                raise _Close()

    # -------------------------------------------------------------- writing

    async def _send(self, *events: Any) -> None:
        data = b"".join(self.conn.send(ev) or b"" for ev in events)
        with trio.fail_after(self.cfg.write_timeout_s):
            await self.stream.send_all(data)

    def _head(self, resp: Response, *, close: bool) -> h11.Response:
        headers = [("content-type", resp.content_type), ("content-length", str(len(resp.body))),
                   ("cache-control", "no-store"), SERVER_HEADER, *resp.headers]  # fmt: skip
        if close:
            headers.append(("connection", "close"))
        return h11.Response(status_code=resp.status, headers=headers)

    async def _respond(self, resp: Response, *, close: bool = False) -> None:
        await self._send(self._head(resp, close=close), h11.Data(data=resp.body),
                         h11.EndOfMessage())

    async def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer an error and close, if HTTP still lets us answer (else just close)."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                await self._respond(error_response(status, code, message), close=True)
            except (h11.LocalProtocolError, *_GONE):
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

    async def _stream(self, es: EventStream) -> None:
        """Serve an event stream until the client leaves, the source ends, or we are cancelled."""
        self.ctx.stats.subscribers += 1
        try:
            head = h11.Response(status_code=200, headers=[
                ("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-store"),
                ("x-accel-buffering", "no"), SERVER_HEADER, ("connection", "close")])  # fmt: skip
            await self._send(head, h11.Data(data=b": ads-ledger block events\n\n"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_eof, nursery.cancel_scope)
                send, recv = trio.open_memory_channel[bytes](0)
                nursery.start_soon(self._pump, es, send)
                while True:
                    frame = b": ping\n\n"
                    with trio.move_on_after(self.cfg.events_heartbeat_s):
                        try:
                            frame = await recv.receive()
                        except trio.EndOfChannel:
                            break
                    await self._send(h11.Data(data=frame))
                await self._send(h11.EndOfMessage())
                nursery.cancel_scope.cancel()
        except (h11.LocalProtocolError, *_GONE):
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
