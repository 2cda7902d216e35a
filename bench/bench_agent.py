"""Charge-point agent benchmarks (DESIGN §7, §8) on loopback devnets: real node processes, a real
agent process (`chargepoint-agent run`), real signed commands over HTTP.

  idle        resident memory (VmRSS) and CPU of an idle agent over `--idle` seconds (it keeps
              following /events and polling), from /proc; again after the command load
  revoke      revocation latency: POST /txs of a `revoke` (no wait) → the first `no_grant`
              receipt of the provider's commands, sent every ~20 ms (`--trials`)
  commands    POST /commands end to end over one keep-alive connection (`--commands` accepted
              `meter.read` by a grantee), beside in-process `check_command` and one Ed25519 verify
  coldsync    a fresh agent home trusting block 1 runs ONE `AclSync.refresh()` in-process against
              a chain `--blocks` high (`--cold-validators`, default 1, a stable set; blocks made at
              full speed, heartbeat 0): round trips, wire bytes (through a counting TCP proxy), CPU
              ms, headers fetched; then one warm refresh a few blocks later. Primary only: each
              witness a deployed agent lists adds a commit and a validator-set read per new header

  .venv/bin/python bench/bench_agent.py [--mode all|idle|revoke|commands|coldsync]
      [--trials 50] [--commands 2000] [--idle 60] [--blocks 10000] [--cold-validators 1]

idle, revoke and commands share one 4-validator devnet and one agent process (config defaults:
poll_ms 10 s, the agent wakes on /events naming its charge point). One JSON line per figure, then
a human table, with the raw limits of bench/limits.py measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey, sign_bytes, verify
from ads_ledger.state.envelope import make_envelope, parse_envelope
from ads_ledger.testing.agentproc import AgentProcess
from ads_ledger.testing.devnet import Network, create
from ads_ledger.testing.testnet import free_port
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet.commands import check_receipt, sign_command
from limits import limits_or_error as limits  # type: ignore[import-not-found]  # bench/limits.py
from limits import pct

SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = SRC  # the agent and CLI subprocesses run this tree's code
ENV = dict(os.environ)


def now_ms() -> int:
    return int(time.time() * 1000)


def cli(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", *args, "--json"], capture_output=True,
                       text=True, timeout=120, env=ENV, check=False)  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(p.stdout + p.stderr)
    return json.loads(p.stdout)  # type: ignore[no-any-return]


class Setup:
    """A 4-validator devnet, an agent owned by an attested owner, the owner's tx helper."""

    def __init__(self, root: Path, profile: Path | None = None) -> None:
        create(root / "net", 4)
        self.net = Network(root / "net")
        self.agent: AgentProcess | None = None
        self.net.start_all()
        try:
            self.net.wait_height(2, timeout=60)
            self.chain = self.net.info["chain_id"]
            home = root / "cp"
            out = cli("init", "--home", str(home), "--node", self.net.apis[0], "--node", self.net.apis[1],
                      "--node", self.net.apis[2], "--test-manufacturer", self.net.info["device_ca"],
                      "--listen", f"127.0.0.1:{free_port()}")  # fmt: skip
            self.cp = bytes.fromhex(out["cp"])
            self.owner = SigningKey.generate()
            self.nonce = 0
            cli("propose-owner", "--home", str(home), "--owner", self.owner.pub.hex())
            tl = load_trust_list(Path(self.net.info["eid"]))
            t = now_ms()
            self.tx("attest", issue_attestation(tl, self.chain, self.owner.pub, issued_at=t - 60_000,
                                                expires_at=t + 86_400_000), wait=True)  # fmt: skip
            self.tx("cp.accept", {"cp": self.cp}, wait=True)
            self.agent = AgentProcess(home, profile)
            self.agent.start()
            self.agent.wait(lambda s: s["owner"] == self.owner.pub.hex())
            self.node = self.net.client(0)
        except BaseException:
            self.close()
            raise

    def tx(self, ttype: str, body: dict[str, Any], wait: bool = False) -> bytes:
        """Submit one owner tx; returns its txid."""
        self.nonce += 1
        raw = make_envelope(self.chain, ttype, self.owner, self.nonce, body)
        with self.net.client(0) as c:
            r = c.submit_tx(raw, wait_commit=wait)
        if not r.get("ok", True) and "txid" not in r:
            raise RuntimeError(f"{ttype} refused: {r}")
        return parse_envelope(raw).txid(self.chain)

    def grant_body(self, grantee: bytes) -> dict[str, Any]:
        t = now_ms()
        return {"cp": self.cp, "grantee": grantee, "scopes": ["meter.read"], "not_before": t - 60_000,
                "not_after": t + 3_600_000, "limits": {}, "exclusive": False, "priority": 10, "redelegate": 0,
                "parent": None}  # fmt: skip

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.net.stop_all()


