"""`ads providers show|list|report`: the register of service providers (DESIGN §4 regulator
levers), verified as a light client.

- show PUB: one provider's record (name, roles, cap, live controllable power, suspension).
- list: every registered provider (the proven list gov/providers, then each prov/ record).
- report: per provider, roles, cap, live controllable W and the number of charge points it holds
  grants on, computed from proven state (its lev/ grant index entries), with totals.

Registering and suspending are governance actions: `ads gov propose providers.set|providers.suspend`.
"""

from __future__ import annotations

from typing import Any

import click

from ads_ledger.cli.common import (
    node_option,
    open_ledger,
    trust_note,
    trust_options,
    verifier,
    wallet_command,
)
from ads_ledger.cli.table import table
from ads_ledger.client.output import emit
from ads_ledger.state.records import (
    GOV_PROVIDERS,
    LEV_SUSPENDING,
    lev_grantee_key,
    lev_pg_key,
    prov_key,
)
from ads_ledger.wallet import txs
from ads_ledger.wallet.units import format_power, format_when
from ads_ledger.wallet.verified import Verified, Verifier

__all__ = ["providers"]


@click.group()
def providers() -> None:
    """The register of service providers: roles, capacity caps, suspensions (verified reads)."""


def _cap(rec: dict[str, Any]) -> str:
    return "none" if rec["cap_w"] is None else format_power(rec["cap_w"])


def _row(pub: bytes, rec: dict[str, Any], grants: int) -> dict[str, Any]:
    return {"pub": pub, "name": rec["name"], "roles": rec["roles"], "cap_w": rec["cap_w"], "live_w": rec["live_w"],
            "suspended": rec["suspended"], "height": rec["height"], "grants": grants}  # fmt: skip


def _read_register(v: Verifier) -> tuple[Verified, list[tuple[bytes, dict[str, Any], int]], list[bytes]]:
    """gov/providers and lev/suspending, then each provider's record and grant count, all proven."""
    head, queue = v.states([GOV_PROVIDERS, LEV_SUSPENDING])
    pubs: list[bytes] = head.value or []
    keys = [k for p in pubs for k in (prov_key(p), lev_grantee_key(p))]
    reads = v.states(keys) if keys else []
    out = []
    for i, pub in enumerate(pubs):
        rec, counted = reads[2 * i].value, reads[2 * i + 1].value
        out.append((pub, rec, 0 if counted is None else int(counted["n"])))
    return head, out, list(queue.value or [])


@providers.command("show")
@click.argument("pub_hex", metavar="PUB")
@node_option
@trust_options
@wallet_command
def providers_show(pub_hex: str, nodes: tuple[str, ...], trust_height: int | None, trust_hash: str | None,
                   as_json: bool) -> None:  # fmt: skip
    """PUB's register record — name, roles, cap, live controllable power, suspension — verified."""
    pub = txs.parse_pub(pub_hex, "provider")
    with open_ledger(nodes) as ledger:
        rec_v, count_v, queue_v = verifier(ledger, trust_height, trust_hash).states(
            [prov_key(pub), lev_grantee_key(pub), LEV_SUSPENDING])
    rec, counted = rec_v.value, count_v.value
    grants = 0 if counted is None else int(counted["n"])
    revoking = pub in (queue_v.value or [])
    out = {"pub": pub, "record": rec, "grants": grants, "revoking": revoking, "verified": rec_v.to_json_obj()}

    def human() -> str:
        head = (f"provider {pub.hex()}\n  verified at height {rec_v.height} ({format_when(rec_v.header.time)}): "
                f"{rec_v.signers}/{rec_v.validators} validator signatures, Merkle proof against the state "
                f"root{trust_note(rec_v)}")  # fmt: skip
        if rec is None:
            return (f"{head}\n  not registered (proven absent): no roles, no cap; it holds {grants} grants\n"
                    "  governance registers providers: `ads gov propose providers.set --pub PUB --name N --role R`")
        state = "SUSPENDED" + (" (revoking its grants)" if revoking else "") if rec["suspended"] else "active"
        return "\n".join([head, f"  name       {rec['name']}", f"  roles      {', '.join(rec['roles']) or '-'}",
                          f"  cap        {_cap(rec)}", f"  live       {format_power(rec['live_w'])} "
                          f"in {grants} grants", f"  state      {state}",
                          f"  changed    at height {rec['height']}"])  # fmt: skip

    emit(as_json, out, human)


@providers.command("list")
@node_option
@trust_options
@wallet_command
def providers_list(nodes: tuple[str, ...], trust_height: int | None, trust_hash: str | None, as_json: bool) -> None:
    """Every registered provider (the proven register), verified."""
    with open_ledger(nodes) as ledger:
        head, rows, queue = _read_register(verifier(ledger, trust_height, trust_hash))
    out = {"height": head.height, "providers": [_row(p, r, n) for p, r, n in rows], "verified": head.to_json_obj()}

    def human() -> str:
        lines = [f"{len(rows)} registered provider{'' if len(rows) == 1 else 's'}, verified at height {head.height}{trust_note(head)}"]
        if rows:
            lines.append(table(["provider", "name", "roles", "cap", "live", "state"], [
                [p.hex()[:16] + "…", r["name"], ",".join(r["roles"]) or "-", _cap(r), format_power(r["live_w"]),
                 ("suspended" + ("*" if p in queue else "")) if r["suspended"] else "active"]
                for p, r, _ in rows]))  # fmt: skip
        return "\n".join(lines)

    emit(as_json, out, human)


@providers.command("report")
@click.option("--max-reads", type=click.IntRange(1), default=1000, show_default=True,
              help="Grant index entries read (and verified) per provider to count its charge points.")
@node_option
@trust_options
@wallet_command
def providers_report(max_reads: int, nodes: tuple[str, ...], trust_height: int | None, trust_hash: str | None,
                     as_json: bool) -> None:  # fmt: skip
    """Per provider: roles, cap, live controllable W and charge points, from proven state."""
    with open_ledger(nodes) as ledger:
        v = verifier(ledger, trust_height, trust_hash)
        head, rows, queue = _read_register(v)
        report = []
        for pub, rec, n in rows:
            entries = v.states([lev_pg_key(pub, i) for i in range(min(n, max_reads))]) if n else []
            cps = {e.value[0] for e in entries if e.value is not None}
            report.append({**_row(pub, rec, n), "chargepoints": len(cps), "chargepoints_exact": n <= max_reads,
                           "revoking": pub in queue})  # fmt: skip
    total = sum(r["live_w"] for r in report)
    out = {"height": head.height, "providers": report, "total_live_w": total, "verified": head.to_json_obj()}

    def human() -> str:
        lines = [f"regulator report at height {head.height} ({format_when(head.header.time)}): "
                 f"{len(report)} provider{'' if len(report) == 1 else 's'}, {format_power(total)} live controllable power{trust_note(head)}"]
        if report:
            lines.append(table(["provider", "name", "roles", "cap", "live", "use", "grants", "charge points", "state"], [
                [r["pub"].hex()[:16] + "…", r["name"], ",".join(r["roles"]) or "-", _cap(r), format_power(r["live_w"]),
                 "-" if not r["cap_w"] else f"{100 * r['live_w'] // r['cap_w']}%", str(r["grants"]),
                 str(r["chargepoints"]) + ("" if r["chargepoints_exact"] else "+"),
                 "suspended" + (" (revoking)" if r["revoking"] else "") if r["suspended"] else "active"]
                for r in report]))  # fmt: skip
        return "\n".join(lines)

    emit(as_json, out, human)
