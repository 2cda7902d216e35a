"""Charge plans as OCPP 2.0.1 smart charging composes them: pure functions, no clock inside.

- `parse_profile` checks a §7 profile and returns a `Profile` or raises `DriverError`.
- `winner` picks, within one purpose, the valid profile of highest stack level (ties: newest).
- `share` divides a charge point's limit among sessions (water-filling on EV demand).
"""

from __future__ import annotations

from dataclasses import dataclass

from chargepoint_agent.drivers.base import MAX_STACK_LEVEL, DriverError

MAX_PERIODS = 24
MAX_PROFILE_ID = 2**31 - 1  # OCPP chargingProfileId is a (signed 32-bit) integer
MAX_LIMIT_W = 2**31 - 1
PROFILE_KEYS = frozenset({"id", "valid_from", "valid_to", "periods"})


@dataclass(frozen=True, slots=True)
class Profile:
    """A TxDefault-like charge plan of one issuer (`source`): absolute schedule from valid_from."""

    id: int
    source: bytes
    stack_level: int
    valid_from: int
    valid_to: int
    periods: tuple[tuple[int, int], ...]  # (start_offset_s, limit_w), offsets strictly increasing from 0
    seq: int  # installation order: the newer of two at one stack level wins

    def valid_at(self, now_ms: int) -> bool:
        return self.valid_from <= now_ms < self.valid_to

    def limit_at(self, now_ms: int) -> int:
        """The limit of the period in force at `now_ms` (callers check `valid_at` first)."""
        limit = self.periods[0][1]
        for offset_s, period_limit in self.periods:
            if self.valid_from + offset_s * 1000 > now_ms:
                break
            limit = period_limit
        return limit

    def changes_after(self, now_ms: int) -> list[int]:
        """Instants after `now_ms` when this profile's contribution may change."""
        edges = [self.valid_from, self.valid_to] + [self.valid_from + o * 1000 for o, _ in self.periods]
        return [t for t in edges if t > now_ms]


def uint_param(value: object, what: str, maximum: int) -> int:
    """`value` as an integer in 0..maximum, or a DriverError naming the parameter."""
    # bool is an int subclass in Python, but `true` is no number on the wire
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise DriverError(f"{what} must be an integer in 0..{maximum}, got {value!r}")
    return value


def parse_profile(raw: object, stack_level: int, source: bytes, seq: int, now_ms: int) -> Profile:
    """Check a §7 `profile` map; every refusal is a `DriverError` naming the field at fault."""
    if not isinstance(raw, dict):
        raise DriverError("profile must be a map")
    keys = set(raw)
    if keys != PROFILE_KEYS:
        missing, unknown = sorted(PROFILE_KEYS - keys), sorted(map(str, keys - PROFILE_KEYS))
        raise DriverError(f"profile fields: missing {missing}, unknown {unknown}")
    profile_id = uint_param(raw["id"], "profile id", MAX_PROFILE_ID)
    level = uint_param(stack_level, "stack level", MAX_STACK_LEVEL)
    valid_from = uint_param(raw["valid_from"], "valid_from", 2**63 - 1)
    valid_to = uint_param(raw["valid_to"], "valid_to", 2**63 - 1)
    if valid_from >= valid_to:
        raise DriverError(f"valid_from {valid_from} must be before valid_to {valid_to}")
    if valid_to <= now_ms:
        raise DriverError(f"profile {profile_id} expired at {valid_to}, before now {now_ms}")
    periods_raw = raw["periods"]
    if not isinstance(periods_raw, (list, tuple)) or not 1 <= len(periods_raw) <= MAX_PERIODS:
        raise DriverError(f"periods must be a list of 1..{MAX_PERIODS} [start_offset_s, limit_w] pairs")
    periods: list[tuple[int, int]] = []
    for i, period in enumerate(periods_raw):
        if not isinstance(period, (list, tuple)) or len(period) != 2:
            raise DriverError(f"period {i} must be a pair [start_offset_s, limit_w]")
        offset = uint_param(period[0], f"period {i} start_offset_s", 2**40)
        limit = uint_param(period[1], f"period {i} limit_w", MAX_LIMIT_W)
        if i == 0 and offset != 0:
            raise DriverError(f"the first period must start at offset 0, not {offset}")
        if periods and offset <= periods[-1][0]:
            raise DriverError(f"period {i} starts at {offset} s, not after the previous one")
        periods.append((offset, limit))
    return Profile(profile_id, bytes(source), level, valid_from, valid_to, tuple(periods), seq)


def winner(profiles: list[Profile], now_ms: int) -> Profile | None:
    """OCPP 2.0.1 K01: among profiles valid now, the highest stack level prevails; ties: the newest."""
    valid = [p for p in profiles if p.valid_at(now_ms)]
    return max(valid, key=lambda p: (p.stack_level, p.seq), default=None)


def share(limit_w: int, demands_w: list[int]) -> list[int]:
    """Split `limit_w` among sessions: equal shares, and what one EV cannot take goes to the others."""
    given = [0] * len(demands_w)
    remaining = limit_w
    order = sorted(range(len(demands_w)), key=lambda i: demands_w[i])
    for n, i in enumerate(order):
        fair = remaining // (len(order) - n)
        given[i] = min(demands_w[i], fair)
        remaining -= given[i]
    return given
