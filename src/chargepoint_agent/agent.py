"""The agent's request handling, without sockets: a command in, a signed receipt out.

`Agent.command(raw, now_ms)`:
  verify (pure, verify.py) → refused: log it, sign the refusal;
  accepted: record seq + audit entry durably (store.accept) → drive the charger (the driver's
  answer or its DriverError, never retried) → sign the receipt → complete the audit entry.
The order makes a crash at any point safe: a command is never acted on twice, and the log
shows every command that was acted on.

`await Agent.handle(raw, now_ms)` is the same with the charger's answer awaited: an
`AsyncDriver` (OCPP) gets `act(...)` and the service's other tasks run meanwhile; a synchronous
driver is called as in `command`. Between the verdict and `store.accept` nothing is awaited, so
the replay check and the durable seq cannot be interleaved by another request.
`Agent.retain(now_ms)` tells an AsyncDriver which controllers the verified access list holds.

`Agent.status(now_ms)` is DESIGN §8's `GET /status`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ads_ledger.core.crypto import SigningKey
from chargepoint_agent.drivers.base import ACTIONS, AsyncDriver, Authority, Driver, DriverError, Origin
from chargepoint_agent.receipt import make_receipt
from chargepoint_agent.store import AgentStore
from chargepoint_agent.verify import AccessList, Verdict, check_command

__all__ = ["Agent"]

log = logging.getLogger("chargepoint_agent")


class Agent:
    def __init__(self, *, key: SigningKey, chain_id: str, store: AgentStore, driver: Driver | AsyncDriver,
                 acl: Callable[[], AccessList | None], trusted_height: Callable[[], int],
                 skew_ms: int = 30_000) -> None:  # fmt: skip
        self.key, self.cp, self.chain_id = key, key.pub, chain_id
        self.store, self.driver = store, driver
        self._acl, self._trusted_height = acl, trusted_height
        self.skew_ms = skew_ms
        self.counts: dict[str, int] = {}

    def command(self, raw: bytes, now_ms: int) -> tuple[Verdict, dict[str, Any]]:
        """The verdict and the signed receipt envelope for one request body (synchronous drivers)."""
        v, acl_height, n, refused = self._admit(raw, now_ms)
        if refused is not None:
            return v, refused
        try:
            code, data = "ok", self._act(v, now_ms)
        except DriverError as e:
            code, data = "driver_error", {"message": e.message}
        return v, self._finish(v, n, acl_height, code, data, now_ms)

    async def handle(self, raw: bytes, now_ms: int) -> tuple[Verdict, dict[str, Any]]:
        """`command`, awaiting the charger's answer when the driver is an AsyncDriver."""
        v, acl_height, n, refused = self._admit(raw, now_ms)
        if refused is not None:
            return v, refused
        assert v.cmd is not None
        try:
            if isinstance(self.driver, AsyncDriver) and v.cmd["action"] in ACTIONS:
                g = v.grant
                origin = Origin(v.cmd["issuer"], v.cmd["grant"], v.stack_level,
                                None if g is None else g["not_after"],
                                None if g is None else g["limits"].get("max_power_w"))  # fmt: skip
                code, data = "ok", await self.driver.act(v.cmd["action"], v.cmd["params"], origin, now_ms)
            else:
                code, data = "ok", self._act(v, now_ms)
        except DriverError as e:
            code, data = "driver_error", {"message": e.message}
        return v, self._finish(v, n, acl_height, code, data, now_ms)

    def retain(self, now_ms: int) -> None:
        """After a verified refresh: an AsyncDriver undoes what controllers no longer in force set."""
        acl = self._acl()
        if acl is None or not isinstance(self.driver, AsyncDriver):
            return
        grants = {g["id"]: Authority(g["grantee"], frozenset(g["scopes"]), g["not_after"],
                                     g["limits"].get("max_power_w")) for g in acl.grants}  # fmt: skip
        self.driver.retain(acl.owner, grants, now_ms)

    def _admit(self, raw: bytes, now_ms: int) -> tuple[Verdict, int, int, dict[str, Any] | None]:
        """Verify; a refusal is logged and its receipt returned, an acceptance is made durable
        (its audit entry number returned) before anything else happens."""
        acl = self._acl()
        v = check_command(raw, chain_id=self.chain_id, cp=self.cp, acl=acl, now_ms=now_ms,
                          last_seq=self.store.last_seq, skew_ms=self.skew_ms)  # fmt: skip
        acl_height = 0 if acl is None else acl.height
        issuer = b"" if v.cmd is None else v.cmd["issuer"]
        entry = {"acl_height": acl_height, "at": now_ms, "cmd": v.cmd_hash, "code": v.code, "issuer": issuer,
                 "action": "" if v.cmd is None else v.cmd["action"], "receipt": None}  # fmt: skip
        if v.ok:
            assert v.cmd is not None
            n = self.store.accept(issuer, v.cmd["seq"], entry)  # durable before the charger moves
            return v, acl_height, n, None
        receipt = make_receipt(self.key, self.chain_id, cmd_hash=v.cmd_hash, code=v.code, at_ms=now_ms,
                               acl_height=acl_height, data={"message": v.message} if v.message else {})  # fmt: skip
        self.store.log({**entry, "receipt": receipt})
        self.counts[v.code] = self.counts.get(v.code, 0) + 1
        return v, acl_height, -1, receipt

    def _finish(self, v: Verdict, n: int, acl_height: int, code: str, data: dict[str, Any], now_ms: int) -> dict[str, Any]:
        receipt = make_receipt(self.key, self.chain_id, cmd_hash=v.cmd_hash, code=code, at_ms=now_ms,
                               acl_height=acl_height, data=data)  # fmt: skip
        self.store.complete(n, receipt, code)
        self.counts[code] = self.counts.get(code, 0) + 1
        return receipt

    def _act(self, v: Verdict, now: int) -> dict[str, Any]:
        cmd = v.cmd
        assert cmd is not None
        a, p, d = cmd["action"], cmd["params"], self.driver
        if a == "audit.read":  # the owner reads everything, a grantee its own entries
            who = None if cmd["grant"] is None else cmd["issuer"]
            entries, nxt = self.store.read(since=p.get("since", 0), limit=p.get("limit", 100), issuer=who)
            return {"entries": entries, "next": nxt}
        assert not isinstance(d, AsyncDriver), "an AsyncDriver is driven through `await Agent.handle`"
        if a == "charging.start":
            return d.start(p.get("connector"), now)
        if a == "charging.stop":
            return d.stop(p.get("connector"), now)
        if a == "charging.profile.set":
            return d.set_profile(p["profile"], v.stack_level, cmd["issuer"], now)
        if a == "charging.profile.clear":
            return d.clear_profile(p["id"], cmd["issuer"], cmd["grant"] is None, now)
        if a == "flex.activate":
            return d.flex_activate(p["limit_w"], p["duration_s"], now)
        if a == "flex.arm":
            return d.flex_arm(p["below_mhz"], p["limit_w"], p["hold_s"], p["until"], now)
        if a == "meter.read":
            return d.meter(now)
        if a == "status.read":
            return d.status(now)
        if a == "availability.set":
            return d.set_available(p["available"], now)
        raise AssertionError(f"verify.py accepted an action the agent cannot map: {a}")

    def status(self, now_ms: int) -> dict[str, Any]:
        acl = self._acl()
        return {
            "cp": self.cp,
            "owner": None if acl is None else acl.owner,
            "trusted_height": self._trusted_height(),
            "acl_height": None if acl is None else acl.height,
            "staleness_ms": None if acl is None else now_ms - acl.header_time_ms,
            "staleness_limit_ms": None if acl is None else acl.staleness_limit_ms,
            "grants": [] if acl is None else [
                {"id": g["id"], "grantee": g["grantee"], "scopes": g["scopes"], "not_before": g["not_before"],
                 "not_after": g["not_after"], "limits": g["limits"], "priority": g["priority"]}
                for g in acl.grants],
        }  # fmt: skip
