"""`chargepoint-agent run`: the trio shell around the agent (DESIGN §7, §8).

Tasks: the HTTP endpoint (`POST /commands`, `GET /status`), the access-list sync (a verified
refresh when `/events` says this charge point's record changed, and a verified poll every
`poll_ms` whatever the events say — a node that suppresses events delays an update by at most
that), the driver's clock (`tick`), and an AsyncDriver's own task (the OCPP server). After
every verified refresh the driver is told which controllers are in force (`Agent.retain`), so
what a revoked or expired grant set on the charger is undone.

HTTP is h11 over trio with bounds on everything a client controls: connections (64), header
bytes (8 KiB), body bytes (64 KiB), the time to send one request (10 s) and idle keep-alive
(30 s). What does not parse gets a 400 (a `malformed` receipt for `POST /commands`), never a
crash; one slow client cannot stall the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import h11
import trio

from ads_ledger.client import jsonenc
from ads_ledger.client.http import NodeClient, TransportError
from ads_ledger.core import codec
from ads_ledger.core.errors import AdsError
from ads_ledger.light.errors import LightError
from ads_ledger.light.trust import TrustOptions
from chargepoint_agent.agent import Agent
from chargepoint_agent.config import AgentConfig, load_device_key
from chargepoint_agent.drivers.base import AsyncDriver, Driver, DriverError
from chargepoint_agent.drivers.sim import SimCharger
from chargepoint_agent.store import AgentStore
from chargepoint_agent.sync import AclSync, SyncError

__all__ = ["run", "serve"]

log = logging.getLogger("chargepoint_agent")

MAX_CONNECTIONS = 64
MAX_HEADER_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


def _json(obj: Any) -> bytes:
    return json.dumps(jsonenc.to_json(obj), sort_keys=True).encode()


class _Http:
    """One connection: requests in turn, each under its deadline."""

    def __init__(self, stream: trio.SocketStream, agent: Agent, sync_state: dict[str, Any]) -> None:
        self.stream, self.agent, self.sync_state = stream, agent, sync_state
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)

    async def serve(self) -> None:
        try:
            while True:
                with trio.move_on_after(IDLE_TIMEOUT_S) as idle:
                    req = await self._next()
                if idle.cancelled_caught or req is None:
                    return
                with trio.move_on_after(REQUEST_TIMEOUT_S) as slow:
                    body = await self._body()
                if slow.cancelled_caught:
                    await self._send(408, b'{"error": {"code": "request_timeout", "message": "send the request '
                                     b'within 10 s"}}', close=True)  # fmt: skip
                    return
                if body is None:
                    return
                status, ctype, data = await self._route(req, body)
                await self._send(status, data, ctype=ctype)
                if self.conn.our_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as e:  # not HTTP, or over a limit: say so, then close
            status = 431 if "too large" in str(e).lower() or "too long" in str(e).lower() else 400
            body = _json({"error": {"code": "bad_request" if status == 400 else "headers_too_large",
                                    "message": f"{e}; headers at most {MAX_HEADER_BYTES} bytes"}})  # fmt: skip
            head = (f"HTTP/1.1 {status} {'Bad Request' if status == 400 else 'Request Header Fields Too Large'}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
            with trio.move_on_after(2), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self.stream.send_all(head.encode() + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            with trio.move_on_after(1):
                await self.stream.aclose()

    async def _next(self) -> h11.Request | None:
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                data = await self.stream.receive_some(16 * 1024)
                self.conn.receive_data(data)
                if not data and self.conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(ev, h11.Request):
                return ev
            if isinstance(ev, h11.ConnectionClosed):
                return None
            return None

    async def _body(self) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                data = await self.stream.receive_some(16 * 1024)
                if not data:
                    return None
                self.conn.receive_data(data)
                continue
            if isinstance(ev, h11.Data):
                size += len(ev.data)
                if size > MAX_BODY_BYTES:
                    await self._send(413, _json({"error": {"code": "body_too_large",
                                                           "message": f"at most {MAX_BODY_BYTES} bytes"}}), close=True)
                    return None
                chunks.append(bytes(ev.data))
                continue
            if isinstance(ev, h11.EndOfMessage):
                return b"".join(chunks)
            return None

    async def _route(self, req: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        path = req.target.decode("latin-1").split("?")[0]
        method = req.method.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers}
        now = now_ms()
        if path == "/status" and method == "GET":
            st = self.agent.status(now)
            st["sync"] = dict(self.sync_state)
            return 200, "application/json", _json(st)
        if path == "/commands" and method == "POST":
            ctype = headers.get("content-type", "").split(";")[0].strip()
            raw = body
            if ctype == "application/json":
                try:
                    doc = json.loads(body)
                    raw = bytes.fromhex(doc["envelope"]) if isinstance(doc, dict) and isinstance(doc.get("envelope"), str) else b""
                except (ValueError, UnicodeDecodeError):
                    raw = b""
            elif ctype != "application/msgpack":
                return 415, "application/json", _json({"error": {"code": "unsupported_media_type", "message":
                    "send the envelope as application/msgpack, or JSON {\"envelope\": hex}"}})  # fmt: skip
            v, receipt = await self.agent.handle(raw, now)
            status = 400 if v.code == "malformed" else 200
            if "application/msgpack" in headers.get("accept", ""):
                return status, "application/msgpack", codec.encode(receipt)
            return status, "application/json", _json(receipt)
        if path == "/sim/frequency" and method == "POST" and isinstance(self.agent.driver, SimCharger):
            # the simulator's grid: what a real charger measures itself (never on a real driver)
            try:
                mhz = json.loads(body)["mhz"]
                if type(mhz) is not int:
                    raise TypeError("mhz must be an integer")
                self.agent.driver.frequency_input(mhz, now)
            except (ValueError, KeyError, TypeError, DriverError) as e:
                return 400, "application/json", _json({"error": {"code": "bad_request", "message": str(e)}})
            return 200, "application/json", _json(self.agent.driver.status(now))
        if path in ("/status", "/commands"):
            return 405, "application/json", _json({"error": {"code": "method_not_allowed", "message": method}})
        return 404, "application/json", _json({"error": {"code": "not_found", "message": path}})

    async def _send(self, status: int, data: bytes, *, ctype: str = "application/json", close: bool = False) -> None:
        headers = [("content-type", ctype), ("content-length", str(len(data))), ("server", "ads-chargepoint-agent")]
        if close:
            headers.append(("connection", "close"))
        try:
            out = self.conn.send(h11.Response(status_code=status, headers=headers))
            out += self.conn.send(h11.Data(data=data)) + self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        with trio.move_on_after(REQUEST_TIMEOUT_S):
            await self.stream.send_all(out)


async def serve(agent: Agent, host: str, port: int, sync_state: dict[str, Any],
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    listeners = await trio.open_tcp_listeners(port, host=host)
    slots = trio.Semaphore(MAX_CONNECTIONS)
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(stream: trio.SocketStream) -> None:
        async with slots:
            await _Http(stream, agent, sync_state).serve()

    await trio.serve_listeners(handle, listeners)


async def _sync_loop(sync: AclSync, agent: Agent, cfg: AgentConfig, state: dict[str, Any], holder: list[trio.Event]) -> None:
    """A verified refresh on every wake-up (`holder[0]` set: an event named us) and at least
    every poll_ms."""
    lock = threading.Lock()  # one refresh at a time, in a worker thread

    def once() -> Any:
        with lock:
            return sync.refresh(now_ms())

    while True:
        try:
            rep = await trio.to_thread.run_sync(once)
            state.update(ok=True, height=rep.height, fetches=rep.fetches, error=None)
            if rep.changed:
                log.info("access list changed at height %d", rep.height)
            agent.retain(now_ms())
        except (SyncError, LightError, AdsError) as e:
            state.update(ok=False, error=str(e), halted=sync.halted, witnesses=list(sync.reported))
            log.warning("sync: %s", e)
            if not sync.halted:
                sync.rotate()  # the primary failed or lied: ask the next node
        holder[0] = trio.Event()
        with trio.move_on_after(cfg.poll_ms / 1000):
            await holder[0].wait()


def _events_thread(url: str, cp_hex: str, wake: Any, stop: threading.Event) -> None:
    """Follow the primary's /events; call `wake()` when a block changed this charge point's record."""
    while not stop.is_set():
        try:
            with NodeClient(url, timeout_s=30.0) as c:
                for ev in c.events(max_events=10**9):
                    if stop.is_set():
                        return
                    changed = ev.get("changed_cps")
                    if changed is None or cp_hex in changed:
                        wake()
        except (TransportError, OSError, ValueError):
            stop.wait(2.0)


async def _driver_clock(driver: Driver | AsyncDriver) -> None:
    while True:
        driver.tick(now_ms())
        await trio.sleep(0.5)


async def run(cfg: AgentConfig, driver: Driver | AsyncDriver, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the agent until cancelled (SIGINT/SIGTERM in the CLI)."""
    key = load_device_key(cfg.home)
    opts = TrustOptions(trusting_period_ms=cfg.trusting_period_ms)
    store = AgentStore(cfg.state_dir)
    sync = AclSync(cp=key.pub, chain_id=cfg.chain_id, nodes=cfg.nodes, store=store, opts=opts,
                   trust_height=cfg.trust_height, trust_hash=bytes.fromhex(cfg.trust_hash) if cfg.trust_hash else None,
                   staleness_override_ms=cfg.staleness_limit_ms)  # fmt: skip
    agent = Agent(key=key, chain_id=cfg.chain_id, store=store, driver=driver, acl=lambda: sync.acl,
                  trusted_height=lambda: sync.trusted_height, skew_ms=cfg.skew_ms)  # fmt: skip
    state: dict[str, Any] = {"ok": None, "height": None, "error": None}
    holder = [trio.Event()]
    stop = threading.Event()
    token = trio.lowlevel.current_trio_token()

    def wake() -> None:
        try:
            trio.from_thread.run_sync(lambda: holder[0].set(), trio_token=token)
        except trio.RunFinishedError:
            stop.set()

    host, _, port = cfg.api_listen.rpartition(":")
    th = threading.Thread(target=_events_thread, args=(cfg.nodes[0], key.pub.hex(), wake, stop), daemon=True)
    try:
        async with trio.open_nursery() as n:
            bound = await n.start(serve, agent, host, int(port), state)
            th.start()
            if isinstance(driver, AsyncDriver):
                await n.start(driver.serve, store.get_meta("driver"), lambda b: store.put_meta("driver", b))
            n.start_soon(_sync_loop, sync, agent, cfg, state, holder)
            n.start_soon(_driver_clock, driver)
            task_status.started(bound)
    finally:
        stop.set()
        sync.close()
        store.close()
