"""`ads devnet`: a local network of validator processes on loopback, and a walkthrough.

The network is N `ads node start` subprocesses with homes from `ads testnet init`. The
walkthrough then plays the three ADS flows against it through the HTTP API only, as an
owner's and a provider's wallet would, verifying every answer as a light client:
eID attestation → two-way ownership handshake → delegation → proof of the charge point's
access list against a header signed by the validators → revocation.
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
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import RemoteError
from ads_ledger.light.verify import verify_signed_header, verify_state
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.records import cp_key

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
        for i in list(self.procs):
            self.stop(i)

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
    """The ownership and delegation flows end to end; returns what it verified."""
    from ads_ledger.testing.trustlist import (
        issue_attestation,
        issue_device_attestation,
        load_device_ca,
        load_trust_list,
    )

    chain = net.info["chain_id"]
    tl = load_trust_list(Path(net.info["eid"]))
    owner, device, provider = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    wallet = net.dir / "wallet"
    wallet.mkdir(exist_ok=True)
    for name, k in (("owner", owner), ("chargepoint", device), ("provider", provider)):
        (wallet / f"{name}.key").write_text(json.dumps({"pub": k.pub.hex(), "seed": k.seed.hex()}))
    c = net.client(0, timeout_s=30.0)
    reader = net.client(len(net.apis) - 1, timeout_s=30.0)
    now = int(time.time() * 1000)

    def submit(raw: bytes, what: str) -> dict[str, Any]:
        r = c.submit_tx(raw, wait_commit=True)
        if r.get("height") is None or not r.get("ok"):
            raise click.ClickException(f"{what}: {r}")
        say(f"  {what}: committed at height {r['height']} (tx {r['txid'][:16]}…)")
        return r

    say(f"owner {owner.pub.hex()[:16]}…, charge point {device.pub.hex()[:16]}…, "
        f"provider {provider.pub.hex()[:16]}…  (keys in {wallet})")  # fmt: skip
    say("1. identity: the TEST eID broker attests the owner's account (pseudonymous subject)")
    body = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 365 * 86400_000)
    submit(make_envelope(chain, "attest", owner, 1, body), "attest")
    say("2. ownership: the charge point proposes its owner with the attestation its (TEST) "
        "manufacturer signed at the factory; the owner accepts")
    dca = load_device_ca(Path(net.info["device_ca"]))
    device_att = issue_device_attestation(dca, device.pub, issued_at=now - 86400_000, model="ADS-SIM-22")
    submit(make_envelope(chain, "cp.propose", device, 1, {"owner": owner.pub, "device": device_att}),
           "cp.propose")  # fmt: skip
    submit(make_envelope(chain, "cp.accept", owner, 2, {"cp": device.pub}), "cp.accept")
    say("3. delegation: the owner grants the provider charge plans and metering for 24 h, ≤ 11 kW")
    grant = {"cp": device.pub, "grantee": provider.pub, "scopes": ["charging.profile", "meter.read"],
             "not_before": now - 60_000, "not_after": now + 86400_000, "limits": {"max_power_w": 11000},
             "exclusive": False, "priority": 10, "redelegate": 0, "parent": None}  # fmt: skip
    g = submit(make_envelope(chain, "grant", owner, 3, grant), "grant")
    say("4. the charge point's access list, read from another node and verified as a light client")
    net.wait_height(g["height"], [len(net.apis) - 1], timeout=30)
    rec = reader.chargepoint(device.pub, g["height"])
    header, commit = reader.commit(g["height"])
    valset = reader.validators(g["height"])
    verify_signed_header(chain, header, commit, valset)
    value = bytes.fromhex(rec["value"])
    from ads_ledger.client import jsonenc

    verify_state(header, cp_key(device.pub), value, jsonenc.proof_from_json(rec["proof"]))
    acl = codec.decode(value)
    assert acl["owner"] == owner.pub and len(acl["grants"]) == 1
    say(f"  record at height {g['height']}: owner {acl['owner'].hex()[:16]}…, "
        f"{len(acl['grants'])} grant(s) {acl['grants'][0]['scopes']}; proof of "
        f"{len(rec['proof']['siblings'])} siblings verified against a header signed by "
        f"{len(commit.sigs)}/{len(valset)} validators")  # fmt: skip
    say("5. a refused transaction explains itself: the provider tries to grant itself more")
    try:
        bad = dict(grant, grantee=provider.pub, scopes=["charging.control"])
        c.submit_tx(make_envelope(chain, "grant", provider, 1, bad))
        say("  (unexpectedly accepted)")
    except Exception as e:  # ApiResponseError carries the code and message
        say(f"  refused: {e}")
    say("6. revocation: the owner revokes the grant")
    gid = acl["grants"][0]["id"]
    r = submit(make_envelope(chain, "revoke", owner, 4, {"cp": device.pub, "grant": gid}), "revoke")
    net.wait_height(r["height"], [len(net.apis) - 1], timeout=30)
    rec2 = reader.chargepoint(device.pub, r["height"])
    left = codec.decode(bytes.fromhex(rec2["value"]))["grants"]
    say(f"  grants left on the charge point: {len(left)}")
    c.close()
    reader.close()
    return {"owner": owner.pub.hex(), "chargepoint": device.pub.hex(), "provider": provider.pub.hex(),
            "grant_height": g["height"], "revoke_height": r["height"], "grants_left": len(left)}  # fmt: skip


def run_devnet(validators: int, directory: Path, walk: bool, exit_after: bool, as_json: bool) -> int:
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
            if dead:
                say(f"node(s) {dead} exited; see their node.log. Stopping the network.")
                return 1
    except KeyboardInterrupt:
        pass
    except (TransportError, TimeoutError, RemoteError, click.ClickException) as e:
        click.echo(f"error: {e}", err=True)
        click.echo(f"hint: the nodes' logs are in {directory}/node*/node.log", err=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old)
        say("stopping the network…")
        net.stop_all()
        say("stopped.")
    return 0
