"""The OCPP 2.0.1 bridge end to end on loopback (DESIGN §7, §8; docs/ocpp.md): a provider's
signed `charging.profile.set` POSTed to a real agent process (`--driver ocpp201`, 1-validator
devnet for its access list) → the SetChargingProfile frame at the station (the `ocpp` package's
v201 ChargePoint in its own process, logging each frame with its arrival time) → the station's
Accepted → the signed receipt back.

    .venv/bin/python bench/bench_ocpp.py [--commands 300]

Figures: POST → SetChargingProfile at the station (the station's clock, same machine) and POST →
receipt (the whole round: verify, durable seq and audit, the OCPP call and its answer, the
signed receipt), p50/p99 over sequential commands on one keep-alive connection. Raw limits in
the same run: Ed25519 verifications/s (bench/limits.py) and a bare WebSocket round trip on
loopback (websockets client ↔ trio-websocket echo server, the same libraries, no OCPP).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core.crypto import SigningKey  # noqa: E402
from ads_ledger.state.envelope import make_envelope  # noqa: E402
from ads_ledger.testing.agentproc import AgentProcess  # noqa: E402
from ads_ledger.testing.devnet import Network, create  # noqa: E402
from ads_ledger.testing.testnet import free_port  # noqa: E402
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list  # noqa: E402
from ads_ledger.wallet.commands import check_receipt, sign_command  # noqa: E402
from chargepoint_agent.testing.ocpp_station import StationProcess  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = SRC


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def cli(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", *args, "--json"], capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(p.stdout + p.stderr)
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def bare_ws_round_trip_us(n: int = 2000) -> list[float]:
    """A text frame there and back: websockets (sync) client ↔ trio-websocket echo server."""
    import trio
    from trio_websocket import ConnectionClosed, serve_websocket
    from websockets.sync.client import connect

    port: list[int] = []
    ready, stop = threading.Event(), threading.Event()

    async def server() -> None:
        async def echo(req: Any) -> None:
            ws = await req.accept(subprotocol="ocpp2.0.1")
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                pass

        async with trio.open_nursery() as nursery:
            srv = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
            port.append(srv.port)
            ready.set()
            while not stop.is_set():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    th = threading.Thread(target=trio.run, args=(server,), daemon=True)
    th.start()
    ready.wait(10)
    msg = json.dumps([2, "x" * 36, "SetChargingProfile", {"evseId": 0, "chargingProfile": {"id": 1}}])
    out = []
    with connect(f"ws://127.0.0.1:{port[0]}/CP", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        for _ in range(n):
            t0 = time.perf_counter()
            ws.send(msg)
            ws.recv()
            out.append((time.perf_counter() - t0) * 1e6)
    stop.set()
    th.join(5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=300)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ocpp-"))
    create(root / "net", 1)
    net = Network(root / "net")
    agent: AgentProcess | None = None
    station: StationProcess | None = None
    try:
        net.start_all()
        net.wait_height(2, timeout=60)
        chain = net.info["chain_id"]
        home, ocpp_port = root / "cp", free_port()
        out = cli("init", "--home", str(home), "--node", net.apis[0], "--test-manufacturer", net.info["device_ca"],
                  "--listen", f"127.0.0.1:{free_port()}", "--driver", "ocpp201",
                  "--ocpp-listen", f"127.0.0.1:{ocpp_port}")  # fmt: skip
        cp, owner, prov = bytes.fromhex(out["cp"]), SigningKey.generate(), SigningKey.generate()
        cli("propose-owner", "--home", str(home), "--owner", owner.pub.hex())
        tl, t, nonce = load_trust_list(Path(net.info["eid"])), int(time.time() * 1000), 0
        txid = b""
        for ttype, body in (("attest", issue_attestation(tl, chain, owner.pub, issued_at=t - 60_000, expires_at=t + 86_400_000)),
                            ("cp.accept", {"cp": cp}),
                            ("grant", {"cp": cp, "grantee": prov.pub, "scopes": ["charging.profile"],
                                       "not_before": t - 60_000, "not_after": t + 3_600_000,
                                       "limits": {"max_power_w": 11_000}, "exclusive": False, "priority": 10,
                                       "redelegate": 0, "parent": None})):  # fmt: skip
            nonce += 1
            with net.client(0) as c:
                r = c.submit_tx(make_envelope(chain, ttype, owner, nonce, body), wait_commit=True)
            assert r["ok"], r
            txid = bytes.fromhex(r["txid"])
        gid = txid[:16]
        agent = AgentProcess(home)
        agent.start()
        agent.wait(lambda s: len(s["grants"]) == 1)
        station = StationProcess(f"ws://127.0.0.1:{ocpp_port}", root / "station.jsonl").start()
        deadline = time.monotonic() + 20
        while len(station.calls("ClearChargingProfile")) < 2:  # connected, booted, restore done
            assert time.monotonic() < deadline, "the station did not connect"
            time.sleep(0.05)
        sent: list[float] = []
        rtt: list[float] = []
        for i in range(1, args.commands + 1):
            now = int(time.time() * 1000)
            prof = {"profile": {"id": 1 + i % 4, "valid_from": now, "valid_to": now + 3_600_000,
                                "periods": [[0, 4000 + i]]}}  # fmt: skip
            raw = sign_command(prov, chain, cp=cp, action="charging.profile.set", params=prof, seq=i, issued_at=now,
                               expires_at=now + 60_000, grant=gid)  # fmt: skip
            t0 = time.time()
            p0 = time.perf_counter()
            st, ans = agent.send(raw)
            rtt.append((time.perf_counter() - p0) * 1000)
            sent.append(t0)
            assert st == 200 and check_receipt(cp, chain, raw, ans)["code"] == "ok", ans
        arrivals = {}
        for e in station.entries():
            m = e.get("msg")
            if e["dir"] == "in" and isinstance(m, list) and len(m) == 4 and m[2] == "SetChargingProfile":
                lim = m[3]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
                arrivals.setdefault(int(lim) - 4000, e["t"])
        to_station = [(arrivals[i] - sent[i - 1]) * 1000 for i in range(1, args.commands + 1)]
        from limits import measure_limits  # type: ignore[import-not-found]

        lim = measure_limits(seconds=0.5)
        ws = bare_ws_round_trip_us()
        rows = {"post_to_set_charging_profile_ms": to_station, "post_to_receipt_ms": rtt}
        for name, xs in rows.items():
            print(json.dumps({"bench": "ocpp", "case": name, "n": len(xs), "p50_ms": round(pct(xs, 0.5), 2),
                              "p99_ms": round(pct(xs, 0.99), 2), "mean_ms": round(statistics.mean(xs), 2)}))  # fmt: skip
        print(json.dumps({"bench": "ocpp", "case": "raw_limits", **lim, "bare_ws_rtt_p50_us": round(pct(ws, 0.5), 1),
                          "bare_ws_rtt_p99_us": round(pct(ws, 0.99), 1), "load_avg_1m": os.getloadavg()[0]}))  # fmt: skip
        print(f"\nOCPP bridge, {args.commands} signed charging.profile.set, sequential, loopback")
        for name, xs in rows.items():
            print(f"  {name:34} p50 {pct(xs, 0.5):7.2f} ms  p99 {pct(xs, 0.99):7.2f} ms")
        print(f"  raw: Ed25519 {lim['ed25519_verify_per_s']:,}/s; bare WebSocket round trip p50 {pct(ws, 0.5):.0f} µs, "
              f"p99 {pct(ws, 0.99):.0f} µs; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    finally:
        if station is not None:
            station.stop()
        if agent is not None:
            agent.stop()
        net.stop_all()


if __name__ == "__main__":
    main()
