"""What the agent knows of its OCPP 2.0.1 station, from the messages the station sends — no IO.

`StationState.on_call(action, payload, now_ms)` takes a station-initiated request whose payload
already validated against its 2.0.1 schema (ocpp_frames.parse_frame) and returns the response
payload: BootNotification, Heartbeat, StatusNotification, TransactionEvent, MeterValues and
Authorize update the state; a few notifications are only acknowledged; any other action raises
`Unsupported` (the shell answers CALLERROR NotSupported).

Meter readings: `Energy.Active.Import.Register` (the default measurand) and
`Power.Active.Import`, per EVSE, converted to Wh and W (kWh/kW and `multiplier` honoured; phase
values are ignored, totals only). EVSE 0 is the station's main meter when the station reports it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from chargepoint_agent.drivers.base import Data

__all__ = ["StationState", "Unsupported", "iso", "parse_time", "ID_TOKEN_PREFIX"]

ID_TOKEN_PREFIX = "ADS"  # the idToken of a session the agent started: ADS + 16 hex of the issuer
ACKNOWLEDGED = frozenset({"SecurityEventNotification", "NotifyEvent", "NotifyReport", "FirmwareStatusNotification",
                          "LogStatusNotification", "ReportChargingProfiles", "NotifyChargingLimit",
                          "ClearedChargingLimit", "NotifyMonitoringReport"})  # fmt: skip
MAX_ENDED = 16  # ended transactions kept for status.read
MAX_ENTRIES = 64  # EVSEs, connectors, active transactions: a station that invents more forgets the oldest


class Unsupported(Exception):
    """A valid OCPP 2.0.1 request this controller does not handle."""


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(s: Any, default: int) -> int:
    try:
        t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return int(t.timestamp() * 1000)
    except (ValueError, OverflowError):
        return default


def _bounded_put(d: dict[Any, Any], k: Any, v: Any) -> None:
    d[k] = v
    while len(d) > MAX_ENTRIES:
        del d[next(iter(d))]


@dataclass
class Reading:
    at: int = 0
    energy_wh: int | None = None
    power_w: int | None = None


@dataclass
class Transaction:
    id: str
    evse: int
    connector: int
    started_at: int
    state: str = ""  # chargingState: Charging, EVConnected, SuspendedEV, SuspendedEVSE, Idle
    remote_start_id: int | None = None
    ended_at: int | None = None
    stopped_reason: str = ""


@dataclass
class StationState:
    heartbeat_s: int = 60
    vendor: str = ""
    model: str = ""
    booted_at: int | None = None
    last_seen: int = 0
    connectors: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)  # (evse, conn) -> status, at
    meters: dict[int, Reading] = field(default_factory=dict)  # evse -> latest reading
    transactions: dict[str, Transaction] = field(default_factory=dict)  # active
    ended: list[Transaction] = field(default_factory=list)

    def evse_count(self) -> int:
        """EVSEs the station has reported (StatusNotification, meter values), at least 1."""
        return max(1, len({e for e, _ in self.connectors if e > 0} | {e for e in self.meters if e > 0}))

    def on_call(self, action: str, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.last_seen = now_ms
        if action == "BootNotification":
            cs = p["chargingStation"]
            self.vendor, self.model, self.booted_at = cs["vendorName"], cs["model"], now_ms
            return {"currentTime": iso(now_ms), "interval": self.heartbeat_s, "status": "Accepted"}
        if action == "Heartbeat":
            return {"currentTime": iso(now_ms)}
        if action == "StatusNotification":
            at = parse_time(p["timestamp"], now_ms)
            _bounded_put(self.connectors, (p["evseId"], p["connectorId"]), (p["connectorStatus"], at))
            return {}
        if action == "MeterValues":
            self._meter(p["evseId"], p["meterValue"], now_ms)
            return {}
        if action == "TransactionEvent":
            self._transaction(p, now_ms)
            return {}
        if action == "Authorize":
            tok = p["idToken"]
            ours = tok["type"] == "Central" and tok["idToken"].startswith(ID_TOKEN_PREFIX)
            return {"idTokenInfo": {"status": "Accepted" if ours else "Unknown"}}
        if action in ACKNOWLEDGED:
            return {}
        raise Unsupported(action)

    # ------------------------------------------------------------------ updates

    def _transaction(self, p: dict[str, Any], now_ms: int) -> None:
        info = p["transactionInfo"]
        tid = info["transactionId"]
        evse = p.get("evse", {})
        tx = self.transactions.get(tid)
        if tx is None:
            if p["eventType"] == "Ended" and any(t.id == tid for t in self.ended):
                return  # a repeated Ended
            tx = Transaction(tid, evse.get("id", 0), evse.get("connectorId", 1), parse_time(p["timestamp"], now_ms))
            _bounded_put(self.transactions, tid, tx)
        if "id" in evse:
            tx.evse, tx.connector = evse["id"], evse.get("connectorId", tx.connector)
        tx.state = info.get("chargingState", tx.state)
        if "remoteStartId" in info:
            tx.remote_start_id = info["remoteStartId"]
        if "meterValue" in p:
            self._meter(tx.evse, p["meterValue"], now_ms)
        if p["eventType"] == "Ended":
            tx.ended_at, tx.stopped_reason = parse_time(p["timestamp"], now_ms), info.get("stoppedReason", "")
            self.transactions.pop(tid, None)
            self.ended = [*self.ended, tx][-MAX_ENDED:]

    def _meter(self, evse: int, values: list[dict[str, Any]], now_ms: int) -> None:
        r = self.meters.get(evse) or Reading()
        _bounded_put(self.meters, evse, r)
        for mv in values:
            at = parse_time(mv["timestamp"], now_ms)
            if at < r.at:
                continue  # an older sample (a queued one sent after reconnecting) does not replace a newer
            for sv in mv["sampledValue"]:
                if "phase" in sv:
                    continue
                measurand = sv.get("measurand", "Energy.Active.Import.Register")
                unit = sv.get("unitOfMeasure", {})
                scale = 10.0 ** unit.get("multiplier", 0)
                name = unit.get("unit", "Wh" if measurand.startswith("Energy") else "W")
                scale *= 1000 if name in ("kWh", "kW") else 1
                value = int(round(float(sv["value"]) * scale))
                if measurand == "Energy.Active.Import.Register" and name in ("Wh", "kWh"):
                    r.energy_wh, r.at = value, at
                elif measurand == "Power.Active.Import" and name in ("W", "kW"):
                    r.power_w, r.at = value, at

    # ------------------------------------------------------------------ views

    def meter_at(self) -> int:
        """The instant of the newest reading (0: none yet)."""
        return max((r.at for r in self.meters.values()), default=0)

    def meter_data(self, now_ms: int) -> Data:
        evses = sorted(e for e in self.meters if e > 0)
        conns: list[Data] = []
        for e in evses:
            r = self.meters[e]
            c: Data = {"connector": e, "at": r.at}
            if r.energy_wh is not None:
                c["energy_wh"] = r.energy_wh
            if r.power_w is not None:
                c["power_w"] = r.power_w
            conns.append(c)
        main = self.meters.get(0)
        energy = main.energy_wh if main is not None and main.energy_wh is not None else \
            sum(self.meters[e].energy_wh or 0 for e in evses)  # fmt: skip
        power = main.power_w if main is not None and main.power_w is not None else \
            sum(self.meters[e].power_w or 0 for e in evses)  # fmt: skip
        at = self.meter_at()
        return {"at": at, "age_ms": max(0, now_ms - at), "energy_wh": energy, "power_w": power, "connectors": conns}

    def sessions(self) -> list[Data]:
        return [{"connector": t.evse, "session": t.id, "started_at": t.started_at, "state": t.state}
                for t in self.transactions.values()]  # fmt: skip

    def status_data(self) -> Data:
        out: Data = {
            "vendor": self.vendor,
            "model": self.model,
            "connectors": [{"connector": e, "connector_id": c, "status": s, "at": at}
                           for (e, c), (s, at) in sorted(self.connectors.items())],
            "sessions": self.sessions(),
            "ended": [{"connector": t.evse, "session": t.id, "stopped_reason": t.stopped_reason}
                      for t in self.ended[-4:]],
        }  # fmt: skip
        statuses = {s for s, _ in self.connectors.values()}
        out["available"] = bool(statuses) and statuses != {"Unavailable"}
        return out
