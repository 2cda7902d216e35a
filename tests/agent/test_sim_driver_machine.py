"""The simulated charger under random sequences of driver calls and clock steps: only DriverError
escapes, power stays within the limits, energy never decreases, plans compose as a reference
model says; planted bugs show the machine can fail."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_sim_driver import CALLS, HOUR, T0, A, B, assert_receipt_data

from chargepoint_agent.drivers import OWNER_STACK_LEVEL, DriverError, SimCharger, sim

sources = st.sampled_from([A, B, b"\xcc" * 32])
# few levels, so that equal stack levels (decided by recency) are common
levels = st.integers(0, 3) | st.integers(0, OWNER_STACK_LEVEL)


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` nine times in ten: refusals are drawn, but most calls get through and build state."""
    return st.integers(0, 9).flatmap(lambda i: invalid if i == 0 else valid)


powers = mostly(st.integers(0, 40_000), st.just(-1))
connectors = mostly(st.none() | st.integers(1, 3), st.sampled_from([-1, 0, 4]))
# mostly well-formed schedules, so that profiles get installed and compete, not only refused
valid_periods = st.lists(st.integers(1, 10_000), unique=True, max_size=5).flatmap(
    lambda offsets: st.tuples(*[st.tuples(st.just(o), st.integers(0, 40_000)) for o in [0, *sorted(offsets)]])
)


