"""`ads gov` as members use it, on a real 4-validator devnet: a draft proposed, signed by two of
three members in their own processes from an encrypted keyring, checked, submitted; the network
then runs without the removed validator. Short quorum and a draft for another chain are refused
before anything is sent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.node.config import load_key
from ads_ledger.testing.devnet import Network
from ads_ledger.wallet.gov import Draft
from ads_ledger.wallet.keystore import Keyring
from ads_ledger.wallet.ledger import Ledger

PASS = "member pass"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "gov") as n:
        yield n


@pytest.fixture(scope="module")
def keyring(net: Network, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The members' keys in one encrypted keyring (each member would have their own)."""
    kr = tmp_path_factory.mktemp("kr") / "keyring"
    for j, path in enumerate(net.info["gov"]):
        Keyring(kr).add(f"member{j}", load_key(Path(path)), PASS)
    return kr


def ads(keyring: Path, *args: str, as_json: bool = True) -> tuple[int, Any]:
    env = {**os.environ, "ADS_KEYRING": str(keyring), "ADS_PASSPHRASE": PASS}
    env.pop("ADS_NODE", None)
    p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", *args, *(["--json"] if as_json else [])],
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    return p.returncode, (json.loads(p.stdout) if as_json else p.stdout + p.stderr)


def state_of(net: Network, pub: bytes) -> tuple[int, int]:
    """(validators in the latest set, the member's nonce)."""
    with Ledger(net.apis[:1]) as ledger:
        return len(ledger.validators()), ledger.nonce(pub)


def test_refused_locally_short_quorum_and_wrong_chain(net: Network, keyring: Path, tmp_path: Path) -> None:
    gone, node = net.info["nodes"][3]["validator"], net.apis[0]
    m0 = Keyring(keyring).find("member0").pub
    d = tmp_path / "one.msgpack"
    rc, out = ads(keyring, "gov", "propose", "validators.set", "--update", f"{gone}:0", "--signer", "member0",
                  "--node", node, "--out", str(d))  # fmt: skip
    assert rc == 0, out
    assert ads(keyring, "gov", "sign", str(d), "--key", "member0")[0] == 0
    before = state_of(net, m0)
    rc, out = ads(keyring, "gov", "submit", str(d), "--node", node)
    assert rc == 1 and out["error"]["code"] == "quorum" and "1 more" in out["error"]["message"], out
    rc, text = ads(keyring, "gov", "submit", str(d), "--node", node, as_json=False)
    assert rc == 1 and "1 more needed" in text and "hint:" in text
    # the same action, fully signed, but for another chain: refused before sending
    other = Draft.decode(d.read_bytes())
    other.chain_id, other.auth = "ads-other", []
    for p in net.info["gov"][:2]:
        other.sign(load_key(Path(p)))
    od = tmp_path / "other.msgpack"
    od.write_bytes(other.encode())
    rc, out = ads(keyring, "gov", "submit", str(od), "--node", node)
    assert rc == 1 and out["error"]["code"] == "wrong_chain", out
    rc, out = ads(keyring, "gov", "show", str(od), "--node", node)
    assert rc == 0 and out["checked"]["chain_matches"] is False and out["checked"]["ready"] is False
    assert state_of(net, m0) == before == (4, 0)  # nothing reached the ledger


def test_two_of_three_remove_a_validator(net: Network, keyring: Path, tmp_path: Path) -> None:
    gone, node = net.info["nodes"][3]["validator"], net.apis[0]
    d = tmp_path / "d.msgpack"
    rc, text = ads(keyring, "gov", "propose", "validators.set", "--update", f"{gone}:0", "--signer", "member0",
                   "--node", node, "--out", str(d), as_json=False)  # fmt: skip
    assert rc == 0 and "ads gov sign" in text and "(removed)" in text, text
    rc, text = ads(keyring, "gov", "propose", "params.set", "--param", "x=1", "--signer", "member0", "--node", node,
                   "--out", str(d), as_json=False)  # fmt: skip
    assert rc == 1 and "exists" in text
    rc, out = ads(keyring, "gov", "show", str(d), "--node", node)
    assert rc == 0 and out["checked"]["missing"] == 2 and not out["checked"]["ready"]
    for m in ("member0", "member1"):  # member2 never signs
        rc, out = ads(keyring, "gov", "sign", str(d), "--key", m)
        assert rc == 0, out
    rc, out = ads(keyring, "gov", "show", str(d), "--node", node)
    c = out["checked"]
    assert rc == 0 and c["ready"] and c["missing"] == 0 and c["threshold"] == 2 and c["chain_matches"], out
    assert c["nonce_current"] and all(s["valid"] for s in out["signatures"])
    rc, text = ads(keyring, "gov", "show", str(d), "--node", node, as_json=False)
    assert "0 more needed" in text and "ready: submit" in text, text
    rc, text = ads(keyring, "gov", "submit", str(d), "--node", node, "--node", net.apis[1], as_json=False)
    assert rc == 0, text
    m = re.search(r"governance: validators\.set .* committed at height (\d+) \(tx [0-9a-f]{64}\); "
                  r"effective at height (\d+)", text)  # fmt: skip
    assert m and int(m[2]) == int(m[1]) + 2, text
    h = int(m[1])
    net.wait_height(h + 2, nodes=[0], timeout=60)
    with net.client(0) as cl:
        assert len(cl.validators(h + 1)) == 4
        vs = cl.validators(h + 2)
    assert len(vs) == 3 and vs.index_of(bytes.fromhex(gone)) is None
    rc, out = ads(keyring, "gov", "submit", str(d), "--node", node)  # replayed: its nonce is spent
    assert rc == 1 and out["error"]["code"] == "bad_nonce", out
    # the removed validator dies; the other three keep deciding
    net.kill(3)
    time.sleep(0.5)
    top = max(x for x in net.heights()[:3] if x)
    net.wait_height(top + 3, nodes=[0, 1, 2], timeout=60)
