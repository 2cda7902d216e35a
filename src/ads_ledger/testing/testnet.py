"""TEST-ONLY local testnets: node homes, governance keys and an eID trust list on loopback.

`init_testnet` writes what `ads testnet init`, `ads devnet`, the tests and the benchmarks start
validators from. Every key it makes is throwaway and every file says so.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError
from ads_ledger.node.config import NodeConfig, write_config, write_key
from ads_ledger.node.p2p.handshake import node_id
from ads_ledger.state.genesis import Genesis
from ads_ledger.testing.trustlist import make_device_ca, make_trust_list, write_device_ca, write_trust_list

__all__ = ["DEFAULT_CHAIN", "FAST_PARAMS", "TestnetError", "free_port", "init_testnet"]

DEFAULT_CHAIN = "ads-devnet"
# consensus timing for loopback devnets (`--fast`): on chain, in the genesis params
FAST_PARAMS = {"timeout_propose_ms": 1000, "timeout_prevote_ms": 500, "timeout_precommit_ms": 500,
               "timeout_propose_delta_ms": 250, "timeout_prevote_delta_ms": 250,
               "timeout_precommit_delta_ms": 250}




class TestnetError(AdsError):
    """The testnet cannot be written where asked; the message says why."""


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range: a port the OS hands out for
    outgoing connections could be taken by a peer's dial before our node binds it."""
    import random

    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the range is crowded: fall back to any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_testnet(out: Path, validators: int, chain_id: str, base_port: int | None,
                 members: int = 3, threshold: int = 2, fast: bool = False,
                 params: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write `out/node{i}` homes, `out/gov/member{j}.key`, the test eID trust list `out/eid/` and
    the test manufacturer CA `out/device-ca/` (anchored in genesis with purpose `device`).
    `params` (genesis gov/params) go over the defaults, and over `fast`'s short timeouts."""
    if out.exists() and any(out.iterdir()):
        raise TestnetError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    vkeys = [SigningKey.generate() for _ in range(validators)]
    nkeys = [SigningKey.generate() for _ in range(validators)]
    gkeys = [SigningKey.generate() for _ in range(members)]
    (out / "gov").mkdir()
    for j, k in enumerate(gkeys):
        write_key(out / "gov" / f"member{j}.key", k, "governance member (TEST-ONLY)")
    tl = make_trust_list()
    write_trust_list(tl, out / "eid")
    dca = make_device_ca()
    write_device_ca(dca, out / "device-ca")
    (out / "eid" / "README").write_text(
        "TEST-ONLY eID trust list: a throwaway root CA and eID broker seal. NOT FOR PRODUCTION.\n"
    )
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=int(time.time() * 1000),
        validators=[(k.pub, 10) for k in vkeys],
        members=[k.pub for k in gkeys],
        threshold=min(threshold, members),
        anchors=[tl.root.public_bytes(serialization.Encoding.DER)],
        device_anchors=dca.anchors_der(),
        note="TEST-ONLY devnet genesis: keys and trust list are throwaway. NOT FOR PRODUCTION.",
        params={**(FAST_PARAMS if fast else {}), **(params or {})},  # fast: loopback timeouts
    )
    ports = [(free_port(), free_port()) if base_port is None else (base_port + 2 * i, base_port + 2 * i + 1)
             for i in range(validators)]  # fmt: skip
    homes = []
    for i in range(validators):
        home = out / f"node{i}"
        home.mkdir()
        genesis.save(home / "genesis.json")
        write_key(home / "node_key.json", nkeys[i], "p2p node key")
        write_key(home / "validator_key.json", vkeys[i], "consensus validator key (TEST-ONLY)")
        peers = [f"{node_id(nkeys[j].pub)}@127.0.0.1:{ports[j][0]}" for j in range(validators) if j != i]
        cfg = NodeConfig(home=home, moniker=f"node{i}", p2p_listen=f"127.0.0.1:{ports[i][0]}",
                         api_listen=f"127.0.0.1:{ports[i][1]}", peers=peers)  # fmt: skip
        write_config(cfg)
        homes.append({"home": str(home), "api": f"http://{cfg.api_listen}", "p2p": cfg.p2p_listen,
                      "validator": vkeys[i].pub.hex(), "node_id": node_id(nkeys[i].pub)})  # fmt: skip
    (out / "genesis.json").write_text((out / "node0" / "genesis.json").read_text())
    return {"out": str(out), "chain_id": chain_id, "nodes": homes,
            "gov": [str(out / "gov" / f"member{j}.key") for j in range(members)],
            "threshold": min(threshold, members), "eid": str(out / "eid"),
            "device_ca": str(out / "device-ca")}  # fmt: skip
