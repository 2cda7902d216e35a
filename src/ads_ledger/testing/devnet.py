"""`ads devnet`: a local network of validator processes on loopback, a simulated charge point
with its agent, and a walkthrough.

The network is N `ads node start` subprocesses with homes from `ads testnet init`, and one
`chargepoint-agent run` (home `DIR/chargepoint`, the simulated charger, the TEST manufacturer's
attestation). The walkthrough then plays the three ADS flows through the wallet's Python API
(ads_ledger.wallet) and the HTTP APIs only, verifying every answer: eID attestation → two-way
ownership handshake (the device's side by `chargepoint-agent propose-owner`) → delegation →
proof of the access list against a header signed by the validators → the provider's signed
commands straight to the charge point (a plan accepted and in force, one over the grant's
limit and one outside its scope refused) → revocation, seen by the agent within a second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from ads_ledger.client.http import NodeClient, TransportError
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError
from ads_ledger.testing.agentproc import AgentProcess

__all__ = ["Network", "run_devnet", "walkthrough"]


class Network:
    """Validator subprocesses of one testnet directory; `stop()` ends every one of them."""

    def __init__(self, directory: Path, log: Callable[[str], None] = lambda s: None) -> None:
        self.dir = directory
        self.homes = sorted(p for p in directory.glob("node*") if p.is_dir())
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.log = log
        info = json.loads((directory / "devnet.json").read_text())
        self.info = info
        self.apis = [n["api"] for n in info["nodes"]]
        self.agent: AgentProcess | None = None
        self.agent_home = directory / "chargepoint"
        self.agent_api = ""
        self.station: Any = None  # the TEST-ONLY OCPP station process (start_agent(driver="ocpp201"))

    def start(self, i: int, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        """Start node i (`args` are extra `ads node start` options, e.g. `--byzantine NAME`)."""
        home = self.homes[i]
        logf = open(home / "node.log", "ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "ads_ledger.cli.main", "node", "start", "--home", str(home), *args],
            env={**os.environ, **(env or {})},
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches us; we stop the nodes
        )  # fmt: skip
        logf.close()

    def start_all(self) -> None:
        for i in range(len(self.homes)):
            self.start(i)

    def set_links_down(self, i: int, peers: list[int]) -> None:
        """TEST-ONLY (nodes started with ADS_TEST_HOOKS=1): sever node i's links to `peers`."""
        ids = [self.info["nodes"][j]["node_id"] for j in peers]
        tmp = self.homes[i] / "test_links.json.tmp"
        tmp.write_text(json.dumps({"down": ids}))
        tmp.replace(self.homes[i] / "test_links.json")

    def kill(self, i: int) -> None:
        """SIGKILL node i (a crash, for fault tests)."""
        p = self.procs.pop(i, None)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def stop(self, i: int, timeout: float = 10.0) -> int | None:
        """SIGTERM node i and wait; its exit status (None if it had to be killed)."""
        p = self.procs.pop(i, None)
        if p is None:
            return None
        if p.poll() is not None:
            return p.returncode
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            return None

    def stop_all(self) -> None:
        self.stop_agent()
        for i in list(self.procs):
            self.stop(i)

    def start_agent(self, timeout: float = 30.0, driver: str = "sim") -> str:
        """Init (once) and start the charge point's agent; returns its API URL. `driver`
        "ocpp201": the agent serves OCPP 2.0.1 and a TEST-ONLY station process connects to it."""
        from ads_ledger.testing.testnet import free_port

        home = self.agent_home
        if not (home / "config.toml").exists():
            nodes = [a for n in self.apis[:3] for a in ("--node", n)]
            ocpp = ["--driver", "ocpp201", "--ocpp-listen", f"127.0.0.1:{free_port()}"] if driver == "ocpp201" else []
            subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "init", "--home", str(home), *nodes,
                            "--test-manufacturer", self.info["device_ca"], "--listen", f"127.0.0.1:{free_port()}",
                            *ocpp, "--json"], check=True, capture_output=True, timeout=60)  # fmt: skip
            cfg = home / "config.toml"  # the walkthrough wants updates within a second or two
            cfg.write_text(cfg.read_text().replace("poll_ms = 10000", "poll_ms = 2000"))
        self.agent = AgentProcess(home)
        self.agent.start(timeout)
        self.agent_api = self.agent.url
        if driver == "ocpp201":
            from chargepoint_agent.testing.ocpp_station import StationProcess

            listen = (home / "config.toml").read_text().split("[ocpp]")[1].split('listen = "')[1].split('"')[0]
            self.station = StationProcess(f"ws://{listen}", home / "station.jsonl").start()
        return self.agent_api

    def stop_agent(self) -> None:
        station, self.station = self.station, None
        if station is not None:
            station.stop()
        agent, self.agent = self.agent, None
        if agent is not None:
            agent.stop()

    def client(self, i: int = 0, timeout_s: float = 10.0) -> NodeClient:
        return NodeClient(self.apis[i], timeout_s=timeout_s)

    def heights(self) -> list[int | None]:
        out: list[int | None] = []
        for url in self.apis:
            try:
                with NodeClient(url, timeout_s=2.0) as c:
                    out.append(int(c.status()["latest_height"]))
            except Exception:
                out.append(None)
        return out

    def wait_height(self, height: int, nodes: list[int] | None = None, timeout: float = 60.0) -> list[int | None]:
        """Wait until every node in `nodes` (default all) reached `height`; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        idx = nodes if nodes is not None else list(range(len(self.apis)))
        while True:
            hs = self.heights()
            if all(hs[i] is not None and hs[i] >= height for i in idx):  # type: ignore[operator]
                return hs
            dead = [i for i in idx if i in self.procs and self.procs[i].poll() is not None]
            if dead:
                tail = (self.homes[dead[0]] / "node.log").read_text()[-2000:]
                raise RuntimeError(f"node{dead[0]} exited ({self.procs[dead[0]].returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes {idx} did not reach height {height} in {timeout}s: {hs}")
            time.sleep(0.2)


def agent_get(url: str, path: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def create(directory: Path, validators: int, fast: bool = True,
           params: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """A testnet directory for `Network`; `params` go into the genesis gov/params."""
    from ads_ledger.testing.testnet import init_testnet

    if directory.exists():
        shutil.rmtree(directory)
    info = init_testnet(directory, validators, "ads-devnet", None, fast=fast, params=params)
    (directory / "devnet.json").write_text(json.dumps(info, indent=1))
    return info


def walkthrough(net: Network, say: Callable[[str], None]) -> dict[str, Any]:
    """The ownership, delegation and actuation flows end to end through the wallet's Python API
    (ads_ledger.wallet), as an owner's and a provider's software would; returns what it verified."""
    from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
    from ads_ledger.wallet import Ledger, TxRefused, Verifier, txs
    from ads_ledger.wallet.commands import check_receipt, post_command, sign_command

    chain = net.info["chain_id"]
    tl = load_trust_list(Path(net.info["eid"]))
    owner, provider = SigningKey.generate(), SigningKey.generate()
    device = json.loads((net.agent_home / "device_key.json").read_text())
    cp = bytes.fromhex(device["pub"])
    wallet = net.dir / "wallet"
    wallet.mkdir(exist_ok=True)
    for name, k in (("owner", owner), ("provider", provider)):
        (wallet / f"{name}.key").write_text(json.dumps({"pub": k.pub.hex(), "seed": k.seed.hex()}))
    ledger = Ledger(net.apis, commit_timeout_s=30.0)  # every node: a stopped one is skipped
    now = int(time.time() * 1000)
    seq = {"n": 0}

    def submit(key: SigningKey, tx: tuple[str, dict[str, Any]]) -> Any:
        out = ledger.submit(key, *tx)
        say(f"  {txs.describe(*tx, key.pub, out.txid)}: committed at height {out.height}")
        return out

    def command(key: SigningKey, action: str, params: dict[str, Any], grant: bytes | None) -> dict[str, Any]:
        seq["n"] += 1
        t = int(time.time() * 1000)
        env = sign_command(key, chain, cp=cp, action=action, params=params, seq=seq["n"], issued_at=t,
                           expires_at=t + 60_000, grant=grant)  # fmt: skip
        return check_receipt(cp, chain, env, post_command(net.agent_api, env))  # signed by the charge point?

    def plan(limit_w: int, pid: int) -> dict[str, Any]:
        t = int(time.time() * 1000)
        return {"profile": {"id": pid, "valid_from": t - 1000, "valid_to": t + 7_200_000, "periods": [[0, limit_w]]}}

    say(f"owner {owner.pub.hex()[:16]}…, charge point {cp.hex()[:16]}… (agent {net.agent_api}), "
        f"provider {provider.pub.hex()[:16]}…  (keys in {wallet})")  # fmt: skip
    say("1. identity: the TEST eID broker attests the owner's account (pseudonymous subject)")
    body = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 365 * 86400_000)
    submit(owner, txs.attest(body, owner.pub))
    say("2. ownership: the charge point proposes its owner with the attestation its (TEST) manufacturer "
        "signed at the factory (`chargepoint-agent propose-owner`); the owner accepts")  # fmt: skip
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "propose-owner", "--home", str(net.agent_home),
                        "--owner", owner.pub.hex(), "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    if p.returncode != 0:
        raise click.ClickException(f"cp.propose: {p.stdout}{p.stderr}")
    say(f"  cp.propose: committed at height {json.loads(p.stdout)['height']} (by the charge point)")
    submit(owner, txs.accept(cp))
    say("3. delegation: the owner grants the provider charge plans and metering for 24 h, ≤ 11 kW")
    spec = txs.GrantSpec(cp=cp, grantee=provider.pub, scopes=("charging.profile", "meter.read"),
                         not_before=now - 60_000, not_after=now + 86400_000, max_power_w=11_000, priority=10)  # fmt: skip
    g = submit(owner, txs.grant(spec, now))
    gid = g.grant_id
    say("4. the charge point's access list, read from another node and verified as a light client")
    net.wait_height(g.height, [len(net.apis) - 1], timeout=30)
    with Ledger([net.apis[-1]]) as reader:
        v = Verifier(reader, wallet / "light").record(cp)
    acl = v.value
    assert acl is not None and acl["owner"] == owner.pub and len(acl["grants"]) == 1
    say(f"  record at height {v.height}: owner {acl['owner'].hex()[:16]}…, "
        f"{len(acl['grants'])} grant(s) {acl['grants'][0]['scopes']}; proof of "
        f"{len(v.proof.siblings)} siblings verified against a header signed by "
        f"{v.signers}/{v.validators} validators")  # fmt: skip
    say("5. the charge point's agent (its own light client) sees the grant")
    t0 = time.monotonic()
    while not agent_get(net.agent_api, "/status")["grants"]:
        if time.monotonic() - t0 > 15:
            raise click.ClickException("the agent did not see the grant within 15 s; see chargepoint/agent.log")
        time.sleep(0.05)
    st = agent_get(net.agent_api, "/status")
    say(f"  agent: access list at height {st['acl_height']}, {len(st['grants'])} grant(s), "
        f"staleness {st['staleness_ms']} ms (after {time.monotonic() - t0:.2f} s)")  # fmt: skip
    say("6. the provider signs a 7.4 kW charge plan and sends it straight to the charge point")
    r1 = command(provider, "charging.profile.set", plan(7400, 1), gid)
    station = net.station
    if station is None:
        charger = command(owner, "status.read", {}, None)["data"]
        say(f"  receipt: {r1['code']} (signed by the charge point); the simulated charger now limits to "
            f"{charger['limit_w']} W")  # fmt: skip
    else:  # OCPP: what the station itself received (its own log), not what the agent says it sent
        sent = station.calls("SetChargingProfile")[-1]["chargingProfile"]
        charger = {"limit_w": sent["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]}
        say(f"  receipt: {r1['code']} (signed by the charge point); the OCPP station received SetChargingProfile "
            f"{sent['chargingProfilePurpose']} at stack level {sent['stackLevel']}, limit {charger['limit_w']} "
            f"{sent['chargingSchedule'][0]['chargingRateUnit']}")  # fmt: skip
    say("7. over the grant's limit, and outside its scope: refused by the charge point itself")
    r2 = command(provider, "charging.profile.set", plan(22_000, 2), gid)
    say(f"  22 kW plan: {r2['code']} — {r2['data'].get('message', '')}")
    r3 = command(provider, "charging.start", {}, gid)
    say(f"  charging.start: {r3['code']} — {r3['data'].get('message', '')}")
    say("8. a refused transaction explains itself: the provider tries to grant itself more")
    try:
        bad = txs.GrantSpec(cp=cp, grantee=provider.pub, scopes=("charging.control",), not_before=now - 60_000,
                            not_after=now + 86400_000)  # fmt: skip
        ledger.submit(provider, *txs.grant(bad, now))
        say("  (unexpectedly accepted)")
    except TxRefused as e:
        say(f"  refused ({e.code}): {e}\n  next step: {e.hint}")
    say("9. revocation: the owner revokes the grant; the provider tries again until refused")
    r = submit(owner, txs.revoke(cp, gid))
    t_rev = time.monotonic()
    while True:
        r4 = command(provider, "charging.profile.set", plan(7400, 3), gid)
        if r4["code"] != "ok" or time.monotonic() - t_rev > 15:
            break
        time.sleep(0.05)
    took = time.monotonic() - t_rev
    say(f"  the charge point refuses the provider: {r4['code']}, {took:.2f} s after the revoke committed")
    if station is not None:  # the revoked provider's plan must not keep running on the station
        t_clear = time.monotonic()
        sid = sent["id"]
        while {"chargingProfileId": sid} not in station.calls("ClearChargingProfile"):
            if time.monotonic() - t_clear > 10:
                raise click.ClickException("the station still runs the revoked provider's plan; see chargepoint/")
            time.sleep(0.05)
        cleared = time.monotonic() - t_rev
        say(f"  the OCPP station was told to clear the provider's plan (ClearChargingProfile {sid}) "
            f"{cleared:.2f} s after the revoke committed")
    ledger.close()
    return {"owner": owner.pub.hex(), "chargepoint": cp.hex(), "provider": provider.pub.hex(),
            "grant_height": g.height, "revoke_height": r.height, "plan": r1["code"],
            "charger_limit_w": charger["limit_w"], "over_limit": r2["code"], "out_of_scope": r3["code"],
            "after_revoke": r4["code"], "revoke_to_refusal_s": round(took, 3),
            **({} if station is None else {"station_cleared_s": round(cleared, 3)})}  # fmt: skip


def run_devnet(validators: int, directory: Path, walk: bool, exit_after: bool, as_json: bool,
               ocpp: bool = False) -> int:  # fmt: skip
    say: Callable[[str], None] = (lambda s: None) if as_json else click.echo
    directory = directory.resolve()
    info = create(directory, validators)
    net = Network(directory)
    result: dict[str, Any] = {"dir": str(directory), "nodes": info["nodes"]}
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        net.start_all()
        say(f"devnet: {validators} validators, chain {info['chain_id']}, in {directory}")
        for i, n in enumerate(info["nodes"]):
            say(f"  node{i}: api {n['api']}  p2p {n['p2p']}  log {n['home']}/node.log")
        hs = net.wait_height(1, timeout=60)
        say(f"first block committed; heights {hs}")
        agent_api = net.start_agent(driver="ocpp201" if ocpp else "sim")
        say(f"  charge point agent: api {agent_api}  log {net.agent_home}/agent.log "
            + ("(OCPP 2.0.1; the TEST-ONLY station's frames in chargepoint/station.jsonl, the agent's in "
               "chargepoint/state/ocpp.log)" if ocpp else "(simulated charger)"))  # fmt: skip
        if walk:
            say("walkthrough:")
            result["walkthrough"] = walkthrough(net, say)
        result["heights"] = net.heights()
        if as_json:
            click.echo(json.dumps(result, sort_keys=True))
        if exit_after:
            return 0
        say(f"running; `ads status --devnet {directory}` shows every node. Ctrl-C stops the network.")
        while not stop:
            time.sleep(0.5)
            dead = [i for i, p in net.procs.items() if p.poll() is not None]
            if net.agent is not None and not net.agent.alive():
                say(f"the agent exited; see {net.agent_home}/agent.log. Stopping the network.")
                return 1
            if dead:
                say(f"node(s) {dead} exited; see their node.log. Stopping the network.")
                return 1
    except KeyboardInterrupt:
        pass
    except (TransportError, TimeoutError, AdsError, click.ClickException) as e:
        click.echo(f"error: {e}", err=True)
        click.echo(f"hint: the nodes' logs are in {directory}/node*/node.log", err=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old)
        say("stopping the network…")
        net.stop_all()
        say("stopped.")
    return 0
