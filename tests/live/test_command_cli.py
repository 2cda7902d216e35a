"""`ads command send` against a real agent on a devnet: the grant found through GET /grants,
the receipt verified as the charge point's answer, printed in words, non-zero on a refusal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing.devnet import Network, agent_get
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet.keystore import Keyring


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "cmd", agent=True) as n:
        yield n


def ads(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    import os

    p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", *args, "--json"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, **(env or {})})  # fmt: skip
    return p.returncode, json.loads(p.stdout)


def test_command_send(net: Network, tmp_path: Path) -> None:
    chain = net.info["chain_id"]
    cp = bytes.fromhex(json.loads((net.agent_home / "device_key.json").read_text())["pub"])
    owner, prov = SigningKey.generate(), SigningKey.generate()
    key_file = tmp_path / "provider.key"
    key_file.write_text(json.dumps({"pub": prov.pub.hex(), "seed": prov.seed.hex()}))
    tl = load_trust_list(Path(net.info["eid"]))
    now = int(time.time() * 1000)
    p = subprocess.run([sys.executable, "-m", "chargepoint_agent.cli", "propose-owner", "--home", str(net.agent_home),
                        "--owner", owner.pub.hex(), "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    grant = {"cp": cp, "grantee": prov.pub, "scopes": ["charging.profile"], "not_before": now - 60_000,
             "not_after": now + 3_600_000, "limits": {"max_power_w": 11_000}, "exclusive": False, "priority": 20,
             "redelegate": 0, "parent": None}  # fmt: skip
    with net.client(0) as c:
        att = issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000, expires_at=now + 86_400_000)
        for n, (t, b) in enumerate([("attest", att), ("cp.accept", {"cp": cp}), ("grant", grant)], start=1):
            assert c.submit_tx(make_envelope(chain, t, owner, n, b), wait_commit=True)["ok"]
    deadline = time.monotonic() + 15
    while not agent_get(net.agent_api, "/status")["grants"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    base = ["command", "send", "--key", str(key_file), "--cp", cp.hex(), "--agent", net.agent_api,
            "--node", net.apis[0], "--action", "charging.profile.set", "--for", "2h"]  # fmt: skip
    # the provider's key in an encrypted keyring, opened with its passphrase
    Keyring(tmp_path / "kr").add("provider", prov, "provider pass")
    kr_env = {"ADS_KEYRING": str(tmp_path / "kr"), "ADS_PASSPHRASE": "provider pass"}
    by_name = [*base[:2], "--key", "provider", *base[4:]]
    rc, ok = ads(*by_name, "--limit", "7.4kW", env=kr_env)
    assert rc == 0 and ok["code"] == "ok" and ok["data"]["stack_level"] == 20, ok  # from the grant's priority
    rc, wrong = ads(*by_name, "--limit", "7.4kW", env={**kr_env, "ADS_PASSPHRASE": "guess"})
    assert rc == 1 and wrong["error"]["code"] == "keystore"
    rc, no = ads(*base, "--limit", "22kW")
    assert rc == 1 and no["code"] == "limits" and "11000" in no["data"]["message"]
    rc, out = ads("command", "send", "--key", str(key_file), "--cp", cp.hex(), "--agent", net.agent_api,
                  "--node", net.apis[0], "--action", "charging.start")  # fmt: skip
    assert rc == 1 and out["error"]["code"] == "bad_argument" and "scope charging.control" in out["error"]["message"]
