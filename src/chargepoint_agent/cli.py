"""`chargepoint-agent`: the device side of ownership and the agent's home (DESIGN §8).

  init            write DIR/config.toml and a device key (and, on a testnet, the device attestation)
  status          what the agent holds on disk: trust root, verified access list, audit log
  propose-owner   submit cp.propose (with the device attestation when the record is new)
  sign-ownership  print the device_sig (and attestation) an owner's cp.claim needs
  run             serve POST /commands and GET /status, keep the access list verified

Every command has --help and --json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ads_ledger.client.http import ApiResponseError, NodeClient, TransportError
from ads_ledger.client.output import emit, fail, json_option
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.records import acct_key
from chargepoint_agent.config import (
    ATTESTATION_FILE,
    KEY_FILE,
    AgentConfig,
    ConfigError,
    load_config,
    load_device_attestation,
    load_device_key,
    write_config,
    write_device_key,
)

__all__ = ["main"]

HOME = click.option("--home", required=True, type=click.Path(path_type=Path), help="The agent's home directory.")


def _hex32(s: str, what: str, as_json: bool) -> bytes:
    try:
        b = bytes.fromhex(s)
    except ValueError:
        b = b""
    if len(b) != 32:
        fail(as_json, "bad_argument", f"{what} must be 64 hex characters", "give the account's Ed25519 public key in hex")
    return b


def _load(home: Path, as_json: bool) -> tuple[AgentConfig, SigningKey]:
    try:
        return load_config(home), load_device_key(home.resolve())
    except ConfigError as e:
        fail(as_json, "config", str(e))


@click.group()
def main() -> None:
    """The ADS charge-point agent: a light client of the ledger that verifies commands locally."""


@main.command()
@HOME
@click.option("--node", "nodes", multiple=True, required=True, help="Node API URL (repeat: the first is the primary).")
@click.option("--trust-height", type=int, default=None, help="Trust root height (with --trust-hash).")
@click.option("--trust-hash", default=None, help="Trust root block id, hex, obtained out of band.")
@click.option("--listen", default="127.0.0.1:8480", show_default=True, help="host:port of the agent's API.")
@click.option("--test-manufacturer", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="TEST-ONLY: have this manufacturer CA (a testnet's device-ca/) sign the device attestation.")
@click.option("--model", default="ADS-SIM-22", show_default=True, help="Model name in the device statement.")
@click.option("--driver", type=click.Choice(["sim", "ocpp201"]), default="sim", show_default=True)
@click.option("--ocpp-listen", default="", help="host:port the OCPP 2.0.1 station connects to (driver ocpp201).")
@click.option("--ocpp-password", default="", envvar="ADS_OCPP_PASSWORD",
              help="The station's HTTP Basic password, OCPP security profile 1 (or env ADS_OCPP_PASSWORD).")
@click.option("--ocpp-tls-cert", default="", help="PEM certificate chain: wss://, security profile 2 (with a password).")
@click.option("--ocpp-tls-key", default="", help="PEM private key of --ocpp-tls-cert.")
@json_option
def init(home: Path, nodes: tuple[str, ...], trust_height: int | None, trust_hash: str | None, listen: str,
         test_manufacturer: Path | None, model: str, driver: str, ocpp_listen: str, ocpp_password: str,
         ocpp_tls_cert: str, ocpp_tls_key: str, as_json: bool) -> None:  # fmt: skip
    """Write HOME/config.toml and a device key (kept if HOME has one); choose the trust root."""
    home = home.resolve()
    if (home / "config.toml").exists():
        fail(as_json, "exists", f"{home}/config.toml exists", "edit it, or init another --home")
    if (trust_height is None) != (trust_hash is None):
        fail(as_json, "bad_argument", "--trust-height and --trust-hash go together")
    if driver == "ocpp201" and not ocpp_listen:
        fail(as_json, "bad_argument", "--driver ocpp201 needs --ocpp-listen host:port")
    if bool(ocpp_tls_cert) != bool(ocpp_tls_key) or (ocpp_tls_cert and not ocpp_password):
        fail(as_json, "bad_argument", "--ocpp-tls-cert and --ocpp-tls-key go together, and need --ocpp-password",
             "OCPP security profile 2 is TLS plus HTTP Basic")
    warnings: list[str] = []
    try:
        with NodeClient(nodes[0], timeout_s=10.0) as c:
            chain_id = c.status()["chain_id"]
            if trust_height is None:
                header, _ = c.commit(1)
                trust_height, trust_hash = 1, header.block_id().hex()
                warnings.append(f"trusting {nodes[0]}'s block 1 ({trust_hash[:16]}…) as the trust root without "
                                "an out-of-band check: pass --trust-height/--trust-hash from a source you trust")  # fmt: skip
    except (TransportError, ApiResponseError, OSError) as e:
        fail(as_json, "node", f"cannot read the chain from {nodes[0]}: {e}", "start the node, or pass another --node")
    home.mkdir(parents=True, exist_ok=True)
    try:
        key = load_device_key(home)
        made = False
    except ConfigError as e:
        if (home / KEY_FILE).exists():
            fail(as_json, "config", str(e), f"fix or remove {home / KEY_FILE}")
        key = SigningKey.generate()
        write_device_key(home, key)
        made = True
    if test_manufacturer is not None:
        from chargepoint_agent.factory import sign_device_statement

        att = sign_device_statement(test_manufacturer, key.pub, model=model, issued_at=int(time.time() * 1000))
        (home / ATTESTATION_FILE).write_bytes(codec.encode(att))
        warnings.append(f"the device attestation is signed by the TEST-ONLY manufacturer in {test_manufacturer}")
    cfg = AgentConfig(home=home, api_listen=listen, nodes=list(nodes), chain_id=chain_id, trust_height=trust_height,
                      trust_hash=trust_hash or "", driver=driver, ocpp_listen=ocpp_listen,
                      ocpp_basic_auth_password=ocpp_password,
                      ocpp_tls_cert=str(Path(ocpp_tls_cert).resolve()) if ocpp_tls_cert else "",
                      ocpp_tls_key=str(Path(ocpp_tls_key).resolve()) if ocpp_tls_key else "")  # fmt: skip
    write_config(cfg)
    out = {"home": str(home), "cp": key.pub.hex(), "chain_id": chain_id, "trust_height": trust_height,
           "trust_hash": trust_hash, "device_key_created": made, "attestation": (home / ATTESTATION_FILE).exists(),
           "warnings": warnings}  # fmt: skip

    def human() -> str:
        lines = [f"charge point {key.pub.hex()} on {chain_id}; home {home}"]
        lines.append(f"  device key: {'created' if made else 'kept'} ({home / KEY_FILE}, mode 0600)")
        lines.append(f"  trust root: height {trust_height}, block {trust_hash}")
        lines += [f"  warning: {w}" for w in warnings]
        lines.append(f"next: chargepoint-agent propose-owner --home {home} --owner <owner pub hex>")
        return "\n".join(lines)

    emit(as_json, out, human)


def _record(c: NodeClient, cp: bytes) -> dict[str, Any] | None:
    rec = c.chargepoint(cp)
    return None if rec.get("value") is None else codec.decode(bytes.fromhex(rec["value"]))  # type: ignore[return-value]


@main.command("propose-owner")
@HOME
@click.option("--owner", required=True, help="The owner's account public key (hex).")
@json_option
def propose_owner(home: Path, owner: str, as_json: bool) -> None:
    """Submit cp.propose naming OWNER (who then sends cp.accept); waits for the commit."""
    owner_pub = _hex32(owner, "--owner", as_json)
    cfg, key = _load(home, as_json)
    try:
        with NodeClient(cfg.nodes[0], timeout_s=30.0) as c:
            body: dict[str, Any] = {"owner": owner_pub}
            if _record(c, key.pub) is None:  # a new record needs the manufacturer's word
                try:
                    body["device"] = load_device_attestation(cfg.home)
                except ConfigError as e:
                    fail(as_json, "config", str(e))
            raw_acct = c.state(acct_key(key.pub))[1]
            nonce = (0 if raw_acct is None else codec.decode(raw_acct)["nonce"]) + 1  # type: ignore[index]
            r = c.submit_tx(make_envelope(cfg.chain_id, "cp.propose", key, nonce, body), wait_commit=True)
    except ApiResponseError as e:
        fail(as_json, e.code, f"cp.propose refused: {e}", "see the code; `chargepoint-agent status` shows the record")
    except (TransportError, OSError) as e:
        fail(as_json, "node", f"cannot reach {cfg.nodes[0]}: {e}")
    if r.get("ok") is not True:
        fail(as_json, str(r.get("code")), f"cp.propose {r.get('code')}: {r.get('log')}")
    emit(as_json, {"cp": key.pub.hex(), "owner": owner, "txid": r["txid"], "height": r["height"]},
         f"cp.propose committed at height {r['height']}: the owner {owner[:16]}… may now send cp.accept")


@main.command("sign-ownership")
@HOME
@click.option("--owner", required=True, help="The owner's account public key (hex).")
@json_option
def sign_ownership(home: Path, owner: str, as_json: bool) -> None:
    """Print the device_sig (and, for a new record, the device attestation) of OWNER's cp.claim."""
    owner_pub = _hex32(owner, "--owner", as_json)
    cfg, key = _load(home, as_json)
    try:
        with NodeClient(cfg.nodes[0], timeout_s=30.0) as c:
            rec = _record(c, key.pub)
    except (TransportError, ApiResponseError, OSError) as e:
        fail(as_json, "node", f"cannot read this charge point's record from {cfg.nodes[0]}: {e}")
    if rec is not None and rec["owner"] is not None:
        fail(as_json, "cp_owned", f"this charge point is owned by {rec['owner'].hex()}", "the owner must cp.transfer it")
    epoch = 0 if rec is None else rec["epoch"]
    from ads_ledger.state.ownership import owner_sig_body  # here: X.509 code `run` never needs

    sig = key.sign_tagged("ads/own/1", cfg.chain_id, owner_sig_body(key.pub, owner_pub, epoch))
    device = None
    if rec is None:
        try:
            device = codec.encode(load_device_attestation(cfg.home)).hex()
        except ConfigError as e:
            fail(as_json, "config", str(e))
    out = {"cp": key.pub.hex(), "owner": owner, "epoch": epoch, "device_sig": sig.hex(), "device": device}
    emit(as_json, out, lambda: "\n".join(
        [f"device_sig {sig.hex()}", f"(cp {key.pub.hex()}, owner {owner}, epoch {epoch})"]
        + ([f"device attestation (msgpack hex) {device}"] if device else [])))  # fmt: skip


