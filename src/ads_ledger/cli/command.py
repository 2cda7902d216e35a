"""`ads command send`: a provider (or the owner) signs a DESIGN §7 command, sends it straight
to the charge point's agent, checks that the receipt is the charge point's answer to exactly
this command, and prints it in words. Exit status 1 on any refusal.

    ads command send --key provider.key --cp HEX --agent URL --action charging.profile.set
        --limit 7.4kW --for 2h [--grant HEX | --node URL] [--owner]

The grant is `--grant`, or found through a node's `GET /grants?grantee=` (the live grant of
this charge point whose scopes cover the action, highest priority first). The charge point
sets the plan's stack level from that grant's priority itself.
"""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path
from typing import Any

import click

from ads_ledger.cli.common import load_key
from ads_ledger.cli.key import keyring_option, passphrase_option
from ads_ledger.client.http import ApiResponseError, NodeClient, TransportError
from ads_ledger.client.output import emit, fail, json_option
from ads_ledger.core.crypto import SigningKey
from ads_ledger.wallet.commands import ReceiptError, check_receipt, post_command, sign_command
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.keystore import KeystoreError
from ads_ledger.wallet.units import parse_duration, parse_power

__all__ = ["command"]

SCOPE = {
    "charging.start": "charging.control", "charging.stop": "charging.control",
    "charging.profile.set": "charging.profile", "charging.profile.clear": "charging.profile",
    "flex.activate": "flex", "flex.arm": "flex", "meter.read": "meter.read", "status.read": "status.read",
    "availability.set": "availability",
}  # fmt: skip
def _params(action: str, limit: str | None, duration: str | None, profile_id: int, connector: int | None,
            available: bool | None, raw: str | None, now: int) -> dict[str, Any]:  # fmt: skip
    if raw is not None:
        try:
            p = json.loads(raw)
        except ValueError as e:
            raise click.BadParameter(f"--params is not JSON: {e}") from e
        if not isinstance(p, dict):
            raise click.BadParameter("--params must be a JSON object")
        return p
    if action in ("charging.start", "charging.stop"):
        return {} if connector is None else {"connector": connector}
    if action == "charging.profile.set":
        if limit is None or duration is None:
            raise click.BadParameter("charging.profile.set needs --limit and --for")
        return {"profile": {"id": profile_id, "valid_from": now, "valid_to": now + parse_duration(duration),
                            "periods": [[0, parse_power(limit)]]}}  # fmt: skip
    if action == "charging.profile.clear":
        return {"id": profile_id}
    if action == "flex.activate":
        if limit is None or duration is None:
            raise click.BadParameter("flex.activate needs --limit and --for")
        return {"limit_w": parse_power(limit), "duration_s": parse_duration(duration) // 1000}
    if action == "availability.set":
        if available is None:
            raise click.BadParameter("availability.set needs --available/--unavailable")
        return {"available": available}
    if action in ("meter.read", "status.read"):
        return {}
    raise click.BadParameter(f"{action} takes --params JSON")


def _find_grant(node: str, key: SigningKey, cp: bytes, scope: str, now: int) -> bytes:
    with NodeClient(node, timeout_s=10.0) as c:
        listed = c.grants(key.pub)["grants"]
    fit = [x["grant"] for x in listed if x["cp"] == cp.hex() and scope in x["grant"]["scopes"]
           and x["grant"]["not_before"] <= now < x["grant"]["not_after"]]  # fmt: skip
    if not fit:
        raise click.ClickException(f"no live grant on charge point {cp.hex()[:16]}… gives {key.pub.hex()[:16]}… "
                                   f"scope {scope}; ask the owner for one")  # fmt: skip
    return bytes.fromhex(max(fit, key=lambda g: g["priority"])["id"])


@click.group()
def command() -> None:
    """Signed commands straight to a charge point (DESIGN §7)."""


@command.command("send")
@click.option("--key", "key_ref", required=True,
              help='The issuer: a keyring key name (or pub hex), or a key file {"pub", "seed"} '
                   "(e.g. devnet/wallet/provider.key).")
@keyring_option
@passphrase_option
@click.option("--cp", "cp_hex", required=True, help="The charge point's public key (hex).")
@click.option("--agent", required=True, help="The charge point's agent URL (http://host:port).")
@click.option("--action", required=True, type=click.Choice(sorted(SCOPE)))
@click.option("--grant", "grant_hex", default=None, help="The grant to act under (hex); or --node to find it.")
@click.option("--node", default=None, help="A node API URL to find the grant through GET /grants.")
@click.option("--owner", "as_owner", is_flag=True, help="Speak as the owner (no grant).")
@click.option("--chain-id", default=None, help="The chain id (default: the agent's, from GET /status via --node).")
@click.option("--limit", default=None, help="Power: 7400, 7.4kW (profiles, flex).")
@click.option("--for", "duration", default=None, help="Duration: 900, 15m, 2h (profiles, flex).")
@click.option("--id", "profile_id", default=1, show_default=True, type=int, help="Charging profile id.")
@click.option("--connector", default=None, type=int)
@click.option("--available/--unavailable", default=None)
@click.option("--params", "raw_params", default=None, help="The params map as JSON (any action).")
@json_option
def send(key_ref: str, keyring: Path | None, passphrase_file: Path | None, cp_hex: str, agent: str, action: str, grant_hex: str | None, node: str | None,
         as_owner: bool, chain_id: str | None, limit: str | None, duration: str | None, profile_id: int,
         connector: int | None, available: bool | None, raw_params: str | None, as_json: bool) -> None:  # fmt: skip
    """Sign ACTION for charge point CP, send it to its agent, verify and print the receipt."""
    try:
        cp = bytes.fromhex(cp_hex)
        assert len(cp) == 32
    except (ValueError, AssertionError):
        fail(as_json, "bad_argument", "--cp must be 64 hex characters")
    now = int(time.time() * 1000)
    try:
        params = _params(action, limit, duration, profile_id, connector, available, raw_params, now)
        if chain_id is None:
            if node is None:
                raise click.BadParameter("give --chain-id, or --node to read it")
            with NodeClient(node, timeout_s=10.0) as c:
                chain_id = str(c.status()["chain_id"])
        key = load_key(key_ref, keyring, passphrase_file, chain_id)
        grant = None
        if not as_owner:
            if grant_hex is not None:
                grant = bytes.fromhex(grant_hex)
            elif node is not None:
                grant = _find_grant(node, key, cp, SCOPE[action], now)
            else:
                raise click.BadParameter("give --grant, --node (to find it) or --owner")
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    except WalletError as e:
        fail(as_json, e.code, str(e), e.hint)
    except (click.ClickException, ValueError) as e:
        fail(as_json, "bad_argument", str(e))
    except (TransportError, ApiResponseError, OSError) as e:
        fail(as_json, "node", f"cannot read the chain from {node}: {e}")
    envelope = sign_command(key, chain_id, cp=cp, action=action, params=params, seq=now, issued_at=now,
                            expires_at=now + 60_000, grant=grant)  # seq: ms, rising per issuer  # fmt: skip
    try:
        answer = post_command(agent, envelope)
        receipt = check_receipt(cp, chain_id, envelope, answer)
    except (urllib.error.URLError, OSError) as e:
        fail(as_json, "agent", f"cannot reach the charge point at {agent}: {e}", "is `chargepoint-agent run` up?")
    except (ReceiptError, ValueError) as e:
        fail(as_json, "bad_receipt", f"the answer is not this charge point's receipt for the command: {e}")
    out = {"cp": cp, "action": action, "grant": grant, "code": receipt["code"], "ok": receipt["ok"],
           "acl_height": receipt["acl_height"], "at": receipt["at"], "data": receipt["data"]}  # fmt: skip

    def human() -> str:
        if receipt["ok"]:
            extra = ", ".join(f"{k} {v}" for k, v in sorted(receipt["data"].items()) if not isinstance(v, (list, dict)))
            return f"accepted by charge point {cp.hex()[:16]}… (access list at height {receipt['acl_height']}): {extra}"
        return f"refused ({receipt['code']}): {receipt['data'].get('message', '')}"

    emit(as_json, out, human)
    if not receipt["ok"]:
        raise SystemExit(1)
