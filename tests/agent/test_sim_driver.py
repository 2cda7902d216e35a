"""The simulated charger: OCPP 2.0.1-style limit composition, sessions and metering, flex setpoints,
the armed frequency response and its timing, availability, every refusal, injected failures.
Random call sequences are in test_sim_driver_machine.py."""

from __future__ import annotations

from typing import Any

import pytest

from ads_ledger.core import codec
from chargepoint_agent.drivers import ACTIONS, OWNER_STACK_LEVEL, Driver, DriverError, SimCharger

A, B = b"\xaa" * 32, b"\xbb" * 32
HOUR = 3_600_000
T0 = 1_800_000_000_000  # an ordinary Unix-ms instant


def profile(pid: int = 1, limit: int = 10_000, start: int = T0, end: int = T0 + HOUR, periods: Any = None) -> dict[str, Any]:  # fmt: skip
    return {"id": pid, "valid_from": start, "valid_to": end, "periods": periods or [[0, limit]]}


def charging(connectors: int = 1, **kw: Any) -> SimCharger:
    """A charger with a session on every connector from T0."""
    d = SimCharger(connectors=connectors, **kw)
    for c in range(1, connectors + 1):
        d.start(c, T0)
    return d


def dig(data: object, *path: str) -> Any:
    """A field deep in a result map (results are typed as the general receipt `Data`)."""
    for key in path:
        assert isinstance(data, dict)
        data = data[key]
    return data


