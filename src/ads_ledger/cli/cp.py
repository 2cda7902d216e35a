"""`ads cp accept|claim|transfer|show`: owning a charge point (DESIGN §4 ownership flows).

- accept: the paper's flow — the device proposed you (`chargepoint-agent propose-owner`),
  you accept; also completes a transfer offered to you.
- claim: the one-step flow — the device signed your key (`chargepoint-agent sign-ownership`),
  you submit that signature (and, for a new charge point, its device attestation).
- transfer: offer the charge point to a new owner; their accept completes it (grants go).
- show: the record verified as a light client, as a table (`--json` adds the proof).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ads_ledger.cli.common import (
    key_options,
    load_key,
    node_option,
    open_ledger,
    resolve_pub,
    trust_note,
    trust_options,
    verifier,
    wallet_command,
)
from ads_ledger.cli.table import table
from ads_ledger.client.output import emit
from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.wallet import txs
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.ledger import Ledger
from ads_ledger.wallet.units import format_power, format_when

__all__ = ["cp", "submit_and_say", "grant_rows"]


def submit_and_say(ledger: Ledger, key_ref: str, keyring: Path | None, passphrase_file: Path | None,
                   tx: tuple[str, dict[str, Any]], as_json: bool, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Sign with the key, submit, wait for commit, print what happened in words."""
    key = load_key(key_ref, keyring, passphrase_file, ledger.chain_id)
    ttype, body = tx
    out = ledger.submit(key, ttype, body)
    words = txs.describe(ttype, body, key.pub, out.txid)
    emit(as_json, {"type": ttype, "txid": out.txid, "height": out.height, "code": out.code, "signer": key.pub,
                   "node": out.node, "summary": words, **(extra or {})},  # fmt: skip
         f"{words}\n  committed at height {out.height} (tx {out.txid.hex()[:16]}…, via {out.node})")


def grant_rows(grants: list[dict[str, Any]], now: int) -> list[list[str]]:
    rows = []
    for g in grants:
        live = "live" if g["not_before"] <= now < g["not_after"] else ("expired" if now >= g["not_after"] else "not yet")
        lim = g["limits"].get("max_power_w")
        flags = (["exclusive"] if g["exclusive"] else []) + ([f"redelegate {g['redelegate']}"] if g["redelegate"] else [])
        flags += [f"under {g['parent'].hex()[:8]}…"] if g["parent"] is not None else []
        rows.append([g["id"].hex(), g["grantee"].hex()[:16] + "…", ",".join(g["scopes"]),
                     f"{format_when(g['not_before'])} → {format_when(g['not_after'])}",
                     "-" if lim is None else format_power(lim), str(g["priority"]), live, ",".join(flags) or "-"])  # fmt: skip
    return rows


GRANT_HEADERS = ["grant", "grantee", "scopes", "window", "max power", "prio", "state", "flags"]


@click.group()
def cp() -> None:
    """Own charge points: accept, claim, transfer, show."""


@cp.command("accept")
@click.argument("cp_hex", metavar="CP")
@key_options
@node_option
@wallet_command
def cp_accept(cp_hex: str, key_ref: str, keyring: Path | None, passphrase_file: Path | None,
              nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Accept charge point CP, which proposed you as its owner (or was transferred to you)."""
    cpk = txs.parse_pub(cp_hex, "charge point")
    with open_ledger(nodes) as ledger:
        submit_and_say(ledger, key_ref, keyring, passphrase_file, txs.accept(cpk), as_json, {"cp": cpk})


@cp.command("claim")
@click.argument("cp_hex", metavar="CP")
@key_options
@click.option("--device-sig", required=True, metavar="HEX",
              help="The device's signature from `chargepoint-agent sign-ownership --owner YOUR_KEY`.")  # fmt: skip
@click.option("--device", "device_hex", default=None, metavar="HEX",
              help="The device attestation (msgpack hex) sign-ownership printed, for a new charge point.")  # fmt: skip
@click.option("--device-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="…or the device's device_attestation.msgpack.")  # fmt: skip
@node_option
@wallet_command
def cp_claim(cp_hex: str, key_ref: str, keyring: Path | None, passphrase_file: Path | None, device_sig: str,
             device_hex: str | None, device_file: Path | None, nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Claim charge point CP in one step with the signature its device gave you."""
    cpk = txs.parse_pub(cp_hex, "charge point")
    try:
        sig = bytes.fromhex(device_sig)
        raw = bytes.fromhex(device_hex) if device_hex else (device_file.read_bytes() if device_file else None)
        device = None if raw is None else codec.decode(raw)
    except (ValueError, DecodeError) as e:
        raise WalletError(f"--device-sig/--device must be hex from `chargepoint-agent sign-ownership`: {e}") from e
    if device is not None and type(device) is not dict:
        raise WalletError("the device attestation must be a msgpack map")
    with open_ledger(nodes) as ledger:
        submit_and_say(ledger, key_ref, keyring, passphrase_file, txs.claim(cpk, sig, device), as_json, {"cp": cpk})


@cp.command("transfer")
@click.argument("cp_hex", metavar="CP")
@click.option("--to", "to", required=True, metavar="NAME|PUB", help="The new owner's public key (or keyring name).")
@key_options
@node_option
@wallet_command
def cp_transfer(cp_hex: str, to: str, key_ref: str, keyring: Path | None, passphrase_file: Path | None,
                nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Offer CP to a new owner; it is theirs (and every grant dropped) once they accept."""
    cpk = txs.parse_pub(cp_hex, "charge point")
    new = resolve_pub(to, keyring)
    with open_ledger(nodes) as ledger:
        submit_and_say(ledger, key_ref, keyring, passphrase_file, txs.transfer(cpk, new), as_json, {"cp": cpk, "to": new})


@cp.command("show")
@click.argument("cp_hex", metavar="CP")
@node_option
@trust_options
@wallet_command
def cp_show(cp_hex: str, nodes: tuple[str, ...], trust_height: int | None, trust_hash: str | None, as_json: bool) -> None:
    """CP's record — owner, device, pending owner, grants — verified as a light client."""
    cpk = txs.parse_pub(cp_hex, "charge point")
    with open_ledger(nodes) as ledger:
        v = verifier(ledger, trust_height, trust_hash).record(cpk)
    rec = v.value
    now = int(time.time() * 1000)
    out = {"cp": cpk, "record": rec, "verified": v.to_json_obj()}

    def human() -> str:
        head = (f"charge point {cpk.hex()}\n  verified at height {v.height} ({format_when(v.header.time)}): "
                f"{v.signers}/{v.validators} validator signatures, Merkle proof of {len(v.proof.siblings)} "
                f"siblings against the state root{trust_note(v)}")  # fmt: skip
        if rec is None:
            return f"{head}\n  not on the ledger (proven absent): the device has not proposed an owner yet"
        dev = rec.get("device") or {}
        lines = [head, f"  owner    {'none' if rec['owner'] is None else rec['owner'].hex()}",
                 f"  pending  {'-' if rec['pending'] is None else rec['pending'].hex() + ' (must accept)'}",
                 f"  device   {dev.get('model', '?')} (manufacturer {dev.get('issuer', b'').hex()[:16]}…)",
                 f"  epoch    {rec['epoch']}", f"  grants   {len(rec['grants'])}"]  # fmt: skip
        if rec["grants"]:
            lines.append(table(GRANT_HEADERS, grant_rows(rec["grants"], now)))
        return "\n".join(lines)

    emit(as_json, out, human)