@main.command()
@HOME
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
def run(home: Path, log_level: str) -> None:
    """Run the agent until SIGINT/SIGTERM: verify commands, drive the charger, sign receipts."""
    import logging
    import signal

    import trio

    from chargepoint_agent.drivers.base import AsyncDriver, Driver
    from chargepoint_agent.drivers.sim import SimCharger
    from chargepoint_agent.service import run as run_service

    cfg, key = _load(home, False)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    driver: Driver | AsyncDriver = SimCharger()
    if cfg.driver == "ocpp201":
        from chargepoint_agent.drivers.ocpp201 import OcppDriver, OcppOptions

        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        driver = OcppDriver(OcppOptions(
            listen=cfg.ocpp_listen, password=cfg.ocpp_basic_auth_password, station_id=cfg.ocpp_station_id,
            tls_cert=cfg.ocpp_tls_cert, tls_key=cfg.ocpp_tls_key, call_timeout_s=cfg.ocpp_call_timeout_ms / 1000,
            meter_stale_s=cfg.ocpp_meter_stale_ms / 1000, log_path=cfg.state_dir / "ocpp.log"))  # fmt: skip

    async def main_task() -> None:
        async with trio.open_nursery() as n:
            bound = await n.start(run_service, cfg, driver)
            click.echo(f"charge point {key.pub.hex()} listening on {cfg.api_listen.rpartition(':')[0]}:{bound}", err=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                async for _ in sigs:
                    n.cancel_scope.cancel()
                    break

    trio.run(main_task)


@main.command()
@HOME
@json_option
def status(home: Path, as_json: bool) -> None:
    """What the agent holds on disk (no network): trust root, access list, audit log."""
    cfg, key = _load(home, as_json)
    out: dict[str, Any] = {"cp": key.pub.hex(), "chain_id": cfg.chain_id, "nodes": cfg.nodes,
                           "trust_height": cfg.trust_height, "trust_hash": cfg.trust_hash,
                           "acl_height": None, "owner": None, "grants": [], "audit_entries": 0}  # fmt: skip
    if cfg.state_dir.exists():
        from chargepoint_agent.store import AgentStore

        with AgentStore(cfg.state_dir) as s:
            acl = s.get_meta("acl")
            if acl is not None:
                a = codec.decode(acl)
                out.update(acl_height=a["height"], owner=a["owner"], grants=a["grants"])  # type: ignore[index]
            out["audit_entries"] = s.count()

    def human() -> str:
        lines = [f"charge point {out['cp']} on {cfg.chain_id} (trust root height {cfg.trust_height})"]
        if out["acl_height"] is None:
            lines.append("  no verified access list yet: run `chargepoint-agent run`")
        else:
            owner_hex = out["owner"].hex() if out["owner"] else "none"
            lines.append(f"  access list at height {out['acl_height']}: owner {owner_hex}, {len(out['grants'])} grant(s)")
        lines.append(f"  audit log: {out['audit_entries']} entries")
        return "\n".join(lines)

    emit(as_json, out, human)


if __name__ == "__main__":
    main()
