"""TEST-ONLY: an OCPP 2.0.1 charging station built on the `ocpp` package's asyncio `ChargePoint`
(the station side exactly as a station vendor using that package would write it), connected with
`websockets` to an agent running the ocpp201 driver.

    python -m chargepoint_agent.testing.ocpp_station ws://127.0.0.1:9000 --id CP1 [--password PW]
        [--log FILE] [--reject-profiles] [--never-answer] [--evses N] [--meter-interval S]

It boots (BootNotification, StatusNotification per EVSE), heartbeats, answers
SetChargingProfile / ClearChargingProfile / RequestStart- and RequestStopTransaction /
ChangeAvailability / TriggerMessage, runs the transactions it was asked to start (TransactionEvent
Started/Updated/Ended, MeterValues every --meter-interval s, drawing the effective limit of its
profiles, at most 11 kW per EVSE) and writes every frame it receives as a JSON line
`{"at": ms, "t": s (float), "dir": "in", "msg": [...]}` (and `{"dir": "event", ...}` for connect/close) to --log
(default stdout), flushed at once so a test can follow it.

--reject-profiles answers every SetChargingProfile Rejected; --never-answer leaves every request
of the controller unanswered (its own requests still get their answers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import websockets
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result

EV_MAX_W = 11_000


def _iso(t: float | None = None) -> str:
    return dt.datetime.fromtimestamp(time.time() if t is None else t, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _ts(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Station(ChargePoint):  # type: ignore[misc]
    def __init__(self, sid: str, ws: Any, out: IO[str], *, evses: int, reject_profiles: bool, never_answer: bool,
                 meter_interval: float) -> None:  # fmt: skip
        super().__init__(sid, ws, response_timeout=10)
        self.out, self.evses = out, evses
        self.reject_profiles, self.never_answer, self.meter_interval = reject_profiles, never_answer, meter_interval
        self.profiles: dict[int, dict[str, Any]] = {}  # id -> chargingProfile (camelCase, as received)
        self.tx: dict[int, dict[str, Any]] = {}  # evse -> {"id", "seq", "remote"}
        self.energy_wh = {e: 0.0 for e in range(1, evses + 1)}
        self.ids = itertools.count(1)
        self.available = True

    def note(self, entry: dict[str, Any]) -> None:
        t = time.time()
        self.out.write(json.dumps({"at": int(t * 1000), "t": t, **entry}) + "\n")
        self.out.flush()

    async def route_message(self, raw_msg: str) -> None:
        try:
            msg = json.loads(raw_msg)
        except ValueError:
            msg = raw_msg
        self.note({"dir": "in", "msg": msg})
        if self.never_answer and isinstance(msg, list) and msg and msg[0] == 2:
            return  # the controller's request is dropped: it never gets an answer
        await super().route_message(raw_msg)

    # ------------------------------------------------------------------ limits

    def limits(self) -> tuple[float, float]:
        """(per-EVSE limit, station-wide cap) now, as OCPP 2.0.1 reads them: the highest-stack
        TxDefaultProfile on EVSE 0 limits each EVSE on its own; ChargingStationMaxProfile caps
        the whole station."""
        now = time.time()

        def current(p: dict[str, Any]) -> float | None:
            if "validTo" in p and _ts(p["validTo"]) <= now or "validFrom" in p and _ts(p["validFrom"]) > now:
                return None
            s = p["chargingSchedule"][0]
            start = _ts(s["startSchedule"]) if "startSchedule" in s else now
            lim = None
            for per in s["chargingSchedulePeriod"]:
                if start + per["startPeriod"] <= now:
                    lim = per["limit"]
            return lim

        if not self.available:
            return 0.0, 0.0
        tx = [(p["stackLevel"], current(p)) for p in self.profiles.values() if p["chargingProfilePurpose"] == "TxDefaultProfile"]
        tx = [t for t in tx if t[1] is not None]
        per_evse = float(EV_MAX_W) if not tx else min(max(tx)[1], EV_MAX_W)
        cap = float("inf")
        for p in self.profiles.values():
            if p["chargingProfilePurpose"] == "ChargingStationMaxProfile" and (c := current(p)) is not None:
                cap = min(cap, c)
        return per_evse, cap

    def meter_value(self, evse: int, power: float) -> dict[str, Any]:
        return {"timestamp": _iso(), "sampledValue": [
            {"value": round(self.energy_wh[evse], 1), "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}},
            {"value": round(power, 1), "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}]}  # fmt: skip

    # ------------------------------------------------------------------ the controller's requests

    @on("SetChargingProfile")
    def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        if self.reject_profiles:
            return call_result.SetChargingProfile(status="Rejected", status_info={"reason_code": "TestReject",
                                                                                  "additional_info": "--reject-profiles"})
        self.profiles[charging_profile["id"]] = self._camel_profile(charging_profile)
        return call_result.SetChargingProfile(status="Accepted")

    @staticmethod
    def _camel_profile(p: dict[str, Any]) -> dict[str, Any]:
        s = p["charging_schedule"][0]
        out = {"id": p["id"], "stackLevel": p["stack_level"], "chargingProfilePurpose": p["charging_profile_purpose"],
               "chargingSchedule": [{"chargingSchedulePeriod": [{"startPeriod": x["start_period"], "limit": x["limit"]}
                                                                for x in s["charging_schedule_period"]]}]}  # fmt: skip
        if "start_schedule" in s:
            out["chargingSchedule"][0]["startSchedule"] = s["start_schedule"]
        for k, c in (("valid_from", "validFrom"), ("valid_to", "validTo")):
            if k in p:
                out[c] = p[k]
        return out

    @on("ClearChargingProfile")
    def on_clear_profile(self, charging_profile_id: int | None = None, charging_profile_criteria: dict[str, Any] | None = None,
                         **_: Any) -> Any:  # fmt: skip
        gone = [i for i, p in self.profiles.items() if (charging_profile_id is None or i == charging_profile_id) and (
            charging_profile_criteria is None or charging_profile_criteria.get("charging_profile_purpose") in
            (None, p["chargingProfilePurpose"]))]  # fmt: skip
        for i in gone:
            del self.profiles[i]
        return call_result.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    @on("RequestStartTransaction")
    def on_start(self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any) -> Any:
        evse = evse_id or next((e for e in range(1, self.evses + 1) if e not in self.tx), None)
        if evse is None or evse in self.tx or not 1 <= evse <= self.evses or not self.available:
            return call_result.RequestStartTransaction(status="Rejected")
        tid = f"TX{next(self.ids)}"
        self.tx[evse] = {"id": tid, "seq": 0, "remote": remote_start_id, "token": id_token}
        return call_result.RequestStartTransaction(status="Accepted", transaction_id=tid)

    @after("RequestStartTransaction")
    async def after_start(self, **_: Any) -> None:
        for evse, t in list(self.tx.items()):
            if t["seq"] == 0:
                t["seq"] = 1
                await self.send_status(evse, "Occupied")
                await self.call(call.TransactionEvent(
                    event_type="Started", timestamp=_iso(), trigger_reason="RemoteStart", seq_no=0,
                    transaction_info={"transaction_id": t["id"], "charging_state": "Charging",
                                      "remote_start_id": t["remote"]},
                    evse={"id": evse, "connector_id": 1}, id_token=t["token"],
                    meter_value=[self.meter_value(evse, 0.0)]))  # fmt: skip

    @on("RequestStopTransaction")
    def on_stop(self, transaction_id: str, **_: Any) -> Any:
        known = any(t["id"] == transaction_id for t in self.tx.values())
        return call_result.RequestStopTransaction(status="Accepted" if known else "Rejected")

    @after("RequestStopTransaction")
    async def after_stop(self, transaction_id: str, **_: Any) -> None:
        for evse, t in list(self.tx.items()):
            if t["id"] == transaction_id:
                del self.tx[evse]
                await self.call(call.TransactionEvent(
                    event_type="Ended", timestamp=_iso(), trigger_reason="RemoteStop", seq_no=t["seq"],
                    transaction_info={"transaction_id": t["id"], "stopped_reason": "Remote"},
                    evse={"id": evse, "connector_id": 1}, meter_value=[self.meter_value(evse, 0.0)]))  # fmt: skip
                await self.send_status(evse, "Available")

    @on("ChangeAvailability")
    def on_availability(self, operational_status: str, **_: Any) -> Any:
        self.available = operational_status == "Operative"
        return call_result.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")
    def on_trigger(self, requested_message: str, **_: Any) -> Any:
        ok = requested_message in ("MeterValues", "StatusNotification", "Heartbeat")
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    async def after_trigger(self, requested_message: str, **_: Any) -> None:
        if requested_message == "MeterValues":
            await self.send_meters(0.0)
        elif requested_message == "StatusNotification":
            for e in range(1, self.evses + 1):
                await self.send_status(e, "Occupied" if e in self.tx else "Available")
        elif requested_message == "Heartbeat":
            await self.call(call.Heartbeat())

    # ------------------------------------------------------------------ the station's own messages

    async def send_status(self, evse: int, status: str) -> None:
        await self.call(call.StatusNotification(timestamp=_iso(), connector_status=status, evse_id=evse, connector_id=1))

    async def send_meters(self, dt_s: float) -> None:
        per_evse, cap = self.limits()
        each = min(per_evse, cap / max(1, len(self.tx)))  # the station cap is shared by the sessions
        for evse in range(1, self.evses + 1):
            power = each if evse in self.tx else 0.0
            self.energy_wh[evse] += power * dt_s / 3600
            await self.call(call.MeterValues(evse_id=evse, meter_value=[self.meter_value(evse, power)]))

    async def boot(self) -> None:
        await self.call(call.BootNotification(charging_station={"model": "ADS-OCPP-TEST", "vendor_name": "ADS"},
                                              reason="PowerUp"))  # fmt: skip
        for e in range(1, self.evses + 1):
            await self.send_status(e, "Available")

    async def run_meters(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.meter_interval)
            now = time.monotonic()
            if self.tx:
                await self.send_meters(now - last)
            last = now

    async def heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.call(call.Heartbeat())


async def main(args: argparse.Namespace) -> None:
    out: IO[str] = sys.stdout if args.log in (None, "-") else open(args.log, "a", buffering=1)  # noqa: SIM115
    headers = {}
    if args.password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{args.id}:{args.password}".encode()).decode()
    url = args.url.rstrip("/") + "/" + args.id
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"], additional_headers=headers, open_timeout=10) as ws:
        st = Station(args.id, ws, out, evses=args.evses, reject_profiles=args.reject_profiles,
                     never_answer=args.never_answer, meter_interval=args.meter_interval)  # fmt: skip
        st.note({"dir": "event", "event": "connected", "subprotocol": ws.subprotocol})
        tasks = [asyncio.create_task(st.start())]
        try:
            await st.boot()
            tasks += [asyncio.create_task(st.run_meters()), asyncio.create_task(st.heartbeat(args.heartbeat))]
            await tasks[0]
        except websockets.ConnectionClosed:
            pass
        finally:
            st.note({"dir": "event", "event": "closed"})
            for t in tasks:
                t.cancel()


class StationProcess:
    """The station in its own process (for tests, the bench and the devnet): start, read what it
    received, stop."""

    def __init__(self, url: str, log: Path, *args: str, station_id: str = "CP1", password: str = "") -> None:
        self.url, self.log, self.station_id = url, log, station_id
        self.args = [*args, "--id", station_id] + (["--password", password] if password else [])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StationProcess:
        self.log.touch()
        err = open(self.log.with_suffix(".stderr"), "ab")  # noqa: SIM115 — the child keeps it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "chargepoint_agent.testing.ocpp_station", self.url,
                                      "--log", str(self.log), *self.args], stdout=subprocess.DEVNULL, stderr=err,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
        err.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
        return out

    def calls(self, action: str | None = None) -> list[dict[str, Any]]:
        """The payloads of the requests it received (of `action`), oldest first."""
        return [e["msg"][3] for e in self.entries() if e["dir"] == "in" and isinstance(e["msg"], list)
                and len(e["msg"]) == 4 and e["msg"][0] == 2 and (action is None or e["msg"][2] == action)]  # fmt: skip

    def connected(self) -> int:
        return sum(1 for e in self.entries() if e.get("event") == "connected")


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="the agent's OCPP endpoint, e.g. ws://127.0.0.1:9000 (the station id is appended)")
    p.add_argument("--id", default="CP1", help="the station id (the URL's last path segment)")
    p.add_argument("--password", default="", help="HTTP Basic password (OCPP security profile 1)")
    p.add_argument("--log", default=None, help="JSON lines of every received frame (default stdout)")
    p.add_argument("--reject-profiles", action="store_true", help="answer SetChargingProfile Rejected")
    p.add_argument("--never-answer", action="store_true", help="never answer the controller's requests")
    p.add_argument("--evses", type=int, default=1)
    p.add_argument("--meter-interval", type=float, default=1.0, help="seconds between MeterValues while charging")
    p.add_argument("--heartbeat", type=float, default=60.0, help="seconds between Heartbeats")
    args = p.parse_args()
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
    except (OSError, websockets.InvalidHandshake, websockets.InvalidStatus) as e:
        print(f"ocpp_station: cannot connect: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