def assert_receipt_data(data: object) -> None:
    """Receipt `data` (DESIGN §7): str keys; int/str/bool/bytes/list/map values; canonical msgpack."""

    def walk(v: object) -> None:
        if isinstance(v, dict):
            assert all(isinstance(k, str) for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert isinstance(v, (int, str, bool, bytes)), v

    assert isinstance(data, dict)
    walk(data)
    codec.encode(data)


def test_simulator_is_a_driver() -> None:
    d: Driver = SimCharger()
    assert isinstance(d, Driver)
    assert set(ACTIONS.values()) <= set(dir(d))


# ---- composition -----------------------------------------------------------------------------


def test_higher_stack_level_wins_even_when_it_allows_more() -> None:
    d = charging(ev_max_w=22_000)
    d.set_profile(profile(1, 6_000), 10, A, T0)
    r = d.set_profile(profile(2, 9_000), 20, B, T0)
    assert r["in_force"] is True and d.power_w() == 9_000
    r = d.set_profile(profile(3, 1_000), 5, A, T0)
    assert r["in_force"] is False and d.power_w() == 9_000


def test_equal_stack_levels_the_newer_wins() -> None:
    d = charging()
    d.set_profile(profile(1, 4_000), 7, A, T0)
    d.set_profile(profile(1, 8_000), 7, B, T0 + 1)
    assert d.power_w() == 8_000
    d.set_profile(profile(1, 5_000), 7, A, T0 + 2)  # A replaces its own: now the newest
    assert d.power_w() == 5_000


def test_expiry_of_the_higher_profile_reverts_to_the_lower() -> None:
    d = charging()
    d.set_profile(profile(1, 6_000, end=T0 + 2 * HOUR), 1, A, T0)
    d.set_profile(profile(2, 2_000, end=T0 + HOUR), 9, B, T0)
    assert d.power_w() == 2_000
    d.tick(T0 + HOUR - 1)
    assert d.power_w() == 2_000
    d.tick(T0 + HOUR)
    assert d.power_w() == 6_000
    assert [p["id"] for p in dig(d.status(T0 + HOUR), "profiles")] == [1]
    d.tick(T0 + 2 * HOUR)
    assert d.power_w() == 11_000  # no profile: the EV's demand under the hardware cap


def test_a_profile_not_yet_valid_does_not_apply() -> None:
    d = charging()
    d.set_profile(profile(1, 3_000, start=T0 + 1_000, end=T0 + HOUR), 50, A, T0)
    assert d.power_w() == 11_000
    assert d.next_deadline() == T0 + 1_000
    d.tick(T0 + 1_000)
    assert d.power_w() == 3_000


def test_the_minimum_across_purposes_applies() -> None:
    d = charging()
    d.set_profile(profile(1, 7_000), OWNER_STACK_LEVEL, A, T0)
    d.flex_activate(9_000, 60, T0)
    assert d.effective_limit_w() == 7_000
    d.flex_activate(4_000, 60, T0)
    assert d.effective_limit_w() == 4_000 and d.power_w() == 4_000
    limits = d.status(T0)["limits"]
    assert limits == {"hardware_w": 22_000, "profile_w": 7_000, "flex_w": 4_000}


def test_the_hardware_maximum_caps_every_limit() -> None:
    d = charging(connectors=2, max_power_w=16_000, ev_max_w=32_000)
    assert d.power_w() == 16_000
    d.set_profile(profile(1, 50_000), 3, A, T0)
    d.flex_activate(40_000, 60, T0)
    assert d.effective_limit_w() == 16_000 and d.power_w() == 16_000


def test_two_issuers_may_use_the_same_profile_id() -> None:
    d = charging()
    d.set_profile(profile(1, 3_000), 2, A, T0)
    d.set_profile(profile(1, 5_000), 1, B, T0)
    assert len(dig(d.status(T0), "profiles")) == 2
    assert d.power_w() == 3_000


def test_periods_step_over_time() -> None:
    d = charging()
    d.set_profile(profile(periods=[[0, 2_000], [600, 7_000], [1_200, 0]]), 1, A, T0)
    seen = []
    for t in (0, 599_999, 600_000, 1_199_999, 1_200_000, HOUR - 1):
        d.tick(T0 + t)
        seen.append(d.power_w())
    assert seen == [2_000, 2_000, 7_000, 7_000, 0, 0]
    assert d.next_deadline() == T0 + HOUR


def test_sessions_share_the_limit_and_what_one_ev_cannot_take_goes_to_the_other() -> None:
    d = charging(connectors=3, ev_max_w=11_000)
    d.set_ev_demand(1, 2_000, T0)
    d.set_profile(profile(1, 15_000), 1, A, T0)
    powers = [c["power_w"] for c in dig(d.meter(T0), "connectors")]
    assert powers == [2_000, 6_500, 6_500]
    d.stop(1, T0)
    assert [c["power_w"] for c in dig(d.meter(T0), "connectors")] == [0, 7_500, 7_500]


# ---- metering --------------------------------------------------------------------------------


def test_energy_integrates_power_over_time() -> None:
    d = charging()
    d.set_profile(profile(periods=[[0, 10_000], [1_800, 4_000]]), 1, A, T0)
    d.tick(T0 + HOUR)
    m = d.meter(T0 + HOUR)
    assert m["energy_wh"] == 7_000
    r = d.stop(1, T0 + HOUR)
    assert r["stopped"] == [{"connector": 1, "session": 1, "energy_wh": 7_000, "duration_s": 3_600}]
    d.tick(T0 + 2 * HOUR)
    assert d.meter(T0 + 2 * HOUR)["energy_wh"] == 7_000  # no session, no energy


def test_energy_does_not_depend_on_how_often_tick_is_called() -> None:
    def run(step_ms: int) -> int:
        d = charging(connectors=2)
        events: list[tuple[int, Any]] = [
            (
                T0,
                lambda t: d.set_profile(
                    profile(periods=[[0, 9_000], [777, 13_000], [2_001, 3_333]]), 1, A, t
                ),
            ),
            (T0, lambda t: d.flex_arm(49_800, 1_000, 30, T0 + HOUR, t)),
            (T0 + 100_000, lambda t: d.flex_activate(5_000, 1_234, t)),
            (T0 + 2_000_000, lambda t: d.frequency_input(49_700, t)),
            (T0 + 2_010_000, lambda t: d.frequency_input(50_000, t)),
        ]
        events += [(t, d.tick) for t in range(T0, T0 + HOUR + 1, step_ms)] + [(T0 + HOUR, d.tick)]
        for t, f in sorted(events, key=lambda e: e[0]):
            f(t)
        return d.energy_wms()

    once = run(HOUR)
    assert once == run(1_000) == run(61_001)
    # 9 kW; the 5 kW setpoint; 13 kW; 1 kW for the 30 s of response (dip + 10 s, hold 30 s); 3.333 kW
    limits = [(100_000, 9_000), (1_234_000, 5_000), (666_000, 13_000), (30_000, 1_000), (1_570_000, 3_333)]
    assert once == sum(ms * w for ms, w in limits)


def test_time_never_runs_backwards() -> None:
    d = charging()
    d.tick(T0 + HOUR)
    e = d.energy_wms()
    d.tick(T0)  # an earlier clock is taken as the latest seen
    assert d.energy_wms() == e
    assert d.status(T0)["at"] == T0 + HOUR


# ---- flex ------------------------------------------------------------------------------------


def test_flex_setpoint_expires_after_its_duration() -> None:
    d = charging()
    r = d.flex_activate(3_000, 900, T0)
    assert r == {"until": T0 + 900_000, "limit_w": 3_000}
    d.tick(T0 + 899_999)
    assert d.power_w() == 3_000
    d.tick(T0 + 900_000)
    assert d.power_w() == 11_000 and "setpoint" not in dig(d.status(T0 + 900_000), "flex")


def test_flex_setpoint_is_replaced_and_duration_zero_ends_it() -> None:
    d = charging()
    d.flex_activate(3_000, 900, T0)
    d.flex_activate(5_000, 60, T0 + 1)
    assert d.power_w() == 5_000 and d.next_deadline() == T0 + 60_001
    d.flex_activate(0, 0, T0 + 2)
    assert d.power_w() == 11_000


def test_frequency_dip_caps_power_within_the_same_call() -> None:
    d = charging()
    d.flex_arm(49_800, 1_500, 30, T0 + HOUR, T0)
    d.frequency_input(49_900, T0 + 1_000)
    assert d.power_w() == 11_000
    d.frequency_input(49_799, T0 + 2_000)
    # no tick, no command: the measurement itself applies the cap at that instant
    assert d.power_w() == 1_500 and d.meter(T0 + 2_000)["power_w"] == 1_500
    assert dig(d.status(T0 + 2_000), "flex", "armed", "responding") is True


def test_frequency_response_holds_for_hold_s_then_releases() -> None:
    d = charging()
    d.flex_arm(49_800, 0, 30, T0 + HOUR, T0)
    d.frequency_input(49_500, T0 + 10_000)
    d.frequency_input(50_000, T0 + 11_000)  # recovered at once, but the hold runs on
    d.tick(T0 + 39_999)
    assert d.power_w() == 0
    assert d.next_deadline() == T0 + 40_000
    d.tick(T0 + 40_000)
    assert d.power_w() == 11_000
    d.frequency_input(49_700, T0 + 50_000)  # re-armed: a second dip acts again
    assert d.power_w() == 0


def test_frequency_response_lasts_while_the_frequency_stays_low() -> None:
    d = charging()
    d.flex_arm(49_800, 2_000, 5, T0 + HOUR, T0)
    d.frequency_input(49_600, T0)
    d.frequency_input(49_650, T0 + 60_000)
    d.tick(T0 + 120_000)
    assert d.power_w() == 2_000  # hold long past, measurements still low
    d.frequency_input(49_800, T0 + 121_000)  # at the threshold is not below it
    assert d.power_w() == 11_000


def test_not_armed_after_until_and_until_ends_a_response() -> None:
    d = charging()
    d.flex_arm(49_800, 0, 600, T0 + 60_000, T0)
    d.frequency_input(49_000, T0 + 30_000)
    assert d.power_w() == 0
    d.tick(T0 + 60_000)
    assert d.power_w() == 11_000 and "armed" not in dig(d.status(T0 + 60_000), "flex")
    d.frequency_input(49_000, T0 + 70_000)
    assert d.power_w() == 11_000


def test_arming_acts_only_on_measurements_after_it() -> None:
    d = charging()
    d.frequency_input(49_000, T0)
    d.flex_arm(49_800, 0, 10, T0 + HOUR, T0)
    assert d.power_w() == 11_000
    d.frequency_input(49_000, T0 + 100)
    assert d.power_w() == 0


def test_frequency_response_and_setpoint_combine_by_minimum() -> None:
    d = charging()
    d.flex_activate(6_000, 600, T0)
    d.flex_arm(49_800, 8_000, 10, T0 + HOUR, T0)
    d.frequency_input(49_000, T0 + 1)
    assert d.power_w() == 6_000


# ---- availability and sessions ---------------------------------------------------------------


def test_unavailable_draws_nothing_and_starts_nothing_then_resumes() -> None:
    d = charging()
    assert d.set_available(False, T0) == {"available": False, "limit_w": 0}
    assert d.power_w() == 0
    d.tick(T0 + HOUR)
    assert d.energy_wms() == 0
    d.stop(1, T0 + HOUR)
    with pytest.raises(DriverError, match="unavailable"):
        d.start(1, T0 + HOUR)
    d.set_available(True, T0 + HOUR)
    assert d.start(None, T0 + HOUR)["power_w"] == 11_000


def test_start_without_connector_takes_the_first_free_one() -> None:
    d = SimCharger(connectors=2)
    assert d.start(2, T0)["connector"] == 2
    assert d.start(None, T0) == {"connector": 1, "session": 2, "power_w": 11_000}
    d.tick(T0 + HOUR)
    assert dig(d.status(T0 + HOUR), "sessions") == [
        {"session": 2, "connector": 1, "started_at": T0, "energy_wh": 11_000, "power_w": 11_000},
        {"session": 1, "connector": 2, "started_at": T0, "energy_wh": 11_000, "power_w": 11_000},
    ]
    assert d.stop(None, T0 + HOUR)["stopped"] == [
        {"connector": 1, "session": 2, "energy_wh": 11_000, "duration_s": 3_600},
        {"connector": 2, "session": 1, "energy_wh": 11_000, "duration_s": 3_600},
    ]


# ---- clearing profiles -----------------------------------------------------------------------


def test_an_issuer_clears_its_own_profile_only_and_the_owner_clears_any() -> None:
    d = charging()
    d.set_profile(profile(1, 3_000), 5, A, T0)
    d.set_profile(profile(1, 4_000), 4, B, T0)
    d.set_profile(profile(2, 5_000), 3, B, T0)
    with pytest.raises(DriverError, match="another issuer"):
        d.clear_profile(2, A, False, T0)
    assert d.clear_profile(1, A, False, T0) == {"cleared": 1, "limit_w": 4_000}
    owner = b"\x01" * 32
    assert d.clear_profile(1, owner, True, T0)["cleared"] == 1
    assert d.clear_profile(2, owner, True, T0)["cleared"] == 1
    assert d.power_w() == 11_000


# ---- refusals --------------------------------------------------------------------------------

BAD_PROFILES: list[tuple[object, str]] = [
    ("not a map", "must be a map"),
    ({"id": 1, "valid_from": T0, "valid_to": T0 + 1}, "missing \\['periods'\\]"),
    ({**profile(), "kind": "recurring"}, "unknown \\['kind'\\]"),
    (profile(pid=-1), "profile id"),
    (profile(pid=True), "profile id"),
    (profile(pid=2**31), "profile id"),
    (profile(start=T0 + 5, end=T0 + 5), "before valid_to"),
    (profile(start=T0 - 2, end=T0 - 1), "expired"),
    (profile(start="now"), "valid_from"),  # type: ignore[arg-type]
    ({**profile(), "periods": []}, "1..24"),
    (profile(periods=[[i * 60, 1_000] for i in range(25)]), "1..24"),
    (profile(periods=[[5, 1_000]]), "offset 0"),
    (profile(periods=[[0, 1_000], [60, 2_000], [30, 3_000]]), "not after the previous"),
    (profile(periods=[[0, 1_000], [0, 2_000]]), "not after the previous"),
    (profile(periods=[[0, -1]]), "limit_w"),
    (profile(periods=[[0, 1.5]]), "limit_w"),
    (profile(periods=[[0]]), "pair"),
    (profile(periods=[0]), "pair"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_PROFILES)
def test_invalid_profiles_are_refused_with_a_clear_message(raw: object, message: str) -> None:
    d = charging()
    with pytest.raises(DriverError, match=message):
        d.set_profile(raw, 1, A, T0)  # type: ignore[arg-type]
    assert d.status(T0)["profiles"] == [] and d.power_w() == 11_000


@pytest.mark.parametrize("level", [-1, OWNER_STACK_LEVEL + 1, True])
def test_stack_level_out_of_range_is_refused(level: int) -> None:
    with pytest.raises(DriverError, match="stack level"):
        charging().set_profile(profile(), level, A, T0)


def test_profile_store_is_bounded_per_issuer_and_in_all() -> None:
    d = SimCharger(max_profiles=10, max_profiles_per_source=4)
    for i in range(4):
        d.set_profile(profile(i), 1, A, T0)
    with pytest.raises(DriverError, match="this issuer holds 4"):
        d.set_profile(profile(4), 1, A, T0)
    d.set_profile(profile(0, 1_000), 1, A, T0)  # replacing one's own still works at the bound
    for i in range(4):
        d.set_profile(profile(i), 1, B, T0)
    d.set_profile(profile(0), 1, b"c" * 32, T0)
    d.set_profile(profile(1), 1, b"c" * 32, T0)
    with pytest.raises(DriverError, match="holds 10 profiles"):
        d.set_profile(profile(2), 1, b"c" * 32, T0)
    d.tick(T0 + HOUR)  # expired profiles leave the store
    d.set_profile(profile(2, start=T0 + HOUR, end=T0 + 2 * HOUR), 1, b"c" * 32, T0 + HOUR)


def test_session_refusals() -> None:
    d = SimCharger(connectors=2)
    d.start(1, T0)
    for bad, message in [
        (1, "has a session"),
        (0, "no connector 0"),
        (3, "no connector 3"),
        (True, "no connector"),
    ]:
        with pytest.raises(DriverError, match=message):
            d.start(bad, T0)
    d.start(None, T0)
    with pytest.raises(DriverError, match="every connector"):
        d.start(None, T0)
    d.stop(None, T0)
    with pytest.raises(DriverError, match="no session to stop"):
        d.stop(None, T0)
    with pytest.raises(DriverError, match="connector 2 has no session"):
        d.stop(2, T0)
    with pytest.raises(DriverError, match="no connector 9"):
        d.stop(9, T0)


def test_clear_refusals() -> None:
    d = charging()
    with pytest.raises(DriverError, match="no profile with id 7"):
        d.clear_profile(7, A, True, T0)
    with pytest.raises(DriverError, match="profile id"):
        d.clear_profile(-7, A, True, T0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.flex_activate(-1, 60, T0), "limit_w"),
        (lambda d: d.flex_activate(1_000, 86_401, T0), "duration_s"),
        (lambda d: d.flex_arm(50, 0, 5, T0 + HOUR, T0), "in mHz"),  # Hz by mistake
        (lambda d: d.flex_arm(49_800_000, 0, 5, T0 + HOUR, T0), "below_mhz"),  # µHz by mistake
        (lambda d: d.flex_arm(49_800, -5, 5, T0 + HOUR, T0), "limit_w"),
        (lambda d: d.flex_arm(49_800, 0, 3_601, T0 + HOUR, T0), "hold_s"),
        (lambda d: d.flex_arm(49_800, 0, 5, T0, T0), "not after now"),
        (lambda d: d.set_available(1, T0), "true or false"),
        (lambda d: d.frequency_input(-1, T0), "frequency"),
        (lambda d: d.tick(-1), "now_ms"),
    ],
)
def test_flex_availability_and_input_refusals(call: Any, message: str) -> None:
    d = charging()
    before = d.status(T0)
    with pytest.raises(DriverError, match=message):
        call(d)
    assert d.status(T0) == before


