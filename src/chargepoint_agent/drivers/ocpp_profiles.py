"""The charging profiles the agent set on its OCPP station, per controller — no IO.

A §7 plan (`charging.profile.set`) becomes a `TxDefaultProfile` on EVSE 0 (every EVSE) at the
controller's stack level (grant priority; the owner 100), `chargingRateUnit` "W", kind Absolute,
one schedule from `valid_from` with the command's periods. A flex setpoint (`flex.activate`)
becomes a `ChargingStationMaxProfile` (a cap on the whole station, combined with the plans by
taking the minimum, as the simulator's flex does) valid until now + duration.

The station's profile ids are allocated here (two controllers may both call their plan 1); a
controller's plan with the same id replaces its previous one (same station id). Each tracked
profile remembers who set it under which grant, so `ProfileBook.revoked` can name the ones to
clear when the grant is gone, ended, lost its scope or its cap fell below the profile, or (owner
plans) when the owner changed. `encode`/`decode` make the book durable across restarts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from chargepoint_agent.drivers.base import Authority, DriverError, Origin
from chargepoint_agent.drivers.ocpp_station import iso

__all__ = ["ProfileBook", "Tracked", "FLEX_STACK_LEVEL", "plan_payload", "flex_payload", "MAX_TRACKED"]

FLEX_STACK_LEVEL = 100  # alone in ChargingStationMaxProfile: only flex setpoints use that purpose
MAX_TRACKED = 64
MAX_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: the last instant RFC 3339 can write
MAX_DURATION_S = 2**31 - 1
PLAN, FLEX = "plan", "flex"
SCOPE = {PLAN: "charging.profile", FLEX: "flex"}


@dataclass
class Tracked:
    kind: str  # PLAN or FLEX
    issuer: str  # hex
    cmd_id: int  # the command's profile id (0 for flex)
    station_id: int
    grant: str | None  # hex; None: the owner
    grant_end_ms: int | None
    max_w: int
    valid_to_ms: int
    payload: dict[str, Any]  # the SetChargingProfile request


def _check_range(*ms: int) -> None:
    if any(not 0 <= t <= MAX_MS for t in ms):
        raise DriverError("an instant beyond 9999-12-31 cannot be written in OCPP")


def plan_payload(station_id: int, profile: dict[str, Any], stack_level: int, evses: int = 1) -> dict[str, Any]:
    """A TxDefaultProfile on evseId 0. OCPP applies such a profile to each EVSE on its own, while
    a §7 plan (and the grant's cap) is for the whole charge point: each EVSE gets 1/evses of it."""
    vf, vt = profile["valid_from"], profile["valid_to"]
    _check_range(vf, vt)
    return {"evseId": 0, "chargingProfile": {
        "id": station_id, "stackLevel": stack_level, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "validFrom": iso(vf), "validTo": iso(vt),
        "chargingSchedule": [{"id": station_id, "startSchedule": iso(vf), "chargingRateUnit": "W",
                              "duration": min(MAX_DURATION_S, (vt - vf + 999) // 1000),
                              "chargingSchedulePeriod": [{"startPeriod": min(off, MAX_DURATION_S), "limit": w // max(1, evses)}
                                                         for off, w in profile["periods"]]}]}}  # fmt: skip


def flex_payload(station_id: int, limit_w: int, now_ms: int, until_ms: int) -> dict[str, Any]:
    _check_range(now_ms, until_ms)
    return {"evseId": 0, "chargingProfile": {
        "id": station_id, "stackLevel": FLEX_STACK_LEVEL, "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute", "validFrom": iso(now_ms), "validTo": iso(until_ms),
        "chargingSchedule": [{"id": station_id, "startSchedule": iso(now_ms), "chargingRateUnit": "W",
                              "duration": min(MAX_DURATION_S, (until_ms - now_ms + 999) // 1000),
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_w}]}]}}  # fmt: skip


class ProfileBook:
    def __init__(self) -> None:
        self.profiles: dict[tuple[str, str, int], Tracked] = {}  # (kind, issuer hex, cmd id)
        self.next_id = 1

    def key(self, kind: str, issuer: bytes, cmd_id: int) -> tuple[str, str, int]:
        return (kind, "" if kind == FLEX else issuer.hex(), cmd_id)  # one flex setpoint per station

    def station_id(self, key: tuple[str, str, int]) -> int:
        """The station id `key` has, or the one it would get."""
        t = self.profiles.get(key)
        return self.next_id if t is None else t.station_id

    def track(self, key: tuple[str, str, int], origin: Origin, max_w: int, valid_to_ms: int,
              payload: dict[str, Any]) -> Tracked:  # fmt: skip
        """Record a profile the station accepted (replacing the one with the same key)."""
        sid = payload["chargingProfile"]["id"]
        if key not in self.profiles:
            if len(self.profiles) >= MAX_TRACKED:
                raise DriverError(f"the agent tracks {MAX_TRACKED} profiles already; clear some first")
            self.next_id = max(self.next_id, sid + 1)
        t = Tracked(key[0], origin.issuer.hex(), key[2], sid, None if origin.grant is None else origin.grant.hex(),
                    origin.grant_end_ms, max_w, valid_to_ms, payload)  # fmt: skip
        self.profiles[key] = t
        return t

    def check_room(self, key: tuple[str, str, int]) -> None:
        if key not in self.profiles and len(self.profiles) >= MAX_TRACKED:
            raise DriverError(f"the agent tracks {MAX_TRACKED} profiles already; clear some first")

    def pop(self, key: tuple[str, str, int]) -> Tracked | None:
        return self.profiles.pop(key, None)

    def with_id(self, cmd_id: int, issuer: bytes | None) -> list[tuple[str, str, int]]:
        """Keys of plans with command id `cmd_id` (of `issuer`; None: of everyone)."""
        return [k for k in self.profiles if k[0] == PLAN and k[2] == cmd_id and (issuer is None or k[1] == issuer.hex())]

    def revoked(self, owner: bytes | None, grants: dict[bytes, Authority], now_ms: int) -> list[Tracked]:
        """Remove and return the profiles whose controller is no longer in force (module doc)."""
        out = []
        for k, t in list(self.profiles.items()):
            if t.grant is None:
                ok = owner is not None and owner.hex() == t.issuer
            else:
                a = grants.get(bytes.fromhex(t.grant))
                ok = (a is not None and a.grantee.hex() == t.issuer and now_ms < a.not_after_ms
                      and SCOPE[t.kind] in a.scopes and (a.max_power_w is None or t.max_w <= a.max_power_w))  # fmt: skip
            if not ok:
                out.append(self.profiles.pop(k))
        return out

    def ended(self, now_ms: int) -> tuple[list[Tracked], list[Tracked]]:
        """Remove and return (profiles whose grant ended: clear them, profiles that ran out by
        themselves: the station dropped them already)."""
        grant_over, over = [], []
        for k, t in list(self.profiles.items()):
            if t.valid_to_ms <= now_ms:
                over.append(self.profiles.pop(k))
            elif t.grant_end_ms is not None and t.grant_end_ms <= now_ms:
                grant_over.append(self.profiles.pop(k))
        return grant_over, over

    def all(self) -> list[Tracked]:
        return list(self.profiles.values())

    def encode(self, pending_clear: set[int]) -> bytes:
        return json.dumps({"next_id": self.next_id, "clear": sorted(pending_clear),
                           "profiles": [asdict(t) for t in self.profiles.values()]}, sort_keys=True).encode()  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes | None) -> tuple[ProfileBook, set[int]]:
        book, clear = cls(), set()
        if raw:
            d = json.loads(raw)
            book.next_id, clear = d["next_id"], set(d["clear"])
            for t in d["profiles"]:
                tr = Tracked(**t)
                book.profiles[(tr.kind, "" if tr.kind == FLEX else tr.issuer, tr.cmd_id)] = tr
        return book, clear
