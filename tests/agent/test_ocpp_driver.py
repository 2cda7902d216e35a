"""The OCPP 2.0.1 driver against a real station: the `ocpp` package's v201 ChargePoint in its own
process (chargepoint_agent.testing.ocpp_station), no ledger. Every §7 mapping, the station's
answer deciding the receipt, revocation and reconnects, and hostile or silent stations."""

from __future__ import annotations

import base64
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import trio
import websockets.sync.client as wsclient
from websockets.exceptions import InvalidStatus

from ads_ledger.core.crypto import SigningKey
from ads_ledger.wallet.commands import check_receipt, sign_command
from chargepoint_agent.agent import Agent
from chargepoint_agent.drivers.base import Authority, DriverError, Origin
from chargepoint_agent.drivers.ocpp201 import OcppDriver, OcppOptions
from chargepoint_agent.store import AgentStore
from chargepoint_agent.testing.ocpp_station import StationProcess
from chargepoint_agent.verify import AccessList

PROV, OTHER, OWNER, CP = (SigningKey(bytes([i]) * 32) for i in (3, 4, 2, 1))
GID, GID2 = b"\x10" * 16, b"\x11" * 16


def now_ms() -> int:
    return int(time.time() * 1000)


def origin(key: SigningKey = PROV, grant: bytes | None = GID, level: int = 10, cap: int | None = 11_000,
           end: int | None = None) -> Origin:  # fmt: skip
    return Origin(key.pub, grant, level, None if grant is None else (end or now_ms() + 3_600_000), cap)


def plan(pid: int = 1, limit: int = 7400, periods: list[list[int]] | None = None) -> dict[str, Any]:
    t = now_ms()
    return {"profile": {"id": pid, "valid_from": t - 1000, "valid_to": t + 7_200_000,
                        "periods": periods or [[0, limit]]}}  # fmt: skip


def auth(key: SigningKey = PROV, gid: bytes = GID, cap: int = 11_000, scopes: tuple[str, ...] = ("charging.profile", "flex")) -> dict[bytes, Authority]:
    return {gid: Authority(key.pub, frozenset(scopes), now_ms() + 3_600_000, cap)}


async def until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = trio.current_time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if trio.current_time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await trio.sleep(0.02)


class Rig:
    def __init__(self, driver: OcppDriver, tmp: Path, saved: list[bytes]) -> None:
        self.d, self.tmp, self.saved, self.n = driver, tmp, saved, 0
        self.url = ""

    async def station(self, *args: str, password: str = "", ready: bool = True) -> StationProcess:
        self.n += 1
        st = StationProcess(self.url, self.tmp / f"station{self.n}.jsonl", "--meter-interval", "0.2", *args,
                            password=password).start()  # fmt: skip
        if ready:  # booted, and the restore after the connect done (its two criteria clears)
            await until(lambda: len([c for c in st.calls("ClearChargingProfile") if "chargingProfileCriteria" in c]) >= 2
                        and self.d.state.booted_at, what="the station to connect")  # fmt: skip
        return st


@asynccontextmanager
async def rig(tmp: Path, *, timeout_s: float = 5.0, password: str = "", saved: bytes | None = None) -> AsyncIterator[Rig]:
    d = OcppDriver(OcppOptions(listen="127.0.0.1:0", call_timeout_s=timeout_s, password=password,
                               log_path=tmp / "ocpp.log", log_bytes=64 * 1024))  # fmt: skip
    out: list[bytes] = []
    r = Rig(d, tmp, out)
    procs: list[StationProcess] = []
    async with trio.open_nursery() as n:
        port = await n.start(d.serve, saved, out.append)
        r.url = f"ws://127.0.0.1:{port}"
        orig = r.station

        async def tracked(*a: str, **kw: Any) -> StationProcess:
            st = await orig(*a, **kw)
            procs.append(st)
            return st

        r.station = tracked  # type: ignore[method-assign]
        try:
            yield r
        finally:
            for p in procs:
                p.stop()
            n.cancel_scope.cancel()


def run(tmp: Path, scenario: Callable[[Rig], Any], **kw: Any) -> None:
    async def main() -> None:
        async with rig(tmp, **kw) as r:
            with trio.fail_after(60):
                await scenario(r)

    trio.run(main)