def bench_idle(s: Setup, seconds: float, label: str) -> dict[str, Any]:
    assert s.agent is not None
    h0 = s.agent.status().get("acl_height")
    rss0, cpu0 = s.agent.proc_stats()
    t0 = time.monotonic()
    time.sleep(seconds)
    rss1, cpu1 = s.agent.proc_stats()
    dt = time.monotonic() - t0
    st = s.agent.status()
    return {"figure": "agent_idle", "when": label, "seconds": round(dt, 1), "rss_mb": round(rss1 / 1024, 1),
            "rss_mb_start": round(rss0 / 1024, 1), "cpu_s": round(cpu1 - cpu0, 3),
            "cpu_pct_one_core": round(100 * (cpu1 - cpu0) / dt, 2), "acl_height_start": h0,
            "acl_height_end": st.get("acl_height"), "chain_height_end": s.net.heights()[0]}  # fmt: skip


def bench_revoke(s: Setup, trials: int, batch: int = 10) -> dict[str, Any]:
    """Grant `batch` providers at once, wait until the agent lists them, then for each: POST the
    revoke (no wait) and send that provider's command every ~20 ms until it gets no_grant."""
    assert s.agent is not None
    lat: list[float] = []
    sent_cmds = 0
    while len(lat) < trials:
        k = min(batch, trials - len(lat))
        provs = [SigningKey.generate() for _ in range(k)]
        gids = []
        for i, p in enumerate(provs):
            gids.append(s.tx("grant", s.grant_body(p.pub), wait=(i == k - 1))[:16])
        s.agent.wait(lambda st, k=k: len(st["grants"]) == k, timeout=30)
        for p, gid in zip(provs, gids):
            seq = 0

            def cmd(p: SigningKey = p, gid: bytes = gid) -> bytes:
                nonlocal seq
                seq += 1
                t = now_ms()
                return sign_command(p, s.chain, cp=s.cp, action="meter.read", params={}, seq=seq, issued_at=t,
                                    expires_at=t + 60_000, grant=gid)  # fmt: skip

            raw = cmd()
            _, ans = s.agent.send(raw)
            code = check_receipt(s.cp, s.chain, raw, ans)["code"]
            if code != "ok":
                raise RuntimeError(f"before the revoke the provider got {code}")
            nxt = cmd()  # signed ahead: the loop measures the agent, not our signing
            t0 = time.monotonic()
            s.nonce += 1
            s.node.submit_tx(make_envelope(s.chain, "revoke", s.owner, s.nonce, {"cp": s.cp, "grant": gid}))
            while True:
                t1 = time.monotonic()
                _, ans = s.agent.send(nxt)
                sent_cmds += 1
                code = check_receipt(s.cp, s.chain, nxt, ans)["code"]
                if code == "no_grant":
                    lat.append((time.monotonic() - t0) * 1000)
                    break
                if code != "ok":
                    raise RuntimeError(f"unexpected receipt {code}")
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("the revocation did not reach the agent in 30 s")
                nxt = cmd()
                time.sleep(max(0.0, 0.020 - (time.monotonic() - t1)))
    return {"figure": "revocation_latency_ms", "trials": len(lat), "p50_ms": round(pct(lat, 0.5), 1),
            "p99_ms": round(pct(lat, 0.99), 1), "max_ms": round(max(lat), 1), "min_ms": round(min(lat), 1),
            "mean_ms": round(statistics.fmean(lat), 1), "commands_sent": sent_cmds, "validators": 4,
            "poll_ms": 10_000, "target_p99_ms": 1500}  # fmt: skip