CALLS: dict[str, Any] = {
    "start": lambda d: d.start(2, T0),
    "stop": lambda d: d.stop(1, T0),
    "set_profile": lambda d: d.set_profile(profile(), 1, A, T0),
    "clear_profile": lambda d: d.clear_profile(9, A, False, T0),
    "flex_activate": lambda d: d.flex_activate(1_000, 60, T0),
    "flex_arm": lambda d: d.flex_arm(49_800, 0, 5, T0 + HOUR, T0),
    "meter": lambda d: d.meter(T0),
    "status": lambda d: d.status(T0),
    "set_available": lambda d: d.set_available(False, T0),
    "tick": lambda d: d.tick(T0 + 1),
    "frequency_input": lambda d: d.frequency_input(49_000, T0),
}


@pytest.mark.parametrize("action", sorted(CALLS))
def test_fail_next_fails_one_call_without_effect(action: str) -> None:
    d = SimCharger(connectors=2)
    d.start(1, T0)
    d.set_profile(profile(9), 1, A, T0)
    before = d.status(T0)
    d.fail_next(action)
    with pytest.raises(DriverError, match=f"injected failure of {action}"):
        CALLS[action](d)
    assert d.status(T0) == before
    CALLS[action](d)  # only the next call fails


def test_fail_next_takes_section_7_action_names_and_refuses_unknown_ones() -> None:
    d = charging()
    d.fail_next("charging.profile.set")
    with pytest.raises(DriverError):
        d.set_profile(profile(), 1, A, T0)
    with pytest.raises(ValueError, match="unknown driver action"):
        d.fail_next("charging.teleport")


def test_every_result_is_receipt_data() -> None:
    d = SimCharger(connectors=2)
    d.frequency_input(50_010, T0)
    results = [
        d.start(None, T0),
        d.set_profile(profile(1, 5_000), 3, A, T0),
        d.flex_activate(4_000, 60, T0),
        d.flex_arm(49_800, 0, 5, T0 + HOUR, T0),
        d.meter(T0 + 1_000),
        d.status(T0 + 1_000),
        d.set_available(True, T0 + 1_000),
        d.clear_profile(1, A, False, T0 + 1_000),
        d.stop(None, T0 + 2_000),
    ]
    for r in results:
        assert_receipt_data(r)
