"""The `ads` command: testnet homes, the validator daemon, status, the devnet and the simulator.

Every command prints human lines by default and one JSON document with `--json`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization

from .cli_output import emit, fail, json_option
from .config import ConfigError, NodeConfig, load_config, write_config, write_key
from .crypto import SigningKey

DEFAULT_CHAIN = "ads-devnet"
# consensus timing for loopback devnets (`--fast`): on chain, in the genesis params
FAST_PARAMS = {"timeout_propose_ms": 1000, "timeout_prevote_ms": 500, "timeout_precommit_ms": 500,
               "timeout_propose_delta_ms": 250, "timeout_prevote_delta_ms": 250,
               "timeout_precommit_delta_ms": 250}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ads-ledger")
def main() -> None:
    """ADS ledger: validators, governance and tools of the Authentication and Delegation Service."""


# ---------------------------------------------------------------- testnet


@main.group()
def testnet() -> None:
    """Create local test networks (TEST-ONLY keys and trust lists)."""


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
    """Write `out/node{i}` homes, `out/gov/member{j}.key` and the test eID trust list `out/eid/`.
    `params` (genesis gov/params) go over the defaults, and over `fast`'s short timeouts."""
    from .genesis import Genesis
    from .testing.trustlist import make_trust_list, write_trust_list

    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty; choose a new --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    vkeys = [SigningKey.generate() for _ in range(validators)]
    nkeys = [SigningKey.generate() for _ in range(validators)]
    gkeys = [SigningKey.generate() for _ in range(members)]
    (out / "gov").mkdir()
    for j, k in enumerate(gkeys):
        write_key(out / "gov" / f"member{j}.key", k, "governance member (TEST-ONLY)")
    tl = make_trust_list()
    write_trust_list(tl, out / "eid")
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
        note="TEST-ONLY devnet genesis: keys and trust list are throwaway. NOT FOR PRODUCTION.",
        params={**(FAST_PARAMS if fast else {}), **(params or {})},  # fast: loopback timeouts
    )
    ports = [(free_port(), free_port()) if base_port is None else (base_port + 2 * i, base_port + 2 * i + 1)
             for i in range(validators)]  # fmt: skip
    from .p2p.handshake import node_id

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
            "threshold": min(threshold, members), "eid": str(out / "eid")}  # fmt: skip


