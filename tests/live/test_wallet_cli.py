"""The wallet as a user drives it (issue: wallet): `ads` in subprocesses against a real devnet
with a real agent, keys in an encrypted keyring opened with a passphrase, reads verified as a
light client. One story: key → identity → claim → grant → show → the provider lists its grants
(and uses one) → revoke → transfer to a second owner (grants gone). Then the refusals: each is
one clear line, exit status 1, and the state root does not move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.testing.devnet import Network, agent_get


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "wallet", agent=True) as n:
        yield n


class User:
    """One person at a terminal: their keyring, passphrase and node list (a dead URL first, so
    every command also exercises failover)."""

    def __init__(self, net: Network, home: Path) -> None:
        self.env = {**os.environ, "ADS_KEYRING": str(home / "keyring"), "XDG_CONFIG_HOME": str(home / "config"),
                    "ADS_PASSPHRASE": "correct horse battery", "ADS_NODE": f"http://127.0.0.1:9,{net.apis[0]},{net.apis[1]}"}  # fmt: skip

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", *args], capture_output=True, text=True,
                              timeout=90, env={**self.env, **(env or {})})  # fmt: skip

    def ok(self, *args: str) -> dict[str, Any]:
        p = self.run(*args, "--json")
        assert p.returncode == 0, f"{args}: {p.stdout}{p.stderr}"
        return json.loads(p.stdout)  # type: ignore[no-any-return]

    def refused(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Exit status 1 with one `error:` line (and at most a hint); returns that line."""
        p = self.run(*args, env=env)
        assert p.returncode == 1, f"{args}: expected a refusal, got {p.returncode}: {p.stdout}{p.stderr}"
        lines = p.stderr.strip().splitlines()
        assert "Traceback" not in p.stderr and lines and lines[0].startswith("error: "), p.stderr
        assert len(lines) <= 2 and all(x.startswith(("error: ", "hint: ")) for x in lines), p.stderr
        return lines[0]


def state_root(net: Network) -> bytes:
    with net.client(0) as c:
        h = c.status()["latest_height"]
        return c.commit(h)[0].state_root


def settle(net: Network) -> bytes:
    """The state root once two more blocks committed (anything pending is in by then)."""
    with net.client(0) as c:
        h = c.status()["latest_height"]
    net.wait_height(h + 2, [0], timeout=30)
    return state_root(net)


