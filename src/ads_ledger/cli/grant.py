"""`ads grant`, `ads revoke`, `ads grants`: delegation (DESIGN §4 `grant`/`revoke`, §8 GET /grants).

    ads grant CP GRANTEE --scope charging.profile --scope meter.read --max-power 11kW --for 30d
        [--from 2027-01-01] [--exclusive] [--priority 20] [--redelegate 1] [--parent ID] --key NAME
    ads revoke CP GRANT --key NAME
    ads grants --grantee NAME|PUB     what may I control? (the index, each record then verified)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ads_ledger.cli.common import (
    key_options,
    node_option,
    open_ledger,
    resolve_pub,
    trust_note,
    trust_options,
    verifier,
    wallet_command,
)
from ads_ledger.cli.cp import GRANT_HEADERS, grant_rows, submit_and_say
from ads_ledger.cli.key import keyring_option
from ads_ledger.cli.table import table
from ads_ledger.client.output import emit
from ads_ledger.state.records import SCOPES, cp_key
from ads_ledger.wallet import txs
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.units import parse_duration, parse_power, parse_when

__all__ = ["grant", "revoke", "grants"]


@click.command("grant")
@click.argument("cp_hex", metavar="CP")
@click.argument("grantee", metavar="GRANTEE")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="SCOPE",
              help=f"Repeatable: {', '.join(sorted(SCOPES))}.")  # fmt: skip
@click.option("--max-power", default=None, metavar="POWER", help="Limit: 11kW, 7400W …")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long: 2h, 30d, 1w …")
@click.option("--from", "start", default="now", show_default=True, metavar="WHEN",
              help="Start: now, 2027-01-01, 2027-01-01T08:00[+01:00] (UTC unless an offset is given).")  # fmt: skip
@click.option("--exclusive", is_flag=True, help="Nobody else may hold these scopes at the same time (flex needs it).")
@click.option("--priority", type=int, default=0, show_default=True, help="0..99; the charge point's stack level.")
@click.option("--redelegate", type=int, default=0, show_default=True, help="How many levels the grantee may pass it on.")
@click.option("--parent", default=None, metavar="ID", help="Re-delegate under this grant you hold.")
@key_options
@node_option
@wallet_command
def grant(cp_hex: str, grantee: str, scopes: tuple[str, ...], max_power: str | None, duration: str, start: str,
          exclusive: bool, priority: int, redelegate: int, parent: str | None, key_ref: str, keyring: Path | None,
          passphrase_file: Path | None, nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Grant GRANTEE rights on charge point CP (as its owner, or re-delegating a grant you hold)."""
    now = int(time.time() * 1000)
    cpk = txs.parse_pub(cp_hex, "charge point")
    who = resolve_pub(grantee, keyring)
    # "now" starts a minute back: a charge point's clock may lag the wallet's
    nb = now - 60_000 if start.strip().lower() == "now" else parse_when(start, now)
    spec = txs.GrantSpec(cp=cpk, grantee=who, scopes=tuple(scopes), not_before=nb, not_after=nb + parse_duration(duration),
                         max_power_w=None if max_power is None else parse_power(max_power), exclusive=exclusive,
                         priority=priority, redelegate=redelegate,
                         parent=None if parent is None else txs.parse_id(parent, "--parent"))  # fmt: skip
    tx = txs.grant(spec, now)
    with open_ledger(nodes) as ledger:
        submit_and_say(ledger, key_ref, keyring, passphrase_file, tx, as_json, {"cp": cpk, "grantee": who})


@click.command("revoke")
@click.argument("cp_hex", metavar="CP")
@click.argument("grant_id", metavar="GRANT")
@key_options
@node_option
@wallet_command
def revoke(cp_hex: str, grant_id: str, key_ref: str, keyring: Path | None, passphrase_file: Path | None,
           nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Revoke grant GRANT on CP (and its sub-grants): as owner, its issuer or its grantee."""
    cpk = txs.parse_pub(cp_hex, "charge point")
    gid = txs.parse_id(grant_id)
    with open_ledger(nodes) as ledger:
        submit_and_say(ledger, key_ref, keyring, passphrase_file, txs.revoke(cpk, gid), as_json, {"cp": cpk, "grant": gid})


@click.command("grants")
@click.option("--grantee", required=True, metavar="NAME|PUB", help="Whose grants: a key name or pub hex.")
@keyring_option
@node_option
@trust_options
@wallet_command
def grants(grantee: str, keyring: Path | None, nodes: tuple[str, ...], trust_height: int | None,
           trust_hash: str | None, as_json: bool) -> None:  # fmt: skip
    """What may GRANTEE control? The node's index, each charge point's record then verified."""
    who = resolve_pub(grantee, keyring)
    now = int(time.time() * 1000)
    with open_ledger(nodes) as ledger:
        listed = ledger.grants_of(who)
        cps = sorted({bytes.fromhex(x["cp"]) for x in listed.get("grants", []) if isinstance(x, dict) and "cp" in x})
        if len(cps) > 1000:
            raise WalletError(f"the index lists {len(cps)} charge points; over 1000 is more than one read verifies")
        found: list[tuple[bytes, dict[str, Any]]] = []
        proofs = verifier(ledger, trust_height, trust_hash).states([cp_key(c) for c in cps]) if cps else []
    for c, v in zip(cps, proofs):
        mine = [g for g in (v.value or {}).get("grants", []) if g["grantee"] == who]
        found.extend((c, g) for g in mine)
    claimed = {(x["cp"], x["grant"]["id"]) for x in listed.get("grants", []) if isinstance(x, dict)}
    unproven = len(claimed - {(c.hex(), g["id"].hex()) for c, g in found})
    height = proofs[0].height if proofs else listed.get("height")
    out = {"grantee": who, "height": height, "grants": [{"cp": c, "grant": g} for c, g in found],
           "index_only": unproven}  # fmt: skip

    def human() -> str:
        if not found:
            return f"no grants for {who.hex()[:16]}… (index at height {listed.get('height')})"
        rows = [[c.hex()[:16] + "…", *r] for (c, _), r in zip(found, grant_rows([g for _, g in found], now))]
        note = f"\n  {unproven} index entries are not in the verified records (stale index): ignored" if unproven else ""
        return (f"{len(found)} grant(s) for {who.hex()[:16]}…, each verified at height {height}"
                f"{trust_note(proofs[0])}\n" + table(["cp", *GRANT_HEADERS], rows) + note)  # fmt: skip

    emit(as_json, out, human)
