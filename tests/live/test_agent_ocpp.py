"""The agent as an OCPP 2.0.1 local controller, end to end on a real devnet: `chargepoint-agent
init --driver ocpp201`, a real agent process, the `ocpp` package's v201 ChargePoint as the station
in its own process, and a provider's signed commands turned into the OCPP messages the station
already understands — then a revocation on the ledger clearing the provider's plan on the station."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing.agentproc import AgentProcess
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.testnet import free_port
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet.commands import check_receipt, sign_command
from chargepoint_agent.testing.ocpp_station import StationProcess

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "ocpp", validators=1) as n:
        yield n


def cli(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", *args, "--json"], capture_output=True,
                       text=True, timeout=120, env=ENV)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def wait(pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_ocpp_station_behind_the_agent(net: Network, tmp_path: Path) -> None:
    chain, api = net.info["chain_id"], net.apis[0]
    home = tmp_path / "cp"
    ocpp_port = free_port()
    out = cli("init", "--home", str(home), "--node", api, "--test-manufacturer", net.info["device_ca"],
              "--listen", f"127.0.0.1:{free_port()}", "--driver", "ocpp201", "--ocpp-listen", f"127.0.0.1:{ocpp_port}",
              "--ocpp-password", "station-secret")  # fmt: skip
    cp = bytes.fromhex(out["cp"])
    cfg = home / "config.toml"
    text = cfg.read_text()
    assert 'kind = "ocpp201"' in text and (cfg.stat().st_mode & 0o077) == 0  # it holds the password
    cfg.write_text(text.replace("poll_ms = 10000", "poll_ms = 1000").replace("call_timeout_ms = 10000", "call_timeout_ms = 3000"))
    owner, prov = SigningKey.generate(), SigningKey.generate()
    cli("propose-owner", "--home", str(home), "--owner", owner.pub.hex())
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    nonce = {"n": 0}

    def tx(ttype: str, body: dict[str, Any]) -> dict[str, Any]:
        nonce["n"] += 1
        with net.client(0) as c:
            r = c.submit_tx(make_envelope(chain, ttype, owner, nonce["n"], body), wait_commit=True)
        assert r["ok"], r
        return r

    tx("attest", issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000))
    tx("cp.accept", {"cp": cp})
    gid = bytes.fromhex(tx("grant", {
        "cp": cp, "grantee": prov.pub, "scopes": ["charging.profile", "charging.control", "meter.read"],
        "not_before": now - 60_000, "not_after": now + 3_600_000, "limits": {"max_power_w": 11_000},
        "exclusive": False, "priority": 10, "redelegate": 0, "parent": None})["txid"])[:16]  # fmt: skip
    agent = AgentProcess(home)
    stations: list[StationProcess] = []

    def station(n: int) -> StationProcess:
        st = StationProcess(f"ws://127.0.0.1:{ocpp_port}", tmp_path / f"station{n}.jsonl", "--meter-interval", "0.2",
                            station_id="CP-OCPP-1", password="station-secret").start()  # fmt: skip
        stations.append(st)
        wait(lambda: len(st.calls("ClearChargingProfile")) >= 2, what="the station to connect")  # the restore ran
        return st

    seq = {"n": 0}

    def send(action: str, params: dict[str, Any]) -> dict[str, Any]:
        seq["n"] += 1
        t = int(time.time() * 1000)
        raw = sign_command(prov, chain, cp=cp, action=action, params=params, seq=seq["n"], issued_at=t,
                           expires_at=t + 60_000, grant=gid)  # fmt: skip
        status, ans = agent.send(raw)
        assert status == 200, ans
        return check_receipt(cp, chain, raw, ans)

    try:
        agent.start()
        agent.wait(lambda s: len(s["grants"]) == 1)
        st = station(1)
        t = int(time.time() * 1000)
        plan = {"profile": {"id": 1, "valid_from": t - 1000, "valid_to": t + 7_200_000, "periods": [[0, 7400]]}}
        r = send("charging.profile.set", plan)
        assert r["code"] == "ok" and r["data"]["stack_level"] == 10, r
        [req] = st.calls("SetChargingProfile")
        cpf = req["chargingProfile"]
        assert cpf["stackLevel"] == 10 and cpf["chargingProfilePurpose"] == "TxDefaultProfile"
        assert cpf["chargingSchedule"][0]["chargingRateUnit"] == "W"
        assert cpf["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 7400}]
        # a session runs under the plan, and meter.read reports the station's MeterValues
        r = send("charging.start", {"connector": 1})
        assert r["code"] == "ok" and r["data"]["session"], r
        time.sleep(1.0)
        r = send("meter.read", {})
        assert r["code"] == "ok" and r["data"]["power_w"] == 7400 and r["data"]["energy_wh"] >= 1, r
        r = send("charging.stop", {})
        assert r["code"] == "ok" and len(r["data"]["stopped"]) == 1, r
        assert send("charging.stop", {})["code"] == "driver_error"  # nothing left to stop
        # the station reconnects: the current plan is set again
        st.stop()
        st2 = station(2)
        wait(lambda: st2.calls("SetChargingProfile"), what="the plan restored")
        assert st2.calls("SetChargingProfile")[0]["chargingProfile"]["stackLevel"] == 10
        # the owner revokes the grant: the provider's plan leaves the station within 2 s of the commit
        tx("revoke", {"cp": cp, "grant": gid})
        t0 = time.monotonic()
        sid = cpf["id"]
        wait(lambda: {"chargingProfileId": sid} in st2.calls("ClearChargingProfile"), timeout=2.0,
             what="ClearChargingProfile after the revocation")  # fmt: skip
        assert time.monotonic() - t0 < 2.0
        assert send("charging.profile.set", plan)["code"] == "no_grant"
        assert (home / "state" / "ocpp.log").stat().st_size > 0
    finally:
        for s in stations:
            s.stop()
        agent.stop()
