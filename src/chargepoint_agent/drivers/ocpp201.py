"""The OCPP 2.0.1 driver: the agent as its station's local controller (DESIGN §7, §8; docs/ocpp.md).

The station connects to `ws[s]://host:port/{station_id}` with subprotocol `ocpp2.0.1`; every
accepted §7 command becomes the OCPP request the station already understands, and the station's
answer decides the receipt (Accepted → `ok` with its data; Rejected, CALLERROR, no answer within
`call_timeout_s`, or no station → DriverError → `driver_error` with the reason).

Choices, and why:
- **trio-websocket** for the server: the agent is a trio program (structured concurrency, one
  nursery per connection, cancel scopes for every timeout); an asyncio server would need a
  second event loop in another thread and a bridge between the two for every call.
- **the `ocpp` package's message layer only** (ocpp_frames.py: `unpack`, `Call`, `CallResult`,
  `CallError`, validation against the official 2.0.1 JSON schemas), not its asyncio
  `ChargePoint`: its routing, futures and handlers are asyncio. The pure parts here are
  ocpp_frames (framing, typed CALLERRORs), ocpp_station (what the station reported) and
  ocpp_profiles (what the agent set, per controller); this module is the IO shell around them.
- **security profiles**: 1 — HTTP Basic (`station_id:password`) when `[ocpp]
  basic_auth_password` is set; 2 — the same over TLS when `tls_cert`/`tls_key` are set too.
  Without a password any station id is accepted unless `[ocpp] station_id` names one.
- **one station, one call at a time**: a new connection replaces the old one (a station that
  reconnects after a network failure); outgoing calls are serialised (OCPP-J: no second CALL
  before the first is answered or timed out). The station's own requests are answered from the
  receive loop at once, never behind an outgoing call.
- **safety**: the profiles the agent set are tracked per controller and persisted; `retain`
  (after each verified access-list refresh) and `tick` (grant end) queue ClearChargingProfile for
  every profile whose grant is gone, sent at once in the background and retried every 2 s until
  the station confirms; a connecting station first gets every TxDefault/StationMax profile
  cleared, then the tracked ones set again (so neither a revoked provider's plan nor a stale one
  survives an agent or station restart). A profile above the controller's grant cap is never
  sent (verify.py refuses such commands; checked again here).
- **bounded OCPP log**: every frame in and out, JSON lines, in a rotating file
  (`log_path`, `log_bytes` × 3) and the last 256 in memory.
- `flex.arm` is not supported: OCPP 2.0.1 has no local frequency response to arm.
"""

from __future__ import annotations

import base64
import collections
import hmac
import json
import logging
import logging.handlers
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from chargepoint_agent.drivers.base import Authority, Data, DriverError, Origin
from chargepoint_agent.drivers.ocpp_frames import (
    SUBPROTOCOL,
    Call,
    CallError,
    CallResult,
    FrameRejected,
    LocalOcppError,
    call_error,
    new_call,
    parse_frame,
    validate_result,
)
from chargepoint_agent.drivers.ocpp_profiles import (
    FLEX,
    PLAN,
    ProfileBook,
    Tracked,
    flex_payload,
    plan_payload,
)
from chargepoint_agent.drivers.ocpp_station import ID_TOKEN_PREFIX, StationState, Unsupported

__all__ = ["OcppDriver", "OcppOptions"]

log = logging.getLogger("chargepoint_agent.ocpp201")

MAX_MESSAGE_BYTES = 64 * 1024
RESTORE_WAIT_S = 2.0  # after connecting, wait this long for the station's first request (a BootNotification)
RETRY_CLEAR_S = 2.0
MAX_CONNECTIONS = 8  # open WebSocket connections (the station, a reconnect overlapping its old one, strays)
MAX_STATION_ID = 48  # OCPP 2.0.1 identity: at most 48 characters


