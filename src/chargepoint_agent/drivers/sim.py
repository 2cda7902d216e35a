"""A simulated charge point implementing `Driver`: sessions, OCPP 2.0.1-style limit composition,
flex setpoints, an armed local frequency response, and a meter that integrates power over time.

Sans-IO: the clock is the `now_ms` of each call. An earlier `now_ms` than one already seen is
taken as the latest one seen (the simulation never runs backwards). Between calls the
simulation advances through every instant at which a limit changes by itself (a period start,
an expiry, the end of a hold), so the energy does not depend on how often `tick` is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from chargepoint_agent.drivers.base import ACTIONS, Data, DriverError, Value
from chargepoint_agent.drivers.schedule import (
    MAX_LIMIT_W,
    MAX_PROFILE_ID,
    Profile,
    parse_profile,
    share,
    uint_param,
    winner,
)

WMS_PER_WH = 3_600_000  # energy is kept exact, in W·ms
MAX_FLEX_DURATION_S = 86_400
MAX_HOLD_S = 3_600
# Plausible grid frequencies in mHz (50 Hz and 60 Hz grids); outside means a unit mistake.
MIN_ARM_MHZ, MAX_ARM_MHZ = 40_000, 70_000
MAX_MEASURED_MHZ = 100_000


@dataclass(slots=True)
class _Session:
    id: int
    started_at: int
    energy_wms: int = 0


@dataclass(slots=True)
class _Connector:
    number: int
    ev_demand_w: int
    session: _Session | None = None
    power_w: int = 0
    energy_wms: int = 0  # the connector's register, over all sessions


@dataclass(slots=True)
class _Setpoint:
    limit_w: int
    until_ms: int


@dataclass(slots=True)
class _Arming:
    below_mhz: int
    limit_w: int
    hold_ms: int
    until_ms: int
    triggered_at: int | None = None  # the measurement that started the response in progress
    low: bool = False  # the latest measurement since arming was below the threshold

    def release_at(self) -> int | None:
        """When a response in progress ends by itself, once the frequency has recovered."""
        if self.triggered_at is None or self.low:
            return None
        return self.triggered_at + self.hold_ms


class SimCharger:
    """A charge point with `connectors` EVSEs sharing `max_power_w`; each plugged EV draws up to
    `ev_max_w` (change it per connector with `set_ev_demand`)."""

    def __init__(self, connectors: int = 1, max_power_w: int = 22_000, ev_max_w: int = 11_000,
                 max_profiles: int = 32, max_profiles_per_source: int = 8) -> None:  # fmt: skip
        if connectors < 1 or max_power_w < 0 or ev_max_w < 0:
            raise ValueError("a charger needs a connector and non-negative powers")
        self.max_power_w = max_power_w
        self.max_profiles = max_profiles
        # one issuer alone cannot fill the store and lock the others out
        self.max_profiles_per_source = max_profiles_per_source
        self._connectors = [_Connector(n, ev_max_w) for n in range(1, connectors + 1)]
        self._profiles: dict[tuple[bytes, int], Profile] = {}
        self._setpoint: _Setpoint | None = None
        self._arming: _Arming | None = None
        self._available = True
        self._now: int | None = None
        self._seq = 0
        self._next_session = 1
        self._frequency_mhz: int | None = None
        self._failures: set[str] = set()
        self._effective_w = max_power_w

    # ---- test hooks -------------------------------------------------------------------------

    def fail_next(self, action: str) -> None:
        """The next call of `action` (a method name or a §7 action) raises DriverError, no effect."""
        name = ACTIONS.get(action, action)
        if name not in set(ACTIONS.values()) | {"tick", "frequency_input"}:
            raise ValueError(f"unknown driver action {action!r}")
        self._failures.add(name)

    def set_ev_demand(self, connector: int, demand_w: int, now_ms: int) -> None:
        """The EV on `connector` now asks for at most `demand_w` (a full battery asks for 0)."""
        self._advance(now_ms)
        self._connector(connector).ev_demand_w = uint_param(demand_w, "EV demand", MAX_LIMIT_W)
        self._recompute()

    # ---- Driver -----------------------------------------------------------------------------

    def start(self, connector: int | None, now_ms: int) -> Data:
        self._injected("start")
        self._advance(now_ms)
        if not self._available:
            raise DriverError("the charge point is unavailable: no new session")
        if connector is None:
            free = [c for c in self._connectors if c.session is None]
            if not free:
                raise DriverError("every connector has a session already")
            c = free[0]
        else:
            c = self._connector(connector)
            if c.session is not None:
                raise DriverError(f"connector {c.number} has a session already ({c.session.id})")
        c.session = _Session(self._next_session, self._clock())
        self._next_session += 1
        self._recompute()
        return {"connector": c.number, "session": c.session.id, "power_w": c.power_w}

    def stop(self, connector: int | None, now_ms: int) -> Data:
        self._injected("stop")
        self._advance(now_ms)
        if connector is None:
            targets = [c for c in self._connectors if c.session is not None]
            if not targets:
                raise DriverError("no session to stop")
        else:
            c = self._connector(connector)
            if c.session is None:
                raise DriverError(f"connector {c.number} has no session")
            targets = [c]
        stopped: list[Value] = []
        for c in targets:
            assert c.session is not None
            s = c.session
            stopped.append({"connector": c.number, "session": s.id, "energy_wh": s.energy_wms // WMS_PER_WH,
                            "duration_s": (self._clock() - s.started_at) // 1000})  # fmt: skip
            c.session = None
        self._recompute()
        return {"stopped": stopped}

    def set_profile(self, profile: dict[str, object], stack_level: int, source: bytes, now_ms: int) -> Data:
        self._injected("set_profile")
        self._advance(now_ms)
        p = parse_profile(profile, stack_level, source, self._seq + 1, self._clock())
        key = (p.source, p.id)
        if key not in self._profiles:
            if len(self._profiles) >= self.max_profiles:
                raise DriverError(f"the charge point holds {self.max_profiles} profiles already")
            if sum(1 for s, _ in self._profiles if s == p.source) >= self.max_profiles_per_source:
                raise DriverError(f"this issuer holds {self.max_profiles_per_source} profiles already")
        self._seq += 1
        self._profiles[key] = p
        self._recompute()
        in_force = winner(list(self._profiles.values()), self._clock()) is p
        return {"id": p.id, "stack_level": p.stack_level, "in_force": in_force, "limit_w": self._effective_w}

    def clear_profile(self, profile_id: int, source: bytes, owner: bool, now_ms: int) -> Data:
        self._injected("clear_profile")
        pid = uint_param(profile_id, "profile id", MAX_PROFILE_ID)
        self._advance(now_ms)
        keys = [k for k in self._profiles if k[1] == pid and (owner or k[0] == bytes(source))]
        if not keys:
            if any(k[1] == pid for k in self._profiles):
                raise DriverError(
                    f"profile {pid} was set by another issuer: only it or the owner may clear it"
                )
            raise DriverError(f"no profile with id {pid}")
        for k in keys:
            del self._profiles[k]
        self._recompute()
        return {"cleared": len(keys), "limit_w": self._effective_w}

    def flex_activate(self, limit_w: int, duration_s: int, now_ms: int) -> Data:
        self._injected("flex_activate")
        limit = uint_param(limit_w, "limit_w", MAX_LIMIT_W)
        duration = uint_param(duration_s, "duration_s", MAX_FLEX_DURATION_S)
        self._advance(now_ms)
        now = self._clock()
        # a new setpoint replaces the previous one; duration 0 ends it (flex is an exclusive scope)
        self._setpoint = _Setpoint(limit, now + duration * 1000) if duration else None
        self._recompute()
        return {"until": now + duration * 1000, "limit_w": self._effective_w}

    def flex_arm(self, below_mhz: int, limit_w: int, hold_s: int, until_ms: int, now_ms: int) -> Data:
        self._injected("flex_arm")
        below = uint_param(below_mhz, "below_mhz", MAX_ARM_MHZ)
        if below < MIN_ARM_MHZ:
            raise DriverError(
                f"below_mhz is in mHz ({MIN_ARM_MHZ}..{MAX_ARM_MHZ}; 49.8 Hz is 49800), got {below}"
            )
        limit = uint_param(limit_w, "limit_w", MAX_LIMIT_W)
        hold = uint_param(hold_s, "hold_s", MAX_HOLD_S)
        until = uint_param(until_ms, "until", 2**63 - 1)
        self._advance(now_ms)
        if until <= self._clock():
            raise DriverError(f"until {until} is not after now {self._clock()}")
        # a new arming replaces the previous one, a response in progress included
        self._arming = _Arming(below, limit, hold * 1000, until)
        self._recompute()
        return {"below_mhz": below, "limit_w": limit, "hold_s": hold, "until": until}

    def meter(self, now_ms: int) -> Data:
        self._injected("meter")
        self._advance(now_ms)
        conns: list[Value] = [{"connector": c.number, "energy_wh": c.energy_wms // WMS_PER_WH, "power_w": c.power_w}
                              for c in self._connectors]  # fmt: skip
        return {"at": self._clock(), "energy_wh": self.energy_wms() // WMS_PER_WH,
                "power_w": self.power_w(), "connectors": conns}  # fmt: skip

    def status(self, now_ms: int) -> Data:
        self._injected("status")
        self._advance(now_ms)
        now = self._clock()
        profile_w, flex_w = self._profile_limit(), self._flex_limit()
        limits: dict[str, Value] = {"hardware_w": self.max_power_w}
        if profile_w is not None:
            limits["profile_w"] = profile_w
        if flex_w is not None:
            limits["flex_w"] = flex_w
        top = winner(list(self._profiles.values()), now)
        profiles: list[Value] = []
        for p in sorted(self._profiles.values(), key=lambda p: (-p.stack_level, -p.seq)):
            entry: dict[str, Value] = {"id": p.id, "source": p.source, "stack_level": p.stack_level,
                                       "valid_from": p.valid_from, "valid_to": p.valid_to, "in_force": p is top}  # fmt: skip
            if p.valid_at(now):
                entry["limit_w"] = p.limit_at(now)
            profiles.append(entry)
        connectors: list[Value] = []
        sessions: list[Value] = []
        for c in self._connectors:
            ce: dict[str, Value] = {"connector": c.number, "power_w": c.power_w, "ev_demand_w": c.ev_demand_w}
            if c.session is not None:
                ce["session"] = c.session.id
                sessions.append({"session": c.session.id, "connector": c.number, "started_at": c.session.started_at,
                                 "energy_wh": c.session.energy_wms // WMS_PER_WH, "power_w": c.power_w})  # fmt: skip
            connectors.append(ce)
        flex: dict[str, Value] = {}
        if self._setpoint is not None:
            flex["setpoint"] = {"limit_w": self._setpoint.limit_w, "until": self._setpoint.until_ms}
        if self._arming is not None:
            a = self._arming
            flex["armed"] = {"below_mhz": a.below_mhz, "limit_w": a.limit_w, "hold_s": a.hold_ms // 1000,
                             "until": a.until_ms, "responding": a.triggered_at is not None}  # fmt: skip
        out: Data = {"at": now, "available": self._available, "limit_w": self._effective_w,
                     "power_w": self.power_w(), "limits": limits, "connectors": connectors, "sessions": sessions,
                     "profiles": profiles, "flex": flex}  # fmt: skip
        if self._frequency_mhz is not None:
            out["frequency_mhz"] = self._frequency_mhz
        return out

    def set_available(self, available: bool, now_ms: int) -> Data:
        self._injected("set_available")
        if not isinstance(available, bool):
            raise DriverError(f"available must be true or false, got {available!r}")
        self._advance(now_ms)
        # sessions stay open when made unavailable, suspended at 0 W (OCPP: SuspendedEVSE)
        self._available = available
        self._recompute()
        return {"available": available, "limit_w": self._effective_w}

    def tick(self, now_ms: int) -> None:
        self._injected("tick")
        self._advance(now_ms)

    def frequency_input(self, mhz: int, now_ms: int) -> None:
        self._injected("frequency_input")
        f = uint_param(mhz, "frequency (mHz)", MAX_MEASURED_MHZ)
        self._advance(now_ms)
        self._frequency_mhz = f
        a = self._arming
        if a is not None:
            a.low = f < a.below_mhz
            if a.low and a.triggered_at is None:
                a.triggered_at = self._clock()
            self._expire()
        # the cap applies at this instant: local reaction, no command path
        self._recompute()

    def next_deadline(self) -> int | None:
        return min(self._changes(), default=None)

    # ---- readings for tests and invariants --------------------------------------------------

    def power_w(self) -> int:
        return sum(c.power_w for c in self._connectors)

    def energy_wms(self) -> int:
        return sum(c.energy_wms for c in self._connectors)

    def effective_limit_w(self) -> int:
        return self._effective_w

    # ---- simulation -------------------------------------------------------------------------

    def _injected(self, name: str) -> None:
        if name in self._failures:
            self._failures.discard(name)
            raise DriverError(f"injected failure of {name}")

    def _clock(self) -> int:
        assert self._now is not None
        return self._now

    def _connector(self, number: int) -> _Connector:
        if (
            not isinstance(number, int)
            or isinstance(number, bool)
            or not 1 <= number <= len(self._connectors)
        ):
            raise DriverError(f"no connector {number!r}: this charge point has 1..{len(self._connectors)}")
        return self._connectors[number - 1]

    def _changes(self) -> list[int]:
        """Instants after now at which a limit changes without a call."""
        if self._now is None:
            return []
        now = self._now
        out = [t for p in self._profiles.values() for t in p.changes_after(now)]
        if self._setpoint is not None:
            out.append(self._setpoint.until_ms)
        if self._arming is not None:
            out.append(self._arming.until_ms)
            release = self._arming.release_at()
            if release is not None:
                out.append(release)
        return [t for t in out if t > now]

    def _advance(self, now_ms: int) -> None:
        now_ms = uint_param(now_ms, "now_ms", 2**63 - 1)
        if self._now is None:
            self._now = now_ms
            self._expire()
            self._recompute()
            return
        while self._now < now_ms:
            # integrate piecewise: power is constant until the next change or now_ms
            step_to = min([t for t in self._changes() if t < now_ms], default=now_ms)
            dt = step_to - self._now
            for c in self._connectors:
                c.energy_wms += c.power_w * dt
                if c.session is not None:
                    c.session.energy_wms += c.power_w * dt
            self._now = step_to
            self._expire()
            self._recompute()

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, p in self._profiles.items() if p.valid_to <= now]:
            del self._profiles[key]
        if self._setpoint is not None and self._setpoint.until_ms <= now:
            self._setpoint = None
        a = self._arming
        if a is not None:
            release = a.release_at()
            if a.until_ms <= now:
                # the authorisation ends at `until`, a response in progress with it
                self._arming = None
            elif release is not None and release <= now:
                a.triggered_at = None  # re-arms for the next dip

    def _profile_limit(self) -> int | None:
        top = winner(list(self._profiles.values()), self._clock())
        return None if top is None else top.limit_at(self._clock())

    def _flex_limit(self) -> int | None:
        caps = []
        if self._setpoint is not None:
            caps.append(self._setpoint.limit_w)
        if self._arming is not None and self._arming.triggered_at is not None:
            caps.append(self._arming.limit_w)
        return min(caps, default=None)

    def _recompute(self) -> None:
        # across purposes the minimum applies (OCPP composite schedule), under the hardware cap
        caps = [self.max_power_w if self._available else 0]
        caps += [w for w in (self._profile_limit(), self._flex_limit()) if w is not None]
        self._effective_w = min(caps)
        active = [c for c in self._connectors if c.session is not None]
        for c in self._connectors:
            c.power_w = 0
        for c, w in zip(active, share(self._effective_w, [c.ev_demand_w for c in active])):
            c.power_w = w