def test_profile_set_becomes_set_charging_profile(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        st = await r.station()
        data = await r.d.act("charging.profile.set", plan(limit=7400, periods=[[0, 7400], [900, 3000]]), origin(level=10), now_ms())
        assert data["status"] == "Accepted" and data["stack_level"] == 10
        [req] = st.calls("SetChargingProfile")
        cp = req["chargingProfile"]
        assert req["evseId"] == 0 and cp["stackLevel"] == 10 and cp["chargingProfilePurpose"] == "TxDefaultProfile"
        sched = cp["chargingSchedule"][0]
        assert sched["chargingRateUnit"] == "W"
        assert sched["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 7400}, {"startPeriod": 900, "limit": 3000}]
        # the owner's plan sits above every grant; two controllers' plan 1 are two station profiles
        own = await r.d.act("charging.profile.set", plan(limit=5000), origin(OWNER, None, 100, None), now_ms())
        assert own["stack_level"] == 100 and own["station_profile_id"] != data["station_profile_id"]
        assert st.calls("SetChargingProfile")[-1]["chargingProfile"]["stackLevel"] == 100
        # the same controller's plan 1 again replaces its profile (same station id)
        again = await r.d.act("charging.profile.set", plan(limit=6000), origin(level=10), now_ms())
        assert again["station_profile_id"] == data["station_profile_id"]
        # never above the grant's cap, even if asked directly
        with pytest.raises(DriverError, match="exceeds"):
            await r.d.act("charging.profile.set", plan(limit=12_000), origin(cap=11_000), now_ms())
        assert all(max(p["limit"] for p in c["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]) <= 11_000
                   for c in st.calls("SetChargingProfile"))  # fmt: skip
        # clear: a provider its own, the station told by id
        assert (await r.d.act("charging.profile.clear", {"id": 1}, origin(), now_ms()))["cleared"] == 1
        assert st.calls("ClearChargingProfile")[-1] == {"chargingProfileId": data["station_profile_id"]}
        with pytest.raises(DriverError, match="no profile with id 1"):
            await r.d.act("charging.profile.clear", {"id": 1}, origin(), now_ms())
        # the OCPP log is written and bounded
        assert (r.tmp / "ocpp.log").stat().st_size > 0 and len(r.d.recent) <= 256

    run(tmp_path, go)


def test_station_rejected_is_driver_error_and_not_tracked(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        st = await r.station("--reject-profiles")
        with pytest.raises(DriverError, match="SetChargingProfile Rejected.*TestReject"):
            await r.d.act("charging.profile.set", plan(), origin(), now_ms())
        assert len(st.calls("SetChargingProfile")) == 1 and r.d.book.all() == []
        with pytest.raises(DriverError, match="not supported by the OCPP driver"):
            await r.d.act("flex.arm", {"below_mhz": 49_800, "limit_w": 0, "hold_s": 30, "until": now_ms() + 60_000},
                          origin(), now_ms())  # fmt: skip

    run(tmp_path, go)


def test_no_station_is_driver_error(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        with pytest.raises(DriverError, match="not connected"):
            await r.d.act("charging.profile.set", plan(), origin(), now_ms())
        assert (await r.d.act("status.read", {}, origin(), now_ms()))["connected"] is False

    run(tmp_path, go)


def test_revoked_or_ended_grant_clears_its_profiles_within_2s(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        st = await r.station()
        a = await r.d.act("charging.profile.set", plan(1), origin(PROV, GID), now_ms())
        b = await r.d.act("charging.profile.set", plan(1), origin(OTHER, GID2), now_ms())
        o = await r.d.act("charging.profile.set", plan(1), origin(OWNER, None, 100, None), now_ms())
        f = await r.d.act("flex.activate", {"limit_w": 3000, "duration_s": 600}, origin(OTHER, GID2), now_ms())
        live = {**auth(PROV, GID), **auth(OTHER, GID2)}
        r.d.retain(OWNER.pub, live, now_ms())  # nothing changed
        await trio.sleep(0.3)
        assert [c for c in st.calls("ClearChargingProfile") if "chargingProfileId" in c] == []
        t0 = trio.current_time()
        r.d.retain(OWNER.pub, auth(OTHER, GID2), now_ms())  # PROV's grant revoked
        await until(lambda: {"chargingProfileId": a["station_profile_id"]} in st.calls("ClearChargingProfile"))
        assert trio.current_time() - t0 < 2.0
        # a cap lowered below the plan (a new grant record) clears it; flex needs the flex scope
        r.d.retain(OWNER.pub, auth(OTHER, GID2, cap=5000, scopes=("charging.profile",)), now_ms())
        await until(lambda: {"chargingProfileId": b["station_profile_id"]} in st.calls("ClearChargingProfile")
                    and {"chargingProfileId": f["station_profile_id"]} in st.calls("ClearChargingProfile"))
        # the owner's plan stays until the owner changes
        assert [t.station_id for t in r.d.book.all()] == [o["station_profile_id"]]
        r.d.retain(OTHER.pub, {}, now_ms())
        await until(lambda: {"chargingProfileId": o["station_profile_id"]} in st.calls("ClearChargingProfile"))
        # a grant that ends by the clock: tick clears
        r.d.retain(OWNER.pub, auth(PROV, GID), now_ms())
        await r.d.act("charging.profile.set", plan(2), origin(PROV, GID, end=now_ms() + 300), now_ms())
        sid = r.d.book.all()[0].station_id
        await trio.sleep(0.4)
        r.d.tick(now_ms())
        await until(lambda: {"chargingProfileId": sid} in st.calls("ClearChargingProfile"))
        assert r.d.book.all() == [] and r.d.to_clear == set()
        # verified before the revocation, answered by the station after it: cleared at once
        r.d.retain(OWNER.pub, {}, now_ms())
        late = await r.d.act("charging.profile.set", plan(3), origin(PROV, GID), now_ms())
        await until(lambda: {"chargingProfileId": late["station_profile_id"]} in st.calls("ClearChargingProfile"))
        assert r.d.book.all() == []

    run(tmp_path, go)


def test_reconnect_and_restart_restore_the_current_profiles(tmp_path: Path) -> None:
    saved: list[bytes] = []

    async def go(r: Rig) -> None:
        st = await r.station()
        await r.d.act("charging.profile.set", plan(1, 7000), origin(PROV, GID), now_ms())
        await r.d.act("charging.profile.set", plan(2, 4000), origin(OTHER, GID2), now_ms())
        r.d.retain(OWNER.pub, auth(PROV, GID), now_ms())  # OTHER revoked while ...
        st.stop()  # ... the station is away
        st2 = await r.station()
        await until(lambda: len(st2.calls("SetChargingProfile")) >= 1)
        await trio.sleep(0.3)
        sets = st2.calls("SetChargingProfile")
        assert [s["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] for s in sets] == [7000]
        clears = st2.calls("ClearChargingProfile")
        assert {"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}} in clears
        saved.extend(r.saved)

    run(tmp_path, go)

    async def restarted(r: Rig) -> None:  # an agent restart: the tracked profiles come from its store
        st = await r.station()
        await until(lambda: len(st.calls("SetChargingProfile")) >= 1)
        assert st.calls("SetChargingProfile")[0]["chargingProfile"]["stackLevel"] == 10

    (tmp_path / "again").mkdir()
    run(tmp_path / "again", restarted, saved=saved[-1])


def test_transactions_and_meter_values_end_to_end(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        st = await r.station("--evses", "2")
        await until(lambda: r.d.state.evse_count() == 2, what="both EVSEs reported")  # the plan is shared by them
        await r.d.act("charging.profile.set", plan(limit=7400), origin(), now_ms())
        started = await r.d.act("charging.start", {"connector": 2}, origin(), now_ms())
        assert started["connector"] == 2 and started["session"]
        [req] = st.calls("RequestStartTransaction")
        assert req["evseId"] == 2 and req["idToken"]["type"] == "Central"
        await until(lambda: r.d.state.transactions, what="TransactionEvent Started")
        await until(lambda: (r.d.state.meters.get(2) or None) and (r.d.state.meters[2].energy_wh or 0) > 0, what="energy")
        m = await r.d.act("meter.read", {}, origin(), now_ms())
        # two EVSEs reported: each gets half of the charge point's 7.4 kW plan (OCPP applies a
        # TxDefaultProfile on EVSE 0 to each EVSE), so the charge point stays within it
        [sent] = st.calls("SetChargingProfile")
        assert sent["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 3700
        assert m["power_w"] == 3700 and m["energy_wh"] > 0 and m["connectors"][1]["connector"] == 2
        s = await r.d.act("status.read", {}, origin(), now_ms())
        assert s["sessions"][0]["session"] == started["session"] and s["sessions"][0]["connector"] == 2
        stopped = await r.d.act("charging.stop", {}, origin(), now_ms())
        assert stopped["stopped"] == [{"connector": 2, "session": started["session"]}]
        await until(lambda: not r.d.state.transactions and r.d.state.ended, what="TransactionEvent Ended")
        with pytest.raises(DriverError, match="no session"):
            await r.d.act("charging.stop", {}, origin(), now_ms())
        assert (await r.d.act("availability.set", {"available": False}, origin(), now_ms()))["status"] == "Accepted"
        assert st.calls("ChangeAvailability") == [{"operationalStatus": "Inoperative"}]
        # a stale reading: meter.read asks the station (TriggerMessage) and waits for it
        r.d.opts = type(r.d.opts)(**{**r.d.opts.__dict__, "meter_stale_s": 0.0})
        await r.d.act("meter.read", {}, origin(), now_ms())
        assert st.calls("TriggerMessage") == [{"requestedMessage": "MeterValues"}]

    run(tmp_path, go)


def test_silent_station_times_out_and_stalls_nothing(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        await r.station("--never-answer", ready=False)
        await until(lambda: r.d.state.booted_at, what="boot")
        t0 = trio.current_time()
        results: list[Any] = []

        async def one(pid: int) -> None:
            try:
                await r.d.act("charging.profile.set", plan(pid), origin(), now_ms())
            except DriverError as e:
                results.append(e.message)

        async with trio.open_nursery() as n:
            n.start_soon(one, 5)
            await trio.sleep(0.1)
            st = await r.d.act("status.read", {}, origin(), now_ms())  # answered at once, from state
            assert st["connected"] is True and trio.current_time() - t0 < 0.5
        assert results and "did not answer" in results[0]
        assert trio.current_time() - t0 < 1.0 + 1.0 + 1.5  # the restore's wait, then at most one timeout

    run(tmp_path, go, timeout_s=1.0)


def _raw_exchange(url: str, frames: list[str | bytes]) -> list[Any]:
    answers = []
    with wsclient.connect(url + "/RAW", subprotocols=["ocpp2.0.1"], open_timeout=5) as ws:  # type: ignore[list-item]
        for f in frames:
            ws.send(f)
            if isinstance(f, str) and f.startswith("[3"):
                continue  # an answer expects no answer
            while True:  # skip the controller's own requests (the restore after connecting)
                m = json.loads(ws.recv(timeout=5))
                if m[0] != 2:
                    answers.append(m)
                    break
    return answers


def test_malformed_frames_get_typed_call_errors(tmp_path: Path) -> None:
    frames: list[str | bytes] = [
        "not json", "[2, \"a\"]", "{\"x\": 1}", "[9, \"b\", \"Heartbeat\", {}]", "[2, 7, \"Heartbeat\", {}]",
        "[2, \"c\", \"NoSuchAction\", {}]", "[2, \"d\", \"../../etc\", {}]", "[2, \"e\", \"Heartbeat\", {\"bogus\": 1}]",
        "[2, \"f\", \"Authorize\", {\"idToken\": {\"idToken\": 5, \"type\": \"Central\"}}]",
        "[2, \"g\", \"BootNotification\", {\"reason\": \"PowerUp\"}]", "[2, \"h\", \"Heartbeat\", []]",
        "[2, \"i\", \"GetVariables\", {\"getVariableData\": [{\"component\": {\"name\": \"x\"}, \"variable\": {\"name\": \"y\"}}]}]",
        b"\x00binary", "[3, \"nobody-asked\", {}]",
        "[2, \"j\", \"Heartbeat\", {}]",
    ]  # fmt: skip

    async def go(r: Rig) -> None:
        out = await trio.to_thread.run_sync(_raw_exchange, r.url, frames[:-2])
        codes = [(m[0], m[1], m[2]) for m in out]
        assert codes == [
            (4, "-1", "RpcFrameworkError"), (4, "a", "RpcFrameworkError"), (4, "-1", "RpcFrameworkError"),
            (4, "b", "MessageTypeNotSupported"), (4, "-1", "RpcFrameworkError"), (4, "c", "NotImplemented"),
            (4, "d", "NotImplemented"), (4, "e", "FormatViolation"), (4, "f", "TypeConstraintViolation"),
            (4, "g", "ProtocolError"), (4, "h", "FormatViolation"), (4, "i", "NotSupported"),
            (4, "-1", "RpcFrameworkError"),
        ]  # fmt: skip
        # an answer to nothing is ignored; the connection and the agent carry on
        last = await trio.to_thread.run_sync(_raw_exchange, r.url, frames[-2:])
        assert last[0][:2] == [3, "j"] and "currentTime" in last[0][2]
        st = await r.station()  # a real station still works afterwards
        await r.d.act("charging.profile.set", plan(), origin(), now_ms())
        assert st.calls("SetChargingProfile")

    run(tmp_path, go)


def test_basic_auth_security_profile_1(tmp_path: Path) -> None:
    async def go(r: Rig) -> None:
        bad = await r.station(password="wrong", ready=False)
        await until(lambda: not bad.alive(), what="the wrong password to be refused")
        assert bad.proc is not None and bad.proc.returncode == 2 and r.d.state.booted_at is None

        def handshake(headers: dict[str, str], protocols: list[str]) -> int:
            try:
                with wsclient.connect(r.url + "/CP1", subprotocols=protocols, additional_headers=headers, open_timeout=5):  # type: ignore[arg-type]
                    return 101
            except InvalidStatus as e:
                return e.response.status_code

        good = {"Authorization": "Basic " + base64.b64encode(b"CP1:s3cret").decode()}
        other_id = {"Authorization": "Basic " + base64.b64encode(b"CP2:s3cret").decode()}
        assert await trio.to_thread.run_sync(handshake, {}, ["ocpp2.0.1"]) == 401
        assert await trio.to_thread.run_sync(handshake, other_id, ["ocpp2.0.1"]) == 401
        assert await trio.to_thread.run_sync(handshake, good, ["ocpp1.6"]) == 400
        ok = await r.station(password="s3cret")
        await r.d.act("charging.profile.set", plan(), origin(), now_ms())
        assert ok.calls("SetChargingProfile")

    run(tmp_path, go, password="s3cret")


CHAIN = "ads-test"


def test_signed_commands_through_the_agent(tmp_path: Path) -> None:
    """A provider's signed command → Agent.handle → the station → the signed receipt."""
    t = now_ms()
    grant = {"id": GID, "issuer": OWNER.pub, "grantee": PROV.pub, "scopes": ["charging.profile", "meter.read"],
             "not_before": t - 60_000, "not_after": t + 3_600_000, "limits": {"max_power_w": 11_000},
             "exclusive": False, "priority": 10, "redelegate": 0, "parent": None, "height": 5}  # fmt: skip
    acl = AccessList(owner=OWNER.pub, grants=(grant,), height=7, header_time_ms=t, staleness_limit_ms=600_000)
    seq = iter(range(1, 100))

    def cmd(action: str, params: dict[str, Any]) -> bytes:
        now = now_ms()
        return sign_command(PROV, CHAIN, cp=CP.pub, action=action, params=params, seq=next(seq), issued_at=now,
                            expires_at=now + 60_000, grant=GID)  # fmt: skip

    async def go(r: Rig) -> None:
        store = AgentStore(tmp_path / "state")
        agent = Agent(key=CP, chain_id=CHAIN, store=store, driver=r.d, acl=lambda: acl, trusted_height=lambda: 7)
        try:
            st = await r.station()
            raw = cmd("charging.profile.set", plan(limit=7400))
            v, rc = await agent.handle(raw, now_ms())
            check_receipt(CP.pub, CHAIN, raw, rc)
            assert rc["receipt"]["code"] == "ok" and rc["receipt"]["data"]["stack_level"] == 10
            assert st.calls("SetChargingProfile")[0]["chargingProfile"]["stackLevel"] == 10
            over = cmd("charging.profile.set", plan(limit=11_001))  # refused before the station hears of it
            assert (await agent.handle(over, now_ms()))[1]["receipt"]["code"] == "limits"
            assert len(st.calls("SetChargingProfile")) == 1
            agent.retain(now_ms())  # the grant is still there: nothing cleared
            assert len(r.d.book.all()) == 1
            st.stop()
            await until(lambda: r.d._link is None, what="the disconnect")
            st2 = await r.station("--reject-profiles")
            raw = cmd("charging.profile.set", plan(2))
            v, rc = await agent.handle(raw, now_ms())
            assert rc["receipt"]["code"] == "driver_error" and "Rejected" in rc["receipt"]["data"]["message"]
            assert st2.calls("SetChargingProfile")
            entries, _ = store.read(since=0, limit=10, issuer=None)
            assert [e["code"] for e in entries] == ["ok", "limits", "driver_error"]
            assert r.d.book.all() == []  # the rejecting station refused the restored plan too: dropped
        finally:
            store.close()

    run(tmp_path, go)


def test_tls_security_profile_2(tmp_path: Path) -> None:
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    t = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(t - dt.timedelta(minutes=5)).not_valid_after(t + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async def main() -> None:
        d = OcppDriver(OcppOptions(listen="127.0.0.1:0", password="pw", tls_cert=str(tmp_path / "cert.pem"),
                                   tls_key=str(tmp_path / "key.pem")))  # fmt: skip
        async with trio.open_nursery() as n:
            port = await n.start(d.serve, None, lambda b: None)

            def boot(password: str) -> Any:
                hdr = {"Authorization": "Basic " + base64.b64encode(f"CP1:{password}".encode()).decode()}
                try:
                    with wsclient.connect(f"wss://localhost:{port}/CP1", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                          additional_headers=hdr, ssl=ctx, open_timeout=5) as ws:  # fmt: skip
                        ws.send(json.dumps([2, "1", "BootNotification", {"reason": "PowerUp", "chargingStation":
                                                                          {"model": "M", "vendorName": "V"}}]))  # fmt: skip
                        return json.loads(ws.recv(timeout=5))
                except InvalidStatus as e:
                    return e.response.status_code

            assert await trio.to_thread.run_sync(boot, "nope") == 401
            ans = await trio.to_thread.run_sync(boot, "pw")
            assert ans[0] == 3 and ans[2]["status"] == "Accepted" and d.state.vendor == "V"
            n.cancel_scope.cancel()

    trio.run(main)


def test_ocpp_config_is_checked(tmp_path: Path) -> None:
    from chargepoint_agent.config import AgentConfig, ConfigError, load_config, write_config

    base = {"home": tmp_path, "nodes": ["http://127.0.0.1:1"], "chain_id": "x", "driver": "ocpp201"}
    path = write_config(AgentConfig(**base, ocpp_listen="127.0.0.1:9000", ocpp_basic_auth_password="pw"))  # type: ignore[arg-type]
    assert path.stat().st_mode & 0o077 == 0  # it holds the station's password
    cfg = load_config(tmp_path)
    assert (cfg.ocpp_listen, cfg.ocpp_basic_auth_password, cfg.ocpp_call_timeout_ms) == ("127.0.0.1:9000", "pw", 10_000)
    for bad in ({"ocpp_listen": ""}, {"ocpp_listen": "h:1", "ocpp_tls_cert": "c.pem"},
                {"ocpp_listen": "h:1", "ocpp_tls_cert": "c.pem", "ocpp_tls_key": "k.pem"},
                {"ocpp_listen": "h:1", "ocpp_call_timeout_ms": 0}):  # fmt: skip
        path.unlink()
        write_config(AgentConfig(**base, **bad))  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"\[ocpp\]"):
            load_config(tmp_path)
