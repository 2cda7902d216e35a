"""Regulator levers on a real 4-validator devnet, governance through `ads gov` (2 of 3 members):
an aggregator is registered with a 50 kW cap, a flex grant is accepted for it and refused for an
unregistered key, `ads providers report` shows its live power and charge points, and its
suspension revokes its grants on every charge point in the following blocks."""

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

from ads_ledger.client.http import ApiResponseError
from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing import propose_tx
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.trustlist import issue_attestation, load_device_ca, load_trust_list
from ads_ledger.wallet.keystore import Keyring

PASS = "member pass"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "levers") as n:
        yield n


def ads(keyring: Path, *args: str, as_json: bool = True) -> tuple[int, Any]:
    env = {**os.environ, "ADS_KEYRING": str(keyring), "ADS_PASSPHRASE": PASS,
           "ADS_LIGHT_DIR": str(keyring.parent / "light")}  # fmt: skip
    env.pop("ADS_NODE", None)
    p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", *args, *(["--json"] if as_json else [])],
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    if not as_json:
        return p.returncode, p.stdout + p.stderr
    try:
        return p.returncode, json.loads(p.stdout)
    except ValueError:
        return p.returncode, p.stdout + p.stderr


def gov(keyring: Path, node: str, out: Path, action: str, *opts: str) -> None:
    """Propose, sign by member0 and member1 (member2 never signs), submit."""
    rc, res = ads(keyring, "gov", "propose", action, *opts, "--signer", "member0", "--node", node, "--out", str(out))
    assert rc == 0, res
    for m in ("member0", "member1"):
        rc, res = ads(keyring, "gov", "sign", str(out), "--key", m)
        assert rc == 0, res
    rc, res = ads(keyring, "gov", "submit", str(out), "--node", node)
    assert rc == 0, res


def test_register_grant_refuse_suspend(net: Network, tmp_path: Path) -> None:
    t0 = time.monotonic()
    kr = tmp_path / "keyring"
    for j, path in enumerate(net.info["gov"]):
        Keyring(kr).add(f"member{j}", load_key(Path(path)), PASS)
    chain, node = net.info["chain_id"], net.apis[0]
    owner, agg, nobody = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    devices = [SigningKey.generate() for _ in range(3)]
    now = int(time.time() * 1000)
    tl, ca = load_trust_list(Path(net.info["eid"])), load_device_ca(Path(net.info["device_ca"]))
    nonces = {"owner": 0}

    def nxt() -> int:
        nonces["owner"] += 1
        return nonces["owner"]

    def grant(cp: SigningKey, grantee: SigningKey, scopes: list[str]) -> dict[str, Any]:
        body = {"cp": cp.pub, "grantee": grantee.pub, "scopes": scopes, "not_before": now - 60_000,
                "not_after": now + 3_600_000, "limits": {"max_power_w": 11_000}, "exclusive": "flex" in scopes,
                "priority": 50, "redelegate": 0, "parent": None}  # fmt: skip
        with net.client(0) as c:
            return c.submit_tx(make_envelope(chain, "grant", owner, nxt(), body), wait_commit=True)

    with net.client(0) as c:
        att = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        txs = [make_envelope(chain, "attest", owner, nxt(), att)]
        txs += [propose_tx(chain, d, owner.pub, ca=ca) for d in devices]
        txs += [make_envelope(chain, "cp.accept", owner, nxt(), {"cp": d.pub}) for d in devices]
        for raw in txs:
            r = c.submit_tx(raw, wait_commit=True)
            assert r["ok"], r

    gov(kr, node, tmp_path / "register.msgpack", "providers.set", "--pub", agg.pub.hex(), "--name", "Agg One",
        "--role", "aggregator", "--cap", "50kW")  # fmt: skip
    rc, shown = ads(kr, "providers", "show", agg.pub.hex(), "--node", node)
    assert rc == 0 and shown["record"]["roles"] == ["aggregator"] and shown["record"]["cap_w"] == 50_000, shown

    assert grant(devices[0], agg, ["flex"])["ok"]
    with pytest.raises(ApiResponseError) as ei:  # refused at admission, with its typed reason
        grant(devices[1], nobody, ["flex"])
    assert ei.value.code == "role_required", ei.value
    nonces["owner"] -= 1  # refused before any block: its nonce is still free
    assert grant(devices[1], agg, ["charging.control"])["ok"] and grant(devices[2], agg, ["charging.profile"])["ok"]

    rc, rep = ads(kr, "providers", "report", "--node", node)
    assert rc == 0, rep
    row = next(p for p in rep["providers"] if p["pub"] == agg.pub.hex())
    assert (row["live_w"], row["chargepoints"], row["grants"], row["suspended"]) == (33_000, 3, 3, False), row
    rc, text = ads(kr, "providers", "report", "--node", node, as_json=False)
    assert rc == 0 and "Agg One" in text and "33 kW" in text and "66%" in text, text

    # the 50 kW cap: a fourth 11 kW grant fits (44 kW), a fifth does not, until one is revoked
    fourth = grant(devices[0], agg, ["charging.profile"])
    assert fourth["ok"], fourth
    with pytest.raises(ApiResponseError) as ei:
        grant(devices[1], agg, ["charging.profile"])
    assert ei.value.code == "capacity_cap" and all(w in ei.value.message for w in ("50000", "44000", "11000")), ei.value
    nonces["owner"] -= 1
    with net.client(0) as c:
        r = c.submit_tx(make_envelope(chain, "revoke", owner, nxt(), {"cp": devices[0].pub,
                                                                       "grant": bytes.fromhex(fourth["txid"])[:16]}),
                        wait_commit=True)  # fmt: skip
    assert r["ok"], r
    assert grant(devices[1], agg, ["charging.profile"])["ok"]  # 33 + 11 = 44 kW again

    gov(kr, node, tmp_path / "suspend.msgpack", "providers.suspend", "--pub", agg.pub.hex(), "--suspended")
    deadline = time.monotonic() + 20
    while True:
        with net.client(0) as c:
            held = sum(g["grantee"] == agg.pub.hex() for d in devices for g in c.chargepoint(d.pub)["grants"])
        if held == 0:
            break
        assert time.monotonic() < deadline, f"{held} grants left"
        time.sleep(0.2)
    with pytest.raises(ApiResponseError) as ei:
        grant(devices[0], agg, ["charging.control"])
    assert ei.value.code == "suspended", ei.value
    rc, text = ads(kr, "providers", "list", "--node", node, as_json=False)
    assert rc == 0 and "1 registered provider," in text and "suspended" in text, text
    rc, shown = ads(kr, "providers", "show", agg.pub.hex(), "--node", node)
    assert rc == 0 and shown["record"]["suspended"] and shown["record"]["live_w"] == 0 and shown["grants"] == 0
    assert time.monotonic() - t0 < 60