def bench_commands(s: Setup, n: int) -> dict[str, Any]:
    from chargepoint_agent.verify import AccessList, check_command

    assert s.agent is not None
    prov = SigningKey.generate()
    gid = s.tx("grant", s.grant_body(prov.pub), wait=True)[:16]
    s.agent.wait(lambda st: any(g["id"] == gid.hex() for g in st["grants"]), timeout=30)
    t = now_ms()
    cmds = [sign_command(prov, s.chain, cp=s.cp, action="meter.read", params={}, seq=i + 1, issued_at=t,
                         expires_at=t + 240_000, grant=gid) for i in range(n)]  # fmt: skip
    lat: list[float] = []
    codes: dict[str, int] = {}
    t_all = time.monotonic()
    for raw in cmds:
        t0 = time.perf_counter()
        _, ans = s.agent.send(raw)
        lat.append((time.perf_counter() - t0) * 1e6)
        code = ans.get("receipt", {}).get("code") if isinstance(ans.get("receipt"), dict) else None
        codes[str(code)] = codes.get(str(code), 0) + 1
    wall = time.monotonic() - t_all
    ok_check = check_receipt(s.cp, s.chain, cmds[-1], ans)["code"]  # the last receipt, fully checked
    http_row = {"figure": "post_commands_us", "commands": n, "codes": codes, "last_receipt_checked": ok_check,
                "p50_us": round(pct(lat, 0.5), 1), "p99_us": round(pct(lat, 0.99), 1),
                "max_us": round(max(lat), 1), "per_s": round(n / wall, 1), "connection": "one keep-alive"}  # fmt: skip
    # in process: the same kind of command against an access list holding this grant
    grants = [{"id": gid, "issuer": s.owner.pub, "grantee": prov.pub, "scopes": ["meter.read"],
               "not_before": t - 60_000, "not_after": t + 3_600_000, "limits": {}, "exclusive": False,
               "priority": 10, "redelegate": 0, "parent": None, "height": 1}]  # fmt: skip
    acl = AccessList(s.owner.pub, tuple(grants), 10, now_ms(), 60_000)
    last = {"seq": 0}
    inproc: list[float] = []
    for raw in cmds:
        t0 = time.perf_counter()
        v = check_command(raw, chain_id=s.chain, cp=s.cp, acl=acl, now_ms=t + 1, last_seq=lambda _: last["seq"])
        inproc.append((time.perf_counter() - t0) * 1e6)
        assert v.ok, v
        last["seq"] = v.cmd["seq"]  # type: ignore[index]
    c0 = codec.decode(cmds[0])
    msg, sig = sign_bytes("ads/cmd/1", s.chain, c0["cmd"]), c0["sig"]
    ver = []
    for _ in range(n):
        t0 = time.perf_counter()
        verify(prov.pub, sig, msg)
        ver.append((time.perf_counter() - t0) * 1e6)
    http_row.update(check_command_p50_us=round(pct(inproc, 0.5), 1), check_command_p99_us=round(pct(inproc, 0.99), 1),
                    ed25519_verify_p50_us=round(pct(ver, 0.5), 1))  # fmt: skip
    # where the end-to-end time goes: Agent.command in process (verify, durable seq + audit entry,
    # driver, signed receipt, audit completion) on the shipped store (LMDB, fsync on every write
    # transaction) and on the same store without fsync
    for label, sync in (("agent_command_fsync", True), ("agent_command_nosync", False)):
        xs = _agent_command_us(s, prov, gid, cmds, acl, t, sync)
        http_row[label + "_p50_us"] = round(pct(xs, 0.5), 1)
        http_row[label + "_p99_us"] = round(pct(xs, 0.99), 1)
    return http_row