def _now() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class OcppOptions:
    listen: str  # host:port
    password: str = ""  # security profile 1 (with TLS: 2)
    station_id: str = ""  # "": any
    tls_cert: str = ""
    tls_key: str = ""
    call_timeout_s: float = 10.0
    meter_stale_s: float = 60.0  # an older reading makes meter.read ask the station (TriggerMessage)
    heartbeat_s: int = 60
    log_path: Path | None = None
    log_bytes: int = 1 << 20


class _Pending:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: CallResult | CallError | None = None


class _Link:
    """One station connection."""

    def __init__(self, ws: WebSocketConnection, station_id: str) -> None:
        self.ws, self.station_id = ws, station_id
        self.pending: dict[str, _Pending] = {}
        self.lock = trio.Lock()  # one outgoing CALL at a time
        self.first_call = trio.Event()
        self.closed = False


class OcppDriver:
    """An AsyncDriver (drivers/base.py) for one OCPP 2.0.1 station; see the module doc."""

    def __init__(self, opts: OcppOptions, clock: Callable[[], int] = _now) -> None:
        self.opts, self.clock = opts, clock
        self.state = StationState(heartbeat_s=opts.heartbeat_s)
        self.book = ProfileBook()
        self.to_clear: set[int] = set()  # station profile ids to clear (their controller is gone)
        self.port = 0
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        self._link: _Link | None = None
        self._handshakes = 0
        self._authority: tuple[bytes | None, dict[bytes, Authority]] | None = None  # the last retain's
        self._save: Callable[[bytes], None] = lambda b: None
        self._profiles = trio.Lock()  # profile changes and the restore after a connect, one at a time
        self._wake_clear = trio.Event()
        self._meter_event = trio.Event()
        self._remote_start = int(time.time()) % 1_000_000 * 1000
        self._file: logging.Logger | None = None
        if opts.log_path is not None:
            self._file = logging.getLogger(f"chargepoint_agent.ocpp201.frames.{id(self)}")
            self._file.propagate = False
            h = logging.handlers.RotatingFileHandler(opts.log_path, maxBytes=opts.log_bytes, backupCount=3)
            h.setFormatter(logging.Formatter("%(message)s"))
            self._file.addHandler(h)
            self._file.setLevel(logging.INFO)

    # ------------------------------------------------------------------ the server

    async def serve(self, saved: bytes | None, save: Callable[[bytes], None],
                    *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        self.book, self.to_clear = ProfileBook.decode(saved)
        self._save = save
        host, _, port = self.opts.listen.rpartition(":")
        ctx = None
        if self.opts.tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.opts.tls_cert, self.opts.tls_key or None)
        try:
            async with trio.open_nursery() as n:
                server = await n.start(lambda task_status: serve_websocket(
                    self._connection, host or None, int(port), ctx, handler_nursery=n,
                    max_message_size=MAX_MESSAGE_BYTES, message_queue_size=4, connect_timeout=10,
                    disconnect_timeout=2, task_status=task_status))  # fmt: skip
                self.port = server.port
                n.start_soon(self._clearer)
                log.info("OCPP 2.0.1 server on %s:%d%s", host, self.port, " (TLS)" if ctx else "")
                task_status.started(self.port)
        finally:
            if self._file is not None:
                for h in list(self._file.handlers):
                    h.close()
                    self._file.removeHandler(h)

    async def _connection(self, req: WebSocketRequest) -> None:
        if self._handshakes >= MAX_CONNECTIONS:  # one station is expected; a flood of sockets is not served
            with trio.move_on_after(2):
                await req.reject(503, body=b"busy")
            return
        self._handshakes += 1
        try:
            await self._session(req)
        except (ConnectionClosed, HandshakeError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.info("station connection ended: %r", e)  # the peer went away mid-handshake or mid-send
        finally:
            self._handshakes -= 1

    async def _session(self, req: WebSocketRequest) -> None:
        station = req.path.lstrip("/")
        if not station or len(station) > MAX_STATION_ID or "/" in station or "?" in station:
            await req.reject(404, body=b"connect to /{station_id}")
            return
        if self.opts.station_id and station != self.opts.station_id:
            await req.reject(404, body=b"unknown station id")
            return
        if SUBPROTOCOL not in req.proposed_subprotocols:
            await req.reject(400, body=b"subprotocol ocpp2.0.1 required")
            return
        if self.opts.password and not self._authorised(req, station):
            await req.reject(401, extra_headers=[(b"www-authenticate", b'Basic realm="ocpp"')], body=b"unauthorised")
            log.warning("station %r: Basic authentication failed", station)
            return
        ws = await req.accept(subprotocol=SUBPROTOCOL)
        link = _Link(ws, station)
        old, self._link = self._link, link
        if old is not None:  # the same station again (a half-open old connection): the new one wins
            self._drop(old)
            with trio.move_on_after(1):
                await old.ws.aclose()
        self._note("connect", station)
        try:
            async with trio.open_nursery() as n:
                n.start_soon(self._restore, link)
                await self._receive(link)
                n.cancel_scope.cancel()
        finally:
            self._drop(link)
            if self._link is link:
                self._link = None
            self._note("disconnect", station)

    def _authorised(self, req: WebSocketRequest, station: str) -> bool:
        auth = next((v for k, v in req.headers if k.lower() == b"authorization"), b"")
        scheme, _, cred = auth.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, _, pw = base64.b64decode(cred, validate=True).partition(b":")
        except ValueError:
            return False
        return hmac.compare_digest(user, station.encode()) & hmac.compare_digest(pw, self.opts.password.encode())

    def _drop(self, link: _Link) -> None:
        link.closed = True
        for p in link.pending.values():
            p.done.set()  # no answer: the caller sees the link closed

    async def _receive(self, link: _Link) -> None:
        while True:
            try:
                text = await link.ws.get_message()
            except ConnectionClosed:
                return
            self._frame("in", text)
            try:
                msg = parse_frame(text)
            except FrameRejected as e:
                log.info("station %s sent a bad frame: %s", link.station_id, e)
                await self._send(link, e.reply)
                continue
            if isinstance(msg, Call):
                await self._send(link, self._answer(msg))
                link.first_call.set()
                continue
            p = link.pending.get(msg.unique_id)
            if p is None:
                log.info("station %s answered an unknown or timed-out call %s", link.station_id, msg.unique_id)
                continue
            p.answer = msg
            p.done.set()

    def _answer(self, call: Call) -> str:
        try:
            payload = self.state.on_call(call.action, call.payload, self.clock())
        except Unsupported:
            return call_error(call.unique_id, "NotSupported", f"{call.action} is not supported by this controller")
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # schema-valid but nonsense: their fault
            return call_error(call.unique_id, "PropertyConstraintViolation", f"{call.action}: {e!r}")
        if call.action in ("MeterValues", "TransactionEvent"):
            self._meter_event.set()
            self._meter_event = trio.Event()
        result = CallResult(call.unique_id, payload, call.action)
        bad = validate_result(call.action, result)
        if bad is not None:  # a bug of ours: say so to the station and in our log, do not crash
            log.error("our %s answer does not validate: %s", call.action, bad)
            return call_error(call.unique_id, "InternalError", "the controller could not answer")
        return result.to_json()  # type: ignore[no-any-return]

    async def _send(self, link: _Link, text: str) -> None:
        self._frame("out", text)
        try:
            with trio.move_on_after(self.opts.call_timeout_s):
                await link.ws.send_message(text)
        except ConnectionClosed:
            pass

    # ------------------------------------------------------------------ calls to the station

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The station's answer payload to one request; DriverError for no station, a CALLERROR,
        no answer in time, or an answer that does not validate."""
        link = self._link
        if link is None:
            raise DriverError("the OCPP station is not connected")
        try:
            call = new_call(action, payload)
        except LocalOcppError as e:  # a bug of ours: refuse the command, keep running
            log.error("%s", e)
            raise DriverError(f"internal error: the {action} request does not validate") from e
        p = _Pending()
        with trio.move_on_after(self.opts.call_timeout_s) as cs:
            async with link.lock:
                if link.closed:
                    raise DriverError("the OCPP station disconnected")
                link.pending[call.unique_id] = p
                try:
                    text = call.to_json()
                    self._frame("out", text)
                    await link.ws.send_message(text)
                    await p.done.wait()
                except ConnectionClosed:
                    raise DriverError("the OCPP station disconnected") from None
                finally:
                    link.pending.pop(call.unique_id, None)
        if cs.cancelled_caught:
            raise DriverError(f"the station did not answer {action} within {self.opts.call_timeout_s:g} s")
        ans = p.answer
        if ans is None:
            raise DriverError(f"the OCPP station disconnected before answering {action}")
        if isinstance(ans, CallError):
            raise DriverError(f"{action}: the station answered {ans.error_code}: {ans.error_description}")
        bad = validate_result(action, ans)
        if bad is not None:
            raise DriverError(f"{action}: the station's answer does not validate ({bad})")
        return ans.payload  # type: ignore[no-any-return]

    async def _accepted(self, action: str, payload: dict[str, Any], ok: tuple[str, ...] = ("Accepted",)) -> dict[str, Any]:
        ans = await self._call(action, payload)
        status = ans.get("status", "")
        if status not in ok:
            info = ans.get("statusInfo", {})
            why = ": ".join(x for x in (info.get("reasonCode", ""), info.get("additionalInfo", "")) if x)
            raise DriverError(f"the station answered {action} {status}" + (f" ({why})" if why else ""))
        return ans

    # ------------------------------------------------------------------ AsyncDriver

    async def act(self, action: str, params: dict[str, Any], origin: Origin, now_ms: int) -> Data:
        if action == "charging.profile.set":
            return await self._set_plan(params["profile"], origin, now_ms)
        if action == "charging.profile.clear":
            return await self._clear_plan(params["id"], origin)
        if action == "charging.start":
            return await self._start(params.get("connector"), origin)
        if action == "charging.stop":
            return await self._stop(params.get("connector"))
        if action == "availability.set":
            ans = await self._accepted("ChangeAvailability",
                                       {"operationalStatus": "Operative" if params["available"] else "Inoperative"},
                                       ("Accepted", "Scheduled"))  # fmt: skip
            return {"available": params["available"], "status": ans["status"]}
        if action == "flex.activate":
            return await self._flex(params["limit_w"], params["duration_s"], origin, now_ms)
        if action == "flex.arm":
            raise DriverError("flex.arm is not supported by the OCPP driver: OCPP 2.0.1 has no local "
                              "frequency response to arm; use flex.activate")  # fmt: skip
        if action == "meter.read":
            return await self._meter(now_ms)
        if action == "status.read":
            return self._status()
        raise DriverError(f"{action} has no OCPP 2.0.1 mapping")

    def retain(self, owner: bytes | None, grants: dict[bytes, Authority], now_ms: int) -> None:
        self._authority = (owner, grants)
        self._undo(self.book.revoked(owner, grants, now_ms), "its controller is no longer authorised")

    def _recheck(self) -> None:
        """A profile set while its grant was being revoked (verified before, accepted after the
        refresh) is checked against the latest access list at once, not at the next refresh."""
        if self._authority is not None:
            self._undo(self.book.revoked(*self._authority, self.clock()), "revoked while it was being set")

    def tick(self, now_ms: int) -> None:
        grant_over, over = self.book.ended(now_ms)
        self._undo(grant_over, "its grant ended")
        if over:
            self._persist()

    def _undo(self, gone: list[Tracked], why: str) -> None:
        if not gone:
            return
        for t in gone:
            log.info("clearing station profile %d (%s of %s…): %s", t.station_id, t.kind, t.issuer[:8], why)
            self.to_clear.add(t.station_id)
        self._persist()
        self._wake_clear.set()

    async def _clearer(self) -> None:
        """Send the queued ClearChargingProfile requests; retry until the station confirms."""
        while True:
            with trio.move_on_after(RETRY_CLEAR_S):
                await self._wake_clear.wait()
            self._wake_clear = trio.Event()
            if not self.to_clear or self._link is None:
                continue
            async with self._profiles:
                for sid in sorted(self.to_clear):
                    if any(t.station_id == sid for t in self.book.all()):
                        self.to_clear.discard(sid)  # set again meanwhile (the same controller re-sent it)
                        continue
                    try:
                        await self._accepted("ClearChargingProfile", {"chargingProfileId": sid}, ("Accepted", "Unknown"))
                    except DriverError as e:
                        log.warning("clearing station profile %d: %s (retrying)", sid, e)
                        break
                    self.to_clear.discard(sid)
                    self._persist()

    async def _restore(self, link: _Link) -> None:
        """A station that (re)connects: clear every profile of the purposes we use, set ours again."""
        with trio.move_on_after(RESTORE_WAIT_S):
            await link.first_call.wait()
        async with self._profiles:
            if self._link is not link:
                return
            try:
                for purpose in ("TxDefaultProfile", "ChargingStationMaxProfile"):
                    await self._accepted("ClearChargingProfile", {"chargingProfileCriteria": {
                        "chargingProfilePurpose": purpose}}, ("Accepted", "Unknown"))  # fmt: skip
                self.to_clear.clear()
                self._persist()
                for t in self.book.all():
                    try:
                        await self._accepted("SetChargingProfile", t.payload)
                    except DriverError as e:  # that plan stays off; its controller can set it again
                        log.warning("restoring station profile %d: %s; dropped", t.station_id, e)
                        self.book.profiles = {k: v for k, v in self.book.profiles.items() if v is not t}
                        self._persist()
            except DriverError as e:
                log.warning("restoring profiles on station %s: %s", link.station_id, e)

    # ------------------------------------------------------------------ the actions

    async def _set_plan(self, profile: dict[str, Any], origin: Origin, now_ms: int) -> Data:
        max_w = max(w for _, w in profile["periods"])
        self._within_cap(max_w, origin)
        key = self.book.key(PLAN, origin.issuer, profile["id"])
        async with self._profiles:
            self.book.check_room(key)
            sid = self.book.station_id(key)
            payload = plan_payload(sid, profile, origin.stack_level, self.state.evse_count())
            await self._accepted("SetChargingProfile", payload)
            self.book.track(key, origin, max_w, profile["valid_to"], payload)
            self.to_clear.discard(sid)
            self._persist()
            self._recheck()
        return {"id": profile["id"], "station_profile_id": sid, "stack_level": origin.stack_level,
                "purpose": "TxDefaultProfile", "status": "Accepted"}  # fmt: skip

    async def _clear_plan(self, cmd_id: int, origin: Origin) -> Data:
        async with self._profiles:
            keys = self.book.with_id(cmd_id, None if origin.grant is None else origin.issuer)
            if not keys:
                raise DriverError(f"no profile with id {cmd_id}" + ("" if origin.grant is None else " of this issuer"))
            for k in keys:
                sid = self.book.profiles[k].station_id
                await self._accepted("ClearChargingProfile", {"chargingProfileId": sid}, ("Accepted", "Unknown"))
                self.book.pop(k)
                self._persist()
        return {"cleared": len(keys)}

    async def _flex(self, limit_w: int, duration_s: int, origin: Origin, now_ms: int) -> Data:
        self._within_cap(limit_w, origin)
        key = self.book.key(FLEX, origin.issuer, 0)
        async with self._profiles:
            if duration_s == 0:  # ends the setpoint now
                t = self.book.profiles.get(key)
                if t is not None:
                    await self._accepted("ClearChargingProfile", {"chargingProfileId": t.station_id},
                                         ("Accepted", "Unknown"))  # fmt: skip
                    self.book.pop(key)
                    self._persist()
                return {"until": now_ms, "limit_w": limit_w}
            self.book.check_room(key)
            sid = self.book.station_id(key)
            until = now_ms + duration_s * 1000
            payload = flex_payload(sid, limit_w, now_ms, until)
            await self._accepted("SetChargingProfile", payload)
            self.book.track(key, origin, limit_w, until, payload)
            self.to_clear.discard(sid)
            self._persist()
            self._recheck()
        return {"until": until, "limit_w": limit_w, "station_profile_id": sid, "purpose": "ChargingStationMaxProfile"}

    def _within_cap(self, watts: int, origin: Origin) -> None:
        if origin.max_power_w is not None and watts > origin.max_power_w:  # verify.py refused it already
            raise DriverError(f"{watts} W exceeds the grant's max_power_w {origin.max_power_w} W")

    async def _start(self, connector: int | None, origin: Origin) -> Data:
        self._remote_start = (self._remote_start + 1) % 2**31
        rid = self._remote_start
        req: dict[str, Any] = {"idToken": {"idToken": ID_TOKEN_PREFIX + origin.issuer.hex()[:16], "type": "Central"},
                               "remoteStartId": rid}  # fmt: skip
        if connector is not None:
            if not 1 <= connector <= 2**31 - 1:
                raise DriverError(f"no connector {connector}")
            req["evseId"] = connector
        ans = await self._accepted("RequestStartTransaction", req)
        out: Data = {"remote_start_id": rid, "status": "Accepted"}
        if connector is not None:
            out["connector"] = connector
        if "transactionId" in ans:
            out["session"] = ans["transactionId"]
        return out

    async def _stop(self, connector: int | None) -> Data:
        txs = [t for t in self.state.transactions.values() if connector is None or t.evse == connector]
        if not txs:
            raise DriverError("no session to stop" if connector is None else f"connector {connector} has no session")
        stopped: list[Data] = []
        for t in txs:
            await self._accepted("RequestStopTransaction", {"transactionId": t.id})
            stopped.append({"connector": t.evse, "session": t.id})
        return {"stopped": stopped}

    async def _meter(self, now_ms: int) -> Data:
        if self.clock() - self.state.meter_at() > self.opts.meter_stale_s * 1000:
            ev = self._meter_event
            try:
                await self._accepted("TriggerMessage", {"requestedMessage": "MeterValues"})
                with trio.move_on_after(self.opts.call_timeout_s):
                    await ev.wait()
            except DriverError as e:
                if not self.state.meters:
                    raise DriverError(f"the station has sent no meter values, and {e.message}") from e
        if not self.state.meters:
            raise DriverError("the station has sent no meter values")
        return self.state.meter_data(self.clock())

    def _status(self) -> Data:
        out = self.state.status_data()
        out["connected"] = self._link is not None
        if self._link is not None:
            out["station_id"] = self._link.station_id
        out["profiles"] = [{"kind": t.kind, "issuer": t.issuer, "id": t.cmd_id, "station_profile_id": t.station_id,
                            "stack_level": t.payload["chargingProfile"]["stackLevel"], "max_w": t.max_w,
                            "valid_to": t.valid_to_ms} for t in self.book.all()]  # fmt: skip
        out["pending_clear"] = sorted(self.to_clear)
        return out

    # ------------------------------------------------------------------ persistence and the log

    def _persist(self) -> None:
        self._save(self.book.encode(self.to_clear))

    def _frame(self, direction: str, text: str | bytes) -> None:
        s = text if isinstance(text, str) else text[:2048].decode("utf-8", "replace")
        entry = {"at": self.clock(), "dir": direction, "frame": s[:2048]}
        self.recent.append(entry)
        if self._file is not None:
            self._file.info(json.dumps(entry))

    def _note(self, event: str, station: str) -> None:
        entry = {"at": self.clock(), "dir": event, "frame": station}
        self.recent.append(entry)
        log.info("station %s: %s", station, event)
        if self._file is not None:
            self._file.info(json.dumps(entry))
