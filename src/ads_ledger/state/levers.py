"""Regulator levers (DESIGN §4): the provider register's rules, live_w bookkeeping, expiry and
suspension sweeps.

Every grant in a `cp/` record is indexed (keys in records.py, all reached by `get`, so each
operation costs O(1) state reads and writes whatever a provider holds):
- `lev/gi/<cp><gid>` back-pointers: the grant's slot in its grantee's list, its expiry slot and
  the watts it counts. The back-pointer is the token that the grant is still counted: removing a
  grant from live_w deletes it, so every removal path subtracts exactly once.
- `lev/g/<pub>` + `lev/pg/<pub><i>`: each grantee's grants as a dense array (swap-remove), and
  their control watts `w` — for registered and unregistered keys alike, so a key registered
  later starts with the right live_w and a suspension finds every grant it holds.
- `lev/xn/<second>` + `lev/x/<second><x>`: grants by the second their window ends.
  `lev/expiry.next` is the first second not yet swept.

`put_cp` is the one way rules write a charge point record: it diffs the grant ids before and
after and (un)indexes the difference, so grant, revoke (with its cascade), pruning on touch and
the grants a completed transfer drops are all counted by construction.

At the start of every block (`begin_block`): the expiry sweep takes grants whose `not_after ≤`
block time out of live_w and the indexes (without rewriting their cp/ record: an expired grant
is dead to every reader and is pruned when a tx next touches the record), at most
`expiry_batch` index entries per block, oldest second first; then the suspension sweep revokes
suspended providers' grants with their sub-grants, at most `suspension_batch` cp/ records per
block, providers in the order they were suspended, each provider's grants from its list's end.
A backlog only delays releases: live_w never under-counts.

live_w counts, per grantee, `limits.max_power_w` of every unexpired grant naming a control scope
(`charging.control`, `charging.profile`, `flex`), sub-grants included: a sub-grant counts for its
own grantee (who can then command that power), whether or not its parent's grantee also counts
it. A not-yet-valid grant counts from the block that grants it.
"""

from __future__ import annotations

from typing import Any

from ads_ledger.state.context import Ctx
from ads_ledger.state.reasons import CapacityCap, RoleRequired, Suspended
from ads_ledger.state.records import (
    CONTROL_SCOPES,
    LEV_EXPIRY,
    LEV_SUSPENDING,
    control_watts,
    cp_key,
    drop_orphans,
    find_grant,
    lev_gi_key,
    lev_grantee_key,
    lev_pg_key,
    lev_x_key,
    lev_xn_key,
    prov_key,
    prune_grants,
    short,
)

__all__ = ["put_cp", "check_provider_rules", "begin_block", "revoke_subtree_of", "live_watts"]

# Test-only planted bugs (mutation testing); the state-machine test must catch each.
MUTANT_NO_EXPIRY_SWEEP = False  # expired grants stay in live_w until a tx touches their record
MUTANT_FORGET_SUB_GRANTS = False  # a cascade's removed sub-grants stay counted


def live_watts(ctx: Ctx, pub: bytes) -> int:
    """The control watts `pub` holds in live grants (registered or not)."""
    g = ctx.state.get(lev_grantee_key(pub))
    return 0 if g is None else int(g["w"])


def _add_live(ctx: Ctx, pub: bytes, dn: int, dw: int) -> int:
    """Adjust `pub`'s count and watts (and its prov/ live_w); returns its count before."""
    k = lev_grantee_key(pub)
    g = ctx.state.get(k) or {"n": 0, "w": 0}
    n, w = g["n"] + dn, g["w"] + dw
    ctx.state.put(k, {"n": n, "w": w} if n else None)
    if dw:
        prov = ctx.state.get(prov_key(pub))
        if prov is not None:
            ctx.state.put(prov_key(pub), {**prov, "live_w": w})
    return int(g["n"])