def _agent_command_us(s: Setup, prov: SigningKey, gid: bytes, cmds: list[bytes], acl: Any, t: int,
                      sync: bool) -> list[float]:  # fmt: skip
    """Agent.command on a fresh store under /tmp, the sim driver, one call per timing (µs)."""
    import lmdb

    from chargepoint_agent.agent import Agent
    from chargepoint_agent.drivers.sim import SimCharger
    from chargepoint_agent.store import AgentStore

    d = tempfile.mkdtemp(prefix="agent-store-", dir="/tmp")
    try:
        store = AgentStore(d)
        if not sync:  # same environment, reopened without fsync (a diagnostic, not a configuration)
            store.env.close()
            store.env = lmdb.open(d, max_dbs=4, map_size=1 << 30, sync=False, metasync=False, subdir=True)
            store._seq, store._audit, store._meta = (store.env.open_db(b"seq"), store.env.open_db(b"audit"),
                                                     store.env.open_db(b"meta"))  # fmt: skip
        key = SigningKey.generate()
        # the agent's own key stands in for s.cp: the commands name s.cp, so verify against that cp
        agent = Agent(key=key, chain_id=s.chain, store=store, driver=SimCharger(), acl=lambda: acl,
                      trusted_height=lambda: 10)  # fmt: skip
        agent.cp = s.cp
        out = []
        for raw in cmds:
            t0 = time.perf_counter()
            v, _ = agent.command(raw, t + 1)
            out.append((time.perf_counter() - t0) * 1e6)
            assert v.ok, v
        store.close()
        return out
    finally:
        shutil.rmtree(d, ignore_errors=True)


