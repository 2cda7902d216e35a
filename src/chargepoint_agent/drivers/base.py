"""The driver contract: what the agent calls once a command (DESIGN §7) has been accepted.

A driver is sans-IO towards the agent: every call takes the clock as `now_ms` (Unix ms) and
returns at once with the result data for the receipt. Units everywhere: power in W, energy in
Wh, instants in Unix ms, durations in s (as §7's params), grid frequency in mHz (50 Hz = 50_000).

A driver raises `DriverError` and nothing else for anything the charger cannot or will not do;
the agent turns it into a `driver_error` receipt and never retries. Any other exception is a bug.

`AsyncDriver` is the contract of a driver that must wait for the charger's own answer (OCPP: the
station answers each request over the network): one awaited `act` per accepted command, told
who sent it (`Origin`), plus `retain`, by which the agent tells it which controllers are still
authorised after each verified access-list refresh, and `serve`, its long-running task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeAlias, runtime_checkable

import trio

# A receipt's `data` map must be msgpack-able with str keys (DESIGN §7): no None, no floats.
Value: TypeAlias = int | str | bool | bytes | list["Value"] | dict[str, "Value"]
Data: TypeAlias = dict[str, Value]

# Grant `priority` is 0..99 (DESIGN §4), so the owner, who has no grant, sits one level above.
OWNER_STACK_LEVEL = 100
MAX_STACK_LEVEL = OWNER_STACK_LEVEL

# §7 action -> the Driver method that carries it out.
ACTIONS: dict[str, str] = {
    "charging.start": "start",
    "charging.stop": "stop",
    "charging.profile.set": "set_profile",
    "charging.profile.clear": "clear_profile",
    "flex.activate": "flex_activate",
    "flex.arm": "flex_arm",
    "meter.read": "meter",
    "status.read": "status",
    "availability.set": "set_available",
}


class DriverError(Exception):
    """The charger refused or failed an accepted command; the message says why, for the receipt."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@runtime_checkable
class Driver(Protocol):
    """One charge point (all its connectors). Connectors are numbered from 1, as OCPP EVSEs.

    Power limits are for the whole charge point; active sessions share the effective limit.
    """

    def start(self, connector: int | None, now_ms: int) -> Data:
        """Start a session on `connector` (None: the first free one) → {"connector", "session"}."""
        ...

    def stop(self, connector: int | None, now_ms: int) -> Data:
        """End the session on `connector` (None: every session) → {"stopped": [{...}]}."""
        ...

    def set_profile(self, profile: dict[str, object], stack_level: int, source: bytes, now_ms: int) -> Data:
        """Install (or replace, same source and id) a charge plan of the TxDefault-like purpose."""
        ...

    def clear_profile(self, profile_id: int, source: bytes, owner: bool, now_ms: int) -> Data:
        """Remove `source`'s profile `profile_id`; the owner removes every profile with that id."""
        ...

    def flex_activate(self, limit_w: int, duration_s: int, now_ms: int) -> Data:
        """Cap the charge point at `limit_w` for `duration_s` (0 ends the setpoint now)."""
        ...

    def flex_arm(self, below_mhz: int, limit_w: int, hold_s: int, until_ms: int, now_ms: int) -> Data:
        """Arm a local frequency response: below `below_mhz`, cap at `limit_w` at once."""
        ...

    def meter(self, now_ms: int) -> Data:
        """{"energy_wh", "power_w", "connectors": [{"connector", "energy_wh", "power_w"}]}."""
        ...

    def status(self, now_ms: int) -> Data:
        """Availability, effective limit and its parts, sessions, active profiles, flex state."""
        ...

    def set_available(self, available: bool, now_ms: int) -> Data:
        """Operative / inoperative: an unavailable charge point draws 0 W and starts no session."""
        ...

    def tick(self, now_ms: int) -> None:
        """Advance to `now_ms` (the simulator integrates energy; a real charger reads its meter)."""
        ...

    def frequency_input(self, mhz: int, now_ms: int) -> None:
        """A grid frequency measurement; an armed response acts on it within this call."""
        ...

    def next_deadline(self) -> int | None:
        """The next instant at which the limit changes by itself (a period, an expiry), if any."""
        ...


@dataclass(frozen=True, slots=True)
class Origin:
    """Who an accepted command came from: what a driver needs to track what each controller set."""

    issuer: bytes
    grant: bytes | None  # None: the owner speaks
    stack_level: int  # the grant's priority, OWNER_STACK_LEVEL for the owner
    grant_end_ms: int | None  # the grant's not_after (None: the owner)
    max_power_w: int | None  # the grant's cap (None: none)


@dataclass(frozen=True, slots=True)
class Authority:
    """A grant of the verified access list, as a driver sees it."""

    grantee: bytes
    scopes: frozenset[str]
    not_after_ms: int
    max_power_w: int | None


@runtime_checkable
class AsyncDriver(Protocol):
    """A charger that answers over the network (see the module doc)."""

    async def act(self, action: str, params: dict[str, Any], origin: Origin, now_ms: int) -> Data:
        """Carry out an accepted §7 action; the charger's answer, or DriverError (refused, timed out)."""
        ...

    def retain(self, owner: bytes | None, grants: dict[bytes, Authority], now_ms: int) -> None:
        """The controllers in force now; whatever another controller set is undone (at once, in
        the background)."""
        ...

    def tick(self, now_ms: int) -> None:
        """Advance to `now_ms` (e.g. undo what a grant that just ended set)."""
        ...

    async def serve(self, saved: bytes | None, save: Callable[[bytes], None],
                    *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Run until cancelled; `saved` is what the last `save` call stored (durably)."""
        ...