def _count(ctx: Ctx, delta: int) -> None:
    cur = ctx.state.get(LEV_EXPIRY)
    if cur is None:
        ctx.state.put(LEV_EXPIRY, {"n": 1, "next": ctx.time // 1000})
        return
    n = cur["n"] + delta
    ctx.state.put(LEV_EXPIRY, {"n": n, "next": cur["next"]} if n else None)


def _index(ctx: Ctx, cp: bytes, g: dict[str, Any]) -> None:
    st, gid, pub = ctx.state, g["id"], g["grantee"]
    w = control_watts(g)
    i = _add_live(ctx, pub, 1, w)
    st.put(lev_pg_key(pub, i), [cp, gid])
    s = g["not_after"] // 1000
    x = st.get(lev_xn_key(s)) or 0
    st.put(lev_x_key(s, x), [cp, gid, g["not_after"]])
    st.put(lev_xn_key(s), x + 1)
    st.put(lev_gi_key(cp, gid), {"i": i, "p": pub, "s": s, "w": w, "x": x})
    _count(ctx, 1)


def _unindex(ctx: Ctx, cp: bytes, gid: bytes) -> None:
    """Take a grant out of live_w and the indexes; a no-op if it already left them."""
    st = ctx.state
    e = st.get(lev_gi_key(cp, gid))
    if e is None:
        return
    st.put(lev_gi_key(cp, gid), None)
    pub, i, s, x = e["p"], e["i"], e["s"], e["x"]
    last = _add_live(ctx, pub, -1, -e["w"]) - 1
    if i != last:  # swap-remove: the grantee's last grant takes this slot
        moved = st.get(lev_pg_key(pub, last))
        st.put(lev_pg_key(pub, i), moved)
        mk = lev_gi_key(moved[0], moved[1])
        st.put(mk, {**st.get(mk), "i": i})
    st.put(lev_pg_key(pub, last), None)
    last = st.get(lev_xn_key(s)) - 1
    if x != last:
        moved = st.get(lev_x_key(s, last))
        st.put(lev_x_key(s, x), moved)
        mk = lev_gi_key(moved[0], moved[1])
        st.put(mk, {**st.get(mk), "x": x})
    st.put(lev_x_key(s, last), None)
    st.put(lev_xn_key(s), last or None)
    _count(ctx, -1)


def put_cp(ctx: Ctx, cp: bytes, before: list[dict[str, Any]], rec: dict[str, Any]) -> None:
    """Write charge point record `rec`, whose grants were `before`, keeping the indexes exact."""
    after = {g["id"] for g in rec["grants"]}
    gone = [g for g in before if g["id"] not in after]
    if MUTANT_FORGET_SUB_GRANTS:
        ids = {g["id"] for g in gone}
        gone = [g for g in gone if g["parent"] not in ids]
    for g in gone:
        _unindex(ctx, cp, g["id"])
    had = {g["id"] for g in before}
    for g in rec["grants"]:
        if g["id"] not in had:
            _index(ctx, cp, g)
    ctx.state.put(cp_key(cp), rec)


def check_provider_rules(ctx: Ctx, signer: bytes, body: dict[str, Any], scopes: list[str]) -> None:
    """The register's refusals for a grant (`suspended`, `role_required`, `capacity_cap`).

    A key without a prov/ record is an unregistered provider: it has no roles (so it is refused
    every scope that gov/params.scope_roles lists), no cap and cannot be suspended. Scopes not
    in scope_roles need no role and no registration."""
    grantee = body["grantee"]
    prov = ctx.state.get(prov_key(grantee))
    issuer = ctx.state.get(prov_key(signer))
    if issuer is not None and issuer["suspended"]:
        raise Suspended(f"provider {short(signer)} ({issuer['name']}) is suspended by governance; "
                        "it cannot re-delegate")  # fmt: skip
    if prov is not None and prov["suspended"]:
        raise Suspended(f"provider {short(grantee)} ({prov['name']}) is suspended by governance; "
                        "it cannot receive grants until governance lifts the suspension")  # fmt: skip
    roles = set() if prov is None else set(prov["roles"])
    scope_roles = ctx.params()["scope_roles"]
    for scope in scopes:
        need = scope_roles.get(scope)
        if need is not None and roles.isdisjoint(need):
            who = "is not a registered provider" if prov is None else f"has roles {sorted(roles)}"
            raise RoleRequired(
                f"scope {scope} may only be granted to a provider with role {' or '.join(need)}; "
                f"{short(grantee)} {who} (governance registers providers: providers.set)"
            )
    if prov is None or prov["cap_w"] is None or CONTROL_SCOPES.isdisjoint(scopes):
        return
    cap, live = prov["cap_w"], prov["live_w"]
    adds = body["limits"].get("max_power_w")
    if adds is None:
        raise CapacityCap(f"provider {short(grantee)} has a capacity cap of {cap} W: a control grant "
                          "to it must state limits.max_power_w")  # fmt: skip
    if live + adds > cap:
        raise CapacityCap(
            f"provider {short(grantee)} has a capacity cap of {cap} W and holds {live} W of live "
            f"control grants; this grant adds {adds} W ({live + adds - cap} W over); revoke "
            "grants or ask governance to raise the cap"
        )


def revoke_subtree_of(ctx: Ctx, cp: bytes, gid: bytes) -> None:
    """Suspension: remove grant `gid` and its sub-grants from `cp`'s record (pruning it too)."""
    rec = ctx.state.get(cp_key(cp))
    grants = prune_grants(rec["grants"], ctx.time)
    if find_grant(grants, gid) is not None:
        grants = drop_orphans([g for g in grants if g["id"] != gid])
    put_cp(ctx, cp, rec["grants"], {**rec, "grants": grants, "updated": ctx.height})
    _unindex(ctx, cp, gid)  # already gone unless the record and the index disagree


CURSOR_SLACK = 60  # seconds of empty buckets re-probed before lev/expiry.next is rewritten


def _sweep_expired(ctx: Ctx, budget: int) -> None:
    cur = ctx.state.get(LEV_EXPIRY)
    if cur is None:
        return
    st, now = ctx.state, ctx.time
    s, now_s, n0 = cur["next"], now // 1000, cur["n"]
    while budget > 0 and s <= now_s:
        n = st.get(lev_xn_key(s)) or 0
        budget -= 1
        if s < now_s:  # a whole second in the past: every entry is expired, pop from the end
            while n > 0 and budget > 0:
                e = st.get(lev_x_key(s, n - 1))
                _unindex(ctx, e[0], e[1])
                n, budget = n - 1, budget - 1
            if n:
                break
            s += 1
        else:  # the current second: only entries whose not_after has passed
            x = 0
            while x < n and budget > 0:
                e = st.get(lev_x_key(s, x))
                budget -= 1
                if e[2] <= now:
                    _unindex(ctx, e[0], e[1])  # the last entry moves into slot x
                    n -= 1
                else:
                    x += 1
            break
    cur = st.get(LEV_EXPIRY)
    # an idle chain does not rewrite the cursor every block: empty seconds are cheap to re-probe
    progressed = cur is not None and (cur["n"] != n0 or budget == 0 or s - cur["next"] >= CURSOR_SLACK)
    if cur is not None and cur["next"] != s and progressed:
        st.put(LEV_EXPIRY, {"n": cur["n"], "next": s})


def _sweep_suspended(ctx: Ctx, budget: int) -> None:
    queue = ctx.state.get(LEV_SUSPENDING)
    if not queue:
        return
    st, queue, before = ctx.state, list(queue), len(queue)
    while queue and budget > 0:
        pub = queue[0]
        g = st.get(lev_grantee_key(pub))
        if g is None:
            queue.pop(0)
            continue
        cp, gid = st.get(lev_pg_key(pub, g["n"] - 1))
        revoke_subtree_of(ctx, cp, gid)
        budget -= 1
    if len(queue) != before:
        st.put(LEV_SUSPENDING, queue or None)


def begin_block(ctx: Ctx) -> None:
    """The block's lever work before its txs: expiry sweep, then suspension sweep."""
    params = ctx.params()
    if not MUTANT_NO_EXPIRY_SWEEP:
        _sweep_expired(ctx, params["expiry_batch"])
    _sweep_suspended(ctx, params["suspension_batch"])
    ctx.state.commit()