@testnet.command("init")
@click.option("--validators", "-n", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Directory to create.")
@click.option("--chain-id", default=DEFAULT_CHAIN, show_default=True)
@click.option("--base-port", type=int, default=None, help="P2P port of node0 (API = +1, next node +2); default: free ports.")
@click.option("--fast", is_flag=True, help="Short consensus timeouts for loopback networks.")
@json_option
def testnet_init(validators: int, out: Path, chain_id: str, base_port: int | None, fast: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Write node homes, governance keys and a TEST-ONLY eID trust list for a local network."""
    info = init_testnet(out, validators, chain_id, base_port, fast=fast)

    def human() -> str:
        lines = [f"testnet {chain_id}: {validators} validators in {out} (TEST-ONLY keys)"]
        for n in info["nodes"]:
            lines.append(f"  {n['home']}  api {n['api']}  p2p {n['p2p']}")
        lines.append(f"  governance keys: {out}/gov/ (threshold {info['threshold']}); eID test trust list: {out}/eid/")
        lines.append(f"start a node with: ads node start --home {info['nodes'][0]['home']}")
        return "\n".join(lines)

    emit(as_json, info, human)


# ---------------------------------------------------------------- node


@main.group()
def node() -> None:
    """Run a validator node."""


@node.command("start")
@click.option("--home", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--log-format", type=click.Choice(["human", "json"]), default=None, help="Overrides config.toml.")
@click.option("--byzantine", metavar="NAME", default=None,
              help="TEST-ONLY: misbehave as NAME (test/devnet chains only; see ads_ledger.byzantine).")
def node_start(home: Path, log_format: str | None, byzantine: str | None) -> None:
    """Run the validator daemon in HOME until SIGINT/SIGTERM."""
    import trio

    from .logs import setup_logging
    from .node import run_node

    try:
        cfg = load_config(home)
    except ConfigError as e:
        fail(False, "config", str(e), "check the file, or create a home with `ads testnet init`")
    if byzantine is not None:
        from .byzantine import BEHAVIOURS, byzantine_allowed
        from .genesis import Genesis, GenesisError

        if byzantine not in BEHAVIOURS:
            fail(False, "byzantine", f"unknown Byzantine behaviour {byzantine!r}",
                 f"choose one of: {', '.join(sorted(BEHAVIOURS))}")  # fmt: skip
        try:
            chain_id = Genesis.load(cfg.genesis_path).chain_id
        except GenesisError as e:
            fail(False, "genesis", str(e), "check HOME/genesis.json")
        if not byzantine_allowed(chain_id):
            fail(False, "byzantine", f"--byzantine is TEST-ONLY and chain {chain_id!r} is not a test chain",
                 "it runs only on chains whose id contains 'test' or 'devnet'; start the node without it")  # fmt: skip
    setup_logging(log_format or cfg.log_format, cfg.log_level)
    trio.run(run_node, home, byzantine)


# ---------------------------------------------------------------- status


def _api_urls(homes: tuple[Path, ...], nodes: tuple[str, ...]) -> list[str]:
    urls = list(nodes)
    for h in homes:
        urls.append("http://" + load_config(h).api_listen)
    return urls or ["http://127.0.0.1:26657"]


@main.command()
@click.option("--home", "homes", multiple=True, type=click.Path(path_type=Path), help="A node home (repeatable).")
@click.option("--node", "nodes", multiple=True, help="A node API URL (repeatable).")
@click.option("--devnet", "devnet_dir", type=click.Path(path_type=Path), help="Every node of a devnet directory.")
@json_option
def status(homes: tuple[Path, ...], nodes: tuple[str, ...], devnet_dir: Path | None, as_json: bool) -> None:
    """Show each node's chain, height and latest block."""
    from .api.client import ApiResponseError, NodeClient, TransportError

    if devnet_dir is not None:
        homes = homes + tuple(sorted(p for p in Path(devnet_dir).glob("node*") if p.is_dir()))
    try:
        urls = _api_urls(homes, nodes)
    except ConfigError as e:
        fail(as_json, "config", str(e))
    rows: list[dict[str, Any]] = []
    for url in urls:
        try:
            with NodeClient(url, timeout_s=3.0) as c:
                st = c.status()
            rows.append({"node": url, **st})
        except (ApiResponseError, TransportError, OSError) as e:
            rows.append({"node": url, "error": str(e)})

    def human() -> str:
        out = []
        for r in rows:
            if "error" in r:
                out.append(f"{r['node']}: unreachable ({r['error']})")
            else:
                bid = (r.get("latest_block_id") or "")[:12]
                out.append(f"{r['node']}: {r['chain_id']} height {r['latest_height']} block {bid}"
                           + ("  (catching up)" if r.get("catching_up") else ""))  # fmt: skip
        return "\n".join(out)

    emit(as_json, {"nodes": rows}, human)
    if all("error" in r for r in rows):
        raise SystemExit(1)


# ---------------------------------------------------------------- devnet and sim


@main.command()
@click.option("--validators", "-n", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where to put the network (default: ./devnet, replaced each run).")
@click.option("--walkthrough/--no-walkthrough", default=True, show_default=True,
              help="Run the ownership/delegation walkthrough once the network is up.")
@click.option("--exit-after-walkthrough", is_flag=True, help="Stop the network after the walkthrough.")
@json_option
def devnet(validators: int, directory: Path | None, walkthrough: bool, exit_after_walkthrough: bool,
           as_json: bool) -> None:  # fmt: skip
    """Start a local network of validators (subprocesses on loopback) until Ctrl-C."""
    from .devnet import run_devnet

    rc = run_devnet(validators, directory or Path("devnet"), walkthrough, exit_after_walkthrough, as_json)
    raise SystemExit(rc)


try:
    from .cli_sim import sim as _sim

    main.add_command(_sim)
except ImportError:  # the simulator ships with the consensus package
    pass


if __name__ == "__main__":
    main()