def test_owner_provider_story_and_refusals(net: Network, tmp_path: Path) -> None:
    alice, bob, prov = User(net, tmp_path / "alice"), User(net, tmp_path / "bob"), User(net, tmp_path / "prov")
    a_pub = alice.ok("key", "new", "alice")["pub"]
    b_pub = bob.ok("key", "new", "bob")["pub"]
    p_pub = prov.ok("key", "new", "prov")["pub"]
    assert (tmp_path / "alice" / "keyring" / "alice.key").stat().st_mode & 0o777 == 0o600
    cp = json.loads((net.agent_home / "device_key.json").read_text())["pub"]
    eid = net.info["eid"]

    # identity: the TEST broker attests alice; show reads it back verified, and valid
    alice.ok("eid", "issue", "--eid", eid, "--account", "alice", "--out", str(tmp_path / "a.att"))
    att = alice.ok("identity", "attest", "--key", "alice", "--attestation", str(tmp_path / "a.att"))
    assert att["height"] >= 1
    shown = alice.ok("identity", "show", "alice")
    assert shown["valid"] is True and shown["identity"]["level"] == "substantial"
    assert shown["verified"]["trust_on_first_use"] is True and shown["verified"]["signers"] >= 3

    # ownership, one-step flow: the device signs alice's key, alice claims
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "sign-ownership", "--home", str(net.agent_home),
                        "--owner", a_pub, "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    so = json.loads(p.stdout)
    claimed = alice.ok("cp", "claim", cp, "--key", "alice", "--device-sig", so["device_sig"], "--device", so["device"])
    assert "claimed charge point" in claimed["summary"]

    # delegation: words say what was granted; show verifies the record and lists the grant
    g = alice.ok("grant", cp, p_pub, "--scope", "charging.profile", "--scope", "meter.read", "--max-power", "11kW",
                 "--for", "30d", "--priority", "20", "--key", "alice", "--keyring", str(tmp_path / "alice" / "keyring"))  # fmt: skip
    gid = g["txid"][:32]
    assert f"granted charging.profile, meter.read on cp {cp[:8]}" in g["summary"] and gid in g["summary"]
    rec = alice.ok("cp", "show", cp)
    assert rec["record"]["owner"] == a_pub and [x["id"] for x in rec["record"]["grants"]] == [gid]
    assert rec["verified"]["proof"]["siblings"] and rec["verified"]["trust_on_first_use"] is False  # the stored root
    human = alice.run("cp", "show", cp).stdout
    assert gid in human and "11 kW" in human and "live" in human and "ADS-SIM" in human

    # the provider: what may I control? (index, then each record verified) — and it works
    mine = prov.ok("grants", "--grantee", p_pub)
    assert [(x["cp"], x["grant"]["id"]) for x in mine["grants"]] == [(cp, gid)] and mine["index_only"] == 0
    deadline = time.monotonic() + 15
    while not agent_get(net.agent_api, "/status")["grants"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sent = prov.ok("command", "send", "--key", "prov", "--cp", cp, "--agent", net.agent_api, "--node", net.apis[0],
                   "--action", "charging.profile.set", "--limit", "7.4kW", "--for", "1h")  # fmt: skip
    assert sent["code"] == "ok" and sent["data"]["stack_level"] == 20

    # revoke: the index and the verified record drop it
    alice.ok("revoke", cp, gid, "--key", "alice")
    assert prov.ok("grants", "--grantee", "prov")["grants"] == []

    # the refusals: one line each, nothing changes
    root = settle(net)
    line = alice.refused("grant", cp, p_pub, "--scope", "meter.read", "--for", "3x", "--key", "alice")
    assert "'3x' is not a duration" in line and "30d" in line
    assert "wrong passphrase" in alice.refused("revoke", cp, gid, "--key", "alice",
                                               env={"ADS_PASSPHRASE": "guess"})  # fmt: skip
    kf = tmp_path / "alice" / "keyring" / "alice.key"
    good = kf.read_bytes()
    kf.write_bytes(good[: len(good) // 2])  # truncated
    assert "alice" in alice.refused("grant", cp, p_pub, "--scope", "meter.read", "--for", "1h", "--key", "alice")
    doc = json.loads(good)
    doc["ciphertext"] = ("00" if doc["ciphertext"][:2] != "00" else "11") + doc["ciphertext"][2:]
    kf.write_text(json.dumps(doc))  # one flipped byte: the AEAD refuses it
    assert "alice" in alice.refused("grant", cp, p_pub, "--scope", "meter.read", "--for", "1h", "--key", "alice")
    kf.write_bytes(good)
    assert settle(net) == root  # none of them sent anything
    assert "no node answered: tried http://127.0.0.1:9" in alice.refused(
        "cp", "show", cp, env={"ADS_NODE": "http://127.0.0.1:9"})  # fmt: skip
    # a grant on someone else's charge point (bob owns nothing here)
    bob.ok("eid", "issue", "--eid", eid, "--account", "bob", "--valid", "3s", "--out", str(tmp_path / "b.att"))
    bob.ok("identity", "attest", "--key", "bob", "--attestation", str(tmp_path / "b.att"))
    root = settle(net)
    assert "refused (not_owner)" in bob.refused("grant", cp, p_pub, "--scope", "meter.read", "--for", "1h", "--key", "bob")
    assert settle(net) == root

    # transfer to bob, whose identity has expired meanwhile: his accept is refused, then he renews
    time.sleep(3.5)  # past bob's 3 s attestation
    g2 = alice.ok("grant", cp, p_pub, "--scope", "meter.read", "--for", "1d", "--key", "alice")
    t = alice.ok("cp", "transfer", cp, "--to", b_pub, "--key", "alice")
    assert "becomes theirs" in t["summary"]
    root = settle(net)
    assert "NOT VALID: expired" in bob.run("identity", "show", "bob").stdout
    assert "refused (identity_expired)" in bob.refused("cp", "accept", cp, "--key", "bob")
    assert settle(net) == root
    bob.ok("eid", "issue", "--eid", eid, "--account", "bob", "--out", str(tmp_path / "b2.att"))
    bob.ok("identity", "attest", "--key", "bob", "--attestation", str(tmp_path / "b2.att"))
    bob.ok("cp", "accept", cp, "--key", "bob")
    after = bob.ok("cp", "show", cp)["record"]
    assert after["owner"] == b_pub and after["pending"] is None and after["grants"] == []  # grants gone
    assert g2["txid"][:32] not in json.dumps(prov.ok("grants", "--grantee", p_pub))
    # and alice, no longer the owner, cannot grant on it
    assert "refused (not_owner)" in alice.refused("grant", cp, p_pub, "--scope", "meter.read", "--for", "1h", "--key", "alice")