class CountingProxy:
    """A loopback TCP proxy in front of one node that counts connections and bytes each way."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.up = upstream
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.sent = self.received = self.conns = 0  # sent = client → node, received = node → client
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(self.up)
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, up: bool) -> None:
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    if up:
                        self.sent += len(d)
                    else:
                        self.received += len(d)
                b.sendall(d)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.lsock.close()


def bench_coldsync(root: Path, blocks: int, validators: int = 1) -> dict[str, Any]:
    """A `validators`-validator chain `blocks` high (a stable set), the charge point owned with one grant (so the record is a
    real inclusion proof); a fresh agent store trusting block 1 runs one refresh."""
    from ads_ledger.light.trust import TrustOptions
    from ads_ledger.node.config import load_key
    from ads_ledger.state.records import cp_key
    from ads_ledger.testing.trustlist import issue_device_attestation, load_device_ca
    from chargepoint_agent.config import AgentConfig
    from chargepoint_agent.store import AgentStore
    from chargepoint_agent.sync import AclSync

    info = create(root / "cold", validators, params={"heartbeat_ms": 0})
    net = Network(root / "cold")
    net.start_all()
    try:
        net.wait_height(2, timeout=60)
        chain = info["chain_id"]
        tl = load_trust_list(Path(info["eid"]))
        dca = load_device_ca(Path(info["device_ca"]))
        owner, dev, prov = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
        t = now_ms()
        att = issue_attestation(tl, chain, owner.pub, issued_at=t - 60_000, expires_at=t + 86_400_000)
        dsig = dev.sign(sign_bytes("ads/own/1", chain, {"cp": dev.pub, "owner": owner.pub, "epoch": 0}))
        dev_att = issue_device_attestation(dca, dev.pub, issued_at=t - 86_400_000)
        g = {"cp": dev.pub, "grantee": prov.pub, "scopes": ["meter.read"], "not_before": t - 60_000,
             "not_after": t + 86_400_000, "limits": {}, "exclusive": False, "priority": 1, "redelegate": 0,
             "parent": None}  # fmt: skip
        # no wait=commit: at full block speed the node answers slowly; the record is checked below
        with net.client(0, timeout_s=60) as c:
            for nonce, (ttype, body) in enumerate([("attest", att), ("cp.claim", {"cp": dev.pub, "device": dev_att,
                                                   "device_sig": dsig}), ("grant", g)], start=1):  # fmt: skip
                c.submit_tx(make_envelope(chain, ttype, owner, nonce, body))
        t_build = time.monotonic()
        net.wait_height(blocks, timeout=3600)
        build_s = time.monotonic() - t_build
        # back to a 1 s heartbeat so the chain does not compete for the cores during the measurement
        gov = [load_key(Path(p)) for p in info["gov"]]
        slow = {"action": "params.set", "args": {"heartbeat_ms": 1000}}
        with net.client(0, timeout_s=60) as c:
            c.submit_tx(make_envelope(chain, "gov", gov[0], 1, slow, gov[1:2]), wait_commit=True)
            header1, _ = c.commit(1)
        time.sleep(1.5)
        api = net.apis[0].split("://")[-1]
        host, _, port = api.rpartition(":")
        proxy = CountingProxy((host, int(port)))
        store = AgentStore(root / "cold-agent")
        sync = AclSync(cp=dev.pub, chain_id=chain, nodes=[f"http://127.0.0.1:{proxy.port}"], store=store,
                       opts=TrustOptions(trusting_period_ms=AgentConfig.trusting_period_ms), trust_height=1, trust_hash=header1.block_id())  # fmt: skip
        trips: list[str] = []
        for node in sync.nodes:
            orig = node.c.request

            def counted(method: str, path: str, *a: Any, _o: Any = orig, **k: Any) -> Any:
                out = _o(method, path, *a, **k)
                trips.append(f"{method} {path.split('?')[0]} ({len(out[2])} B body)")
                return out

            node.c.request = counted  # type: ignore[method-assign]
        try:
            cpu0, th0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
            rep = sync.refresh(now_ms())
            cpu1, th1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
            time.sleep(0.2)  # let the proxy's pumps account the last bytes
            acl = sync.acl
            assert acl is not None and acl.owner == owner.pub and len(acl.grants) == 1, acl
            # the same against a warm client (trusted state at the tip minus a few blocks): the steady-state round
            trips_cold, sent_cold, recv_cold = list(trips), proxy.sent, proxy.received
            time.sleep(2.5)
            trips.clear()
            s0, r0 = proxy.sent, proxy.received
            th2 = time.thread_time()
            rep2 = sync.refresh(now_ms())
            th3 = time.thread_time()
            time.sleep(0.2)
            warm = {"round_trips": len(trips), "bytes": proxy.sent - s0 + proxy.received - r0,
                    "cpu_ms": round((th3 - th2) * 1000, 1), "from_height": rep.height, "to_height": rep2.height,
                    "requests": trips[:]}  # fmt: skip
        finally:
            sync.close()
            store.close()
            proxy.close()
        proof_key = cp_key(dev.pub)
        return {"figure": "cold_sync_one_refresh", "chain_height": rep.height, "trusted_from": 1,
                "headers_fetched": rep.fetches, "round_trips": len(trips_cold), "requests": trips_cold,
                "connections": proxy.conns, "bytes_total": sent_cold + recv_cold, "bytes_sent": sent_cold,
                "bytes_received": recv_cold, "cpu_ms_thread": round((th1 - th0) * 1000, 1),
                "cpu_ms_process": round((cpu1 - cpu0) * 1000, 1), "wall_ms": round((w1 - w0) * 1000, 1),
                "validators": validators, "blocks_built_s": round(build_s, 1), "record_key_len": len(proof_key),
                "warm_refresh": warm, "aims": {"round_trips": 1, "bytes": 4096}}  # fmt: skip
    finally:
        net.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="all", choices=["all", "idle", "revoke", "commands", "coldsync"])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true",
                    help="run the agent under cProfile (main thread: HTTP + commands) and print its top functions")
    ap.add_argument("--cold-validators", type=int, default=1, help="validators of the cold-sync chain")
    a = ap.parse_args()
    lim = limits()
    root = Path(tempfile.mkdtemp(prefix="ads-bench-agent-"))
    results: list[dict[str, Any]] = []

    def done(r: dict[str, Any]) -> None:
        r["limits"] = lim
        r["loadavg_1m"] = round(os.getloadavg()[0], 2)
        results.append(r)
        print(json.dumps(r, sort_keys=True), flush=True)

    try:
        if a.mode in ("all", "idle", "revoke", "commands"):
            prof = root / "agent.prof" if a.profile else None
            s = Setup(root, prof)
            try:
                if a.mode in ("all", "idle"):
                    done(bench_idle(s, a.idle, "after start"))
                if a.mode in ("all", "revoke"):
                    done(bench_revoke(s, a.trials))
                if a.mode in ("all", "commands"):
                    done(bench_commands(s, a.commands))
                if a.mode == "all":
                    done(bench_idle(s, min(a.idle, 20.0), "after the revoke and command load"))
            finally:
                s.close()
            if prof is not None and prof.exists():
                import pstats

                print("\nagent process profile (cProfile, main thread), top by internal time:", file=sys.stderr)
                pstats.Stats(str(prof), stream=sys.stderr).sort_stats("tottime").print_stats(18)
        if a.mode in ("all", "coldsync"):
            done(bench_coldsync(root, a.blocks, a.cold_validators))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    ed = lim.get("ed25519_verify_per_s")
    print(f"\ncharge-point agent (raw Ed25519 {ed} verify/s, load average {load[0]:.2f})")
    for r in results:
        f = r["figure"]
        if f == "agent_idle":
            print(f"  idle agent ({r['when']}), {r['seconds']} s: RSS {r['rss_mb']} MB, CPU {r['cpu_pct_one_core']}% "
                  f"of one core — aims ≤ 40 MB, ≤ 1 %")  # fmt: skip
        elif f == "revocation_latency_ms":
            print(f"  revocation → no_grant, {r['trials']} trials: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                  f"max {r['max_ms']} ms — target p99 ≤ 1500 ms")  # fmt: skip
        elif f == "post_commands_us":
            print(f"  POST /commands, {r['commands']} sequential, keep-alive: p50 {r['p50_us']} µs, p99 {r['p99_us']} "
                  f"µs ({r['per_s']}/s; codes {r['codes']}); in-process check_command p50 "
                  f"{r['check_command_p50_us']} µs; one Ed25519 verify p50 {r['ed25519_verify_p50_us']} µs")  # fmt: skip
            print(f"    in-process Agent.command p50 {r['agent_command_fsync_p50_us']} µs with fsync, "
                  f"{r['agent_command_nosync_p50_us']} µs without")  # fmt: skip
        elif f == "cold_sync_one_refresh":
            print(f"  cold sync ({r['validators']} validator(s), primary only), trusted block 1 → {r['chain_height']}: {r['round_trips']} round trips, "
                  f"{r['bytes_total']:,} B on the wire, CPU {r['cpu_ms_thread']} ms, {r['headers_fetched']} "
                  f"header(s) fetched beyond the trust root — aims 1 round trip, ≤ 4 KB")  # fmt: skip
            w = r["warm_refresh"]
            print(f"    warm refresh {w['from_height']} → {w['to_height']}: {w['round_trips']} round trips, "
                  f"{w['bytes']:,} B, CPU {w['cpu_ms']} ms")  # fmt: skip


if __name__ == "__main__":
    main()
