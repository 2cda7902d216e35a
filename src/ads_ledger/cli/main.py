"""The `ads` command: testnet homes, the validator daemon, status, the devnet and the simulator.

Every command prints human lines by default and one JSON document with `--json`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from ads_ledger.client.output import emit, fail, json_option
from ads_ledger.node.config import ConfigError, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ads-ledger")
def main() -> None:
    """ADS ledger: validators, governance and tools of the Authentication and Delegation Service."""


# ---------------------------------------------------------------- testnet


@main.group()
def testnet() -> None:
    """Create local test networks (TEST-ONLY keys and trust lists)."""


@testnet.command("init")
@click.option("--validators", "-n", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Directory to create.")
@click.option("--chain-id", default=None, help="Chain id (default: ads-devnet).")
@click.option("--base-port", type=int, default=None, help="P2P port of node0 (API = +1, next node +2); default: free ports.")
@click.option("--fast", is_flag=True, help="Short consensus timeouts for loopback networks.")
@json_option
def testnet_init(validators: int, out: Path, chain_id: str, base_port: int | None, fast: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Write node homes, governance keys, a TEST-ONLY eID trust list and a TEST-ONLY manufacturer
    CA (device-ca/, anchored in genesis) for a local network."""
    from ads_ledger.testing.testnet import DEFAULT_CHAIN, TestnetError, init_testnet  # here: loads trio

    chain_id = chain_id or DEFAULT_CHAIN
    try:
        info = init_testnet(out, validators, chain_id, base_port, fast=fast)
    except TestnetError as e:
        fail(as_json, "testnet", str(e), "choose a new --out or remove it")

    def human() -> str:
        lines = [f"testnet {chain_id}: {validators} validators in {out} (TEST-ONLY keys)"]
        for n in info["nodes"]:
            lines.append(f"  {n['home']}  api {n['api']}  p2p {n['p2p']}")
        lines.append(f"  governance keys: {out}/gov/ (threshold {info['threshold']}); eID test trust list: {out}/eid/")
        lines.append(f"  TEST manufacturer CA (signs device attestations): {out}/device-ca/")
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
              help="TEST-ONLY: misbehave as NAME (test/devnet chains only; see ads_ledger.testing.byzantine).")
def node_start(home: Path, log_format: str | None, byzantine: str | None) -> None:
    """Run the validator daemon in HOME until SIGINT/SIGTERM."""
    import trio

    from ads_ledger.node.daemon import run_node
    from ads_ledger.node.logs import setup_logging

    try:
        cfg = load_config(home)
    except ConfigError as e:
        fail(False, "config", str(e), "check the file, or create a home with `ads testnet init`")
    hooks = None
    if byzantine is not None:
        from ads_ledger.state.genesis import Genesis, GenesisError
        from ads_ledger.testing.byzantine import BEHAVIOURS, Byzantine, byzantine_allowed

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
        hooks = functools.partial(Byzantine.make, byzantine)
    setup_logging(log_format or cfg.log_format, cfg.log_level)
    trio.run(run_node, home, hooks)


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
    from ads_ledger.client.http import ApiResponseError, NodeClient, TransportError

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
@click.option("--ocpp", is_flag=True, help="Run the agent with the OCPP 2.0.1 driver and a TEST-ONLY OCPP station "
              "process in place of the simulator (docs/ocpp.md).")
@json_option
def devnet(validators: int, directory: Path | None, walkthrough: bool, exit_after_walkthrough: bool,
           ocpp: bool, as_json: bool) -> None:  # fmt: skip
    """Start a local network of validators (subprocesses on loopback) until Ctrl-C."""
    from ads_ledger.testing.devnet import run_devnet

    rc = run_devnet(validators, directory or Path("devnet"), walkthrough, exit_after_walkthrough, as_json, ocpp)
    raise SystemExit(rc)


from ads_ledger.cli.command import command as _command  # noqa: E402 (after the groups above)

main.add_command(_command)

from ads_ledger.cli.cp import cp as _cp  # noqa: E402
from ads_ledger.cli.grant import grant as _grant  # noqa: E402
from ads_ledger.cli.grant import grants as _grants
from ads_ledger.cli.grant import revoke as _revoke
from ads_ledger.cli.identity import eid as _eid  # noqa: E402
from ads_ledger.cli.identity import identity as _identity

for _c in (_cp, _grant, _grants, _revoke, _eid, _identity):
    main.add_command(_c)

from ads_ledger.cli.key import key as _key  # noqa: E402

main.add_command(_key)

from ads_ledger.cli.gov import gov as _gov  # noqa: E402
from ads_ledger.cli.providers import providers as _providers  # noqa: E402

main.add_command(_gov)
main.add_command(_providers)

try:
    from ads_ledger.cli.sim import sim as _sim

    main.add_command(_sim)
except ImportError:  # the simulator ships with the consensus package
    pass


if __name__ == "__main__":
    main()