class DriverMachine(RuleBasedStateMachine):
    """Random driver calls and clock steps: only DriverError ever escapes, and the physics hold."""

    def __init__(self) -> None:
        super().__init__()
        self.d = SimCharger(connectors=3, max_power_w=22_000, max_profiles=12, max_profiles_per_source=5)
        self.now = T0
        self.d.tick(self.now)
        self.energy = 0
        # a reference model of the installed plans: (issuer, id) -> (stack level, order, raw profile)
        self.plans: dict[tuple[bytes, int], tuple[int, int, dict[str, Any]]] = {}
        self.order = 0

    def call(self, f: Any, *args: Any) -> bool:
        try:
            data = f(*args)
        except DriverError as e:
            assert e.message
            return False
        if data is not None:
            assert_receipt_data(data)
        return True

    def plan(self, raw: dict[str, Any], level: int, src: bytes) -> None:
        if self.call(self.d.set_profile, raw, level, src, self.now):
            self.order += 1
            self.plans[(src, raw["id"])] = (level, self.order, raw)

    def clear(self, pid: int, src: bytes, owner: bool) -> None:
        if self.call(self.d.clear_profile, pid, src, owner, self.now):
            for key in [k for k in self.plans if k[1] == pid and (owner or k[0] == src)]:
                del self.plans[key]

    @initialize(sessions=st.integers(0, 3), plans=st.lists(st.tuples(sources, st.integers(0, 6), levels,
                st.integers(1, 4 * HOUR), valid_periods), max_size=8))  # fmt: skip
    def some_sessions_and_plans(self, sessions: int, plans: list[Any]) -> None:
        for c in range(1, sessions + 1):
            self.d.start(c, self.now)
        for src, pid, level, length, periods in plans:
            raw = {"id": pid, "valid_from": self.now, "valid_to": self.now + length,
                   "periods": [list(p) for p in periods]}  # fmt: skip
            self.plan(raw, level, src)

    @rule(dt=mostly(st.integers(0, 300_000), st.integers(HOUR, 4 * HOUR)))
    def tick(self, dt: int) -> None:
        self.now += dt
        self.call(self.d.tick, self.now)

    @rule(back=st.integers(1, 60_000))
    def clock_step_back(self, back: int) -> None:
        self.call(self.d.tick, self.now - back)

    @rule(c=connectors)
    def start(self, c: int | None) -> None:
        self.call(self.d.start, c, self.now)

    @rule(c=connectors)
    def stop(self, c: int | None) -> None:
        self.call(self.d.stop, c, self.now)

    @rule(pid=mostly(st.integers(0, 6), st.sampled_from([-1, 2**31])), src=sources,
          level=mostly(levels, st.sampled_from([-1, OWNER_STACK_LEVEL + 1])),
          start=st.integers(-HOUR, HOUR), length=mostly(st.integers(1, 3 * HOUR), st.integers(-10, 0)),
          periods=mostly(valid_periods, st.lists(st.tuples(st.integers(-1, 10_000), powers), max_size=26)))  # fmt: skip
    def set_profile(self, pid: int, level: int, src: bytes, start: int, length: int, periods: Any) -> None:
        raw = {"id": pid, "valid_from": self.now + start, "valid_to": self.now + start + length,
               "periods": [list(p) for p in periods]}  # fmt: skip
        self.plan(raw, level, src)

    @rule(pid=mostly(st.integers(0, 6), st.just(-1)), src=sources, owner=st.booleans())
    def clear_profile(self, pid: int, src: bytes, owner: bool) -> None:
        self.clear(pid, src, owner)

    @precondition(lambda self: bool(self.d._profiles))
    @rule(i=st.integers(0, 31), other=st.booleans(), owner=st.booleans())
    def clear_existing_profile(self, i: int, other: bool, owner: bool) -> None:
        src, pid = sorted(self.d._profiles)[i % len(self.d._profiles)]
        self.clear(pid, b"\x01" * 32 if other else src, owner)

    @rule(limit=powers, duration=mostly(st.integers(0, 3_600), st.sampled_from([-1, 86_401])))
    def flex_activate(self, limit: int, duration: int) -> None:
        self.call(self.d.flex_activate, limit, duration, self.now)

    @rule(below=mostly(st.integers(49_000, 50_500), st.sampled_from([50, 39_999, 70_001, 49_800_000])), limit=powers,
          hold=mostly(st.integers(0, 120), st.sampled_from([-1, 3_601])), until=mostly(st.integers(1, 3 * HOUR), st.just(0)))  # fmt: skip
    def flex_arm(self, below: int, limit: int, hold: int, until: int) -> None:
        self.call(self.d.flex_arm, below, limit, hold, self.now + until, self.now)

    @rule(mhz=mostly(st.integers(49_000, 50_500), st.just(-1)), dt=st.integers(0, 60_000))
    def frequency(self, mhz: int, dt: int) -> None:
        self.now += dt
        self.call(self.d.frequency_input, mhz, self.now)

    @rule(available=mostly(st.just(True), st.just(False)))
    def set_available(self, available: bool) -> None:
        self.call(self.d.set_available, available, self.now)

    @rule(c=st.integers(1, 3), demand=st.integers(0, 40_000))
    def ev_demand(self, c: int, demand: int) -> None:
        self.d.set_ev_demand(c, demand, self.now)

    @rule(action=st.sampled_from(sorted(CALLS)))
    def fail_next(self, action: str) -> None:
        self.d.fail_next(action)

    @rule()
    def read(self) -> None:
        self.call(self.d.meter, self.now)
        self.call(self.d.status, self.now)

    @precondition(lambda self: self.d.next_deadline() is not None)
    @rule()
    def to_next_deadline(self) -> None:
        deadline = self.d.next_deadline()
        assert deadline is not None and deadline > self.d._clock()
        self.now = max(self.now, deadline)
        self.call(self.d.tick, self.now)

    @invariant()
    def power_within_limits(self) -> None:
        d = self.d
        assert 0 <= d.power_w() <= d.effective_limit_w() <= d.max_power_w

    @invariant()
    def sessions_take_what_they_may(self) -> None:
        # each EV gets at most its demand, idle connectors nothing, and no watt of the limit is wasted
        conns = self.d._connectors
        assert all(c.power_w <= c.ev_demand_w and (c.session or c.power_w == 0) for c in conns)
        demand = sum(c.ev_demand_w for c in conns if c.session)
        assert self.d.power_w() == min(demand, self.d.effective_limit_w())

    @invariant()
    def plans_compose_as_ocpp_says(self) -> None:
        # highest stack level in force wins, the newer on a tie; its period in force gives the limit
        now = self.d._clock()
        live = [v for v in self.plans.values() if v[2]["valid_from"] <= now < v[2]["valid_to"]]
        expected = None
        if live:
            raw = max(live, key=lambda v: (v[0], v[1]))[2]
            expected = [w for off, w in raw["periods"] if raw["valid_from"] + off * 1000 <= now][-1]
        assert self.d._profile_limit() == expected
        caps = [self.d.max_power_w if self.d._available else 0, expected, self.d._flex_limit()]
        assert self.d.effective_limit_w() == min(c for c in caps if c is not None)

    @invariant()
    def energy_never_decreases(self) -> None:
        e = self.d.energy_wms()
        assert e >= self.energy
        self.energy = e

    @invariant()
    def store_is_bounded(self) -> None:
        assert len(self.d._profiles) <= self.d.max_profiles


TestDriverMachine = DriverMachine.TestCase
TestDriverMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def _newest_wins(profiles: list[Any], now_ms: int) -> Any:
    return max((p for p in profiles if p.valid_at(now_ms)), key=lambda p: p.seq, default=None)


def _older_wins_a_tie(profiles: list[Any], now_ms: int) -> Any:
    return max(
        (p for p in profiles if p.valid_at(now_ms)), key=lambda p: (p.stack_level, -p.seq), default=None
    )


PLANTED = {
    "sharing ignores the limit": ("share", lambda limit_w, demands_w: list(demands_w)),
    "stack levels ignored": ("winner", _newest_wins),
    "the older wins a tie": ("winner", _older_wins_a_tie),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_the_machine_catches_a_planted_bug(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each planted bug breaks an invariant the random calls check: the machine can fail."""
    name, replacement = PLANTED[bug]
    monkeypatch.setattr(sim, name, replacement)
    # derandomized: a planted bug is caught on every run, not 19 runs in 20
    planted = settings(max_examples=100, stateful_step_count=40, deadline=None, phases=[Phase.generate],
                       database=None, derandomize=True)  # fmt: skip
    with pytest.raises(AssertionError):
        run_state_machine_as_test(DriverMachine, settings=planted)
