"""Delegation: `grant` (with attenuated sub-grants and exclusive scopes) and `revoke` (DESIGN §4).

A grant's id is `txid[:16]`; a record's grants stay sorted by id. Exclusivity: a grant with
`exclusive: true` holds its scopes alone — no two unexpired exclusive *holds* of a charge point
share a scope over overlapping windows. A hold is a root exclusive grant with its exclusive
sub-grants: a sub-grant may be exclusive only under an exclusive parent, and then shares its
parent's hold rather than being a second holder. §7's exclusive scope `flex` may only be granted
exclusively, so it is re-delegated along one hold.

A sub-grant is attenuated (§4): scopes ⊆, window ⊆, every limit the parent has present and ≤,
`priority ≤` the parent's (a delegate never outranks the grant it came from in OCPP stack-level
conflicts), `exclusive` only under an exclusive parent, `redelegate <` the parent's.

The regulator levers (levers.py) add the register's refusals — `suspended`, `role_required`,
`capacity_cap` — and every record write goes through `levers.put_cp`, which keeps each
grantee's live_w and the grant indexes exact.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from ads_ledger.state.account import require_identity
from ads_ledger.state.context import Ctx
from ads_ledger.state.envelope import Envelope
from ads_ledger.state.levers import check_provider_rules, put_cp
from ads_ledger.state.ownership import load_cp
from ads_ledger.state.reasons import (
    BadWindow,
    ExclusiveHeld,
    ExclusiveRequired,
    GrantUnknown,
    NoOwner,
    NotAllowed,
    NotAttenuated,
    NotGrantee,
    NotOwner,
    TooManyGrants,
)
from ads_ledger.state.records import EXCLUSIVE_SCOPES, find_grant, prune_grants, short

__all__ = ["apply_grant", "apply_revoke", "remove_subtree", "attenuation_error"]

# Test-only planted bugs (mutation testing): each drops one rule. The state-machine test must
# catch every one; production code never sets them.
MUTANT_REVOKE_NO_CASCADE = False  # revoke removes the grant but not its sub-grants
MUTANT_NO_PRIORITY_CAP = False  # a sub-grant may outrank its parent
MUTANT_NO_EXCLUSIVE_CAP = False  # a sub-grant may be exclusive under a shared parent
MUTANT_NO_LIMIT_PRESENCE = False  # a sub-grant may drop a limit its parent has


def attenuation_error(parent: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Why sub-grant body `b` is not attenuated w.r.t. `parent` (None if it is)."""
    if not set(b["scopes"]) <= set(parent["scopes"]):
        return f"scopes {sorted(set(b['scopes']) - set(parent['scopes']))} are not in the parent grant"
    if b["not_before"] < parent["not_before"] or b["not_after"] > parent["not_after"]:
        return (
            f"window [{b['not_before']}, {b['not_after']}) is not inside the parent's "
            f"[{parent['not_before']}, {parent['not_after']})"
        )
    for name, cap in parent["limits"].items():
        mine = b["limits"].get(name)
        if mine is None and MUTANT_NO_LIMIT_PRESENCE:
            continue
        if mine is None or mine > cap:
            return f"limit {name} must be at most the parent's {cap} (got {mine})"
    if b["priority"] > parent["priority"] and not MUTANT_NO_PRIORITY_CAP:
        return f"priority {b['priority']} is above the parent's {parent['priority']}"
    if b["exclusive"] and not parent["exclusive"] and not MUTANT_NO_EXCLUSIVE_CAP:
        return "exclusive: true under a parent that holds its scopes shared"
    if b["redelegate"] >= parent["redelegate"]:
        return f"redelegate must be below the parent's {parent['redelegate']}"
    return None


def apply_grant(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    b, signer, now = env.body, env.signer, ctx.time
    cp = b["cp"]
    rec = load_cp(ctx, cp)
    owner = rec["owner"]
    if owner is None:
        raise NoOwner(f"charge point {short(cp)} has no owner yet; only an owned charge point has grants")
    if not b["not_before"] < b["not_after"]:
        raise BadWindow("not_before must be earlier than not_after")
    if b["not_after"] <= now:
        raise BadWindow(f"not_after {b['not_after']} is not after block time {now}; the grant would be born expired")
    scopes = sorted(b["scopes"])
    if not b["exclusive"] and not EXCLUSIVE_SCOPES.isdisjoint(scopes):
        raise ExclusiveRequired(
            f"scope {sorted(EXCLUSIVE_SCOPES & set(scopes))[0]} is exclusive; set exclusive: true"
        )
    grants = prune_grants(rec["grants"], now)
    parent = b["parent"]
    if parent is None:
        if signer != owner:
            raise NotOwner(
                f"charge point {short(cp)} is owned by {short(owner)}; a delegate must name the "
                "grant it re-delegates from as `parent`"
            )
        require_identity(ctx, signer)
    else:
        p = find_grant(grants, parent)
        if p is None:
            raise GrantUnknown(f"parent grant {parent.hex()} is not live on charge point {short(cp)}")
        if p["grantee"] != signer:
            raise NotGrantee(f"parent grant {parent.hex()} is held by {short(p['grantee'])}, not the signer")
        if p["redelegate"] == 0:
            raise NotGrantee(f"parent grant {parent.hex()} does not allow re-delegation (redelegate 0)")
        why = attenuation_error(p, b)
        if why is not None:
            raise NotAttenuated(f"a sub-grant must be attenuated: {why}")
    if b["exclusive"]:
        hold = _hold(grants, parent)
        for g in grants:
            if (
                g["exclusive"]
                and (hold is None or _hold(grants, g["id"]) != hold)
                and g["not_before"] < b["not_after"]
                and b["not_before"] < g["not_after"]
                and not set(g["scopes"]).isdisjoint(scopes)
            ):
                raise ExclusiveHeld(
                    f"grant {g['id'].hex()} to {short(g['grantee'])} holds "
                    f"{sorted(set(g['scopes']) & set(scopes))} exclusively until {g['not_after']}; "
                    "revoke it or choose a window after it"
                )
    check_provider_rules(ctx, signer, b, scopes)
    if len(grants) >= ctx.params()["max_grants_per_cp"]:
        raise TooManyGrants(
            f"charge point {short(cp)} has {len(grants)} live grants, the limit; revoke some first"
        )
    gid = txid[:16]
    grant = {
        "exclusive": b["exclusive"],
        "grantee": b["grantee"],
        "height": ctx.height,
        "id": gid,
        "issuer": signer,
        "limits": b["limits"],
        "not_after": b["not_after"],
        "not_before": b["not_before"],
        "parent": parent,
        "priority": b["priority"],
        "redelegate": b["redelegate"],
        "scopes": scopes,
    }
    new = list(grants)
    new.insert(bisect_left([g["id"] for g in grants], gid), grant)
    put_cp(ctx, cp, rec["grants"], {**rec, "grants": new, "updated": ctx.height})


def _hold(grants: list[dict[str, Any]], gid: bytes | None) -> bytes | None:
    """The root of the exclusive hold grant `gid` belongs to (None: `gid` is None or shared)."""
    by_id = {g["id"]: g for g in grants}
    root = None
    while gid is not None:
        g = by_id.get(gid)
        if g is None or not g["exclusive"]:
            break
        root, gid = gid, g["parent"]
    return root


def remove_subtree(grants: list[dict[str, Any]], root: bytes) -> list[dict[str, Any]]:
    """`grants` without `root` and, recursively, every grant descending from it."""
    gone = {root}
    if not MUTANT_REVOKE_NO_CASCADE:
        grown = True
        while grown:  # ids are not in tree order, so sweep until no new descendant appears
            grown = False
            for g in grants:
                if g["parent"] in gone and g["id"] not in gone:
                    gone.add(g["id"])
                    grown = True
    return [g for g in grants if g["id"] not in gone]


def apply_revoke(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    cp, gid, signer = env.body["cp"], env.body["grant"], env.signer
    rec = load_cp(ctx, cp)
    grants = prune_grants(rec["grants"], ctx.time)
    g = find_grant(grants, gid)
    if g is None:
        raise GrantUnknown(f"grant {gid.hex()} is not live on charge point {short(cp)} (expired or revoked)")
    if signer not in (rec["owner"], g["issuer"], g["grantee"]):
        raise NotAllowed(
            f"only the owner {short(rec['owner'])}, the issuer {short(g['issuer'])} or the grantee "
            f"{short(g['grantee'])} can revoke grant {gid.hex()}"
        )
    put_cp(ctx, cp, rec["grants"], {**rec, "grants": remove_subtree(grants, gid), "updated": ctx.height})
