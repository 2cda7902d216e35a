"""Governance (`gov`, DESIGN §4): k-of-n member multisig over validators, anchors, revoked
issuers, members, params, and the register of service providers (regulator levers).

Trust anchors have a purpose: `eid` anchors root the eID brokers' chains (`attest`), `device`
anchors the manufacturers' (device attestations). `issuers.revoke` lists a compromised broker's
or manufacturer's leaf certificate (H(leaf DER)) in gov/revoked: its identities stop counting and
it cannot put new charge points on the ledger.

The envelope's `auth` must hold at least `threshold` distinct governance members (the signer
among them) and nobody else; the envelope check has already verified every signature.

`validators.set` writes the whole new set to `gov/validators` at height H in set order
(power desc, pub asc). Consensus treats the set read from the state after block H as the set of
height H+2 (the CometBFT convention); `execute_block` also returns it as `next_validators`.
"""

from __future__ import annotations

from typing import Any, Callable

from ads_ledger.core.crypto import H
from ads_ledger.core.types import MAX_VALIDATORS, ValidatorSet
from ads_ledger.state.bodies import MAX_UINT
from ads_ledger.state.context import Ctx
from ads_ledger.state.envelope import MAX_AUTH, Envelope
from ads_ledger.state.identity import parse_anchor
from ads_ledger.state.reasons import BadGovArgs, NotMember, Quorum, TxRejected
from ads_ledger.state.records import (
    ANCHOR_PURPOSES,
    GOV_ANCHORS,
    GOV_MEMBERS,
    GOV_PARAMS,
    GOV_PROVIDERS,
    GOV_REVOKED,
    GOV_VALIDATORS,
    LEV_SUSPENDING,
    MAX_PROVIDERS,
    MAX_REVOKED,
    ROLES,
    anchors_of,
    lev_grantee_key,
    param_error,
    prov_key,
    short,
)

__all__ = ["apply_gov", "MAX_TOTAL_POWER"]

MAX_TOTAL_POWER = 2**60  # keeps proposer-priority arithmetic far from int64 overflow (CometBFT: int64max/8)


def _args(args: dict[str, Any], keys: set[str], action: str) -> None:
    if set(args) != keys:
        raise BadGovArgs(f"{action} args must be exactly {sorted(keys)}")


def _validators_set(ctx: Ctx, args: dict[str, Any]) -> None:
    _args(args, {"updates"}, "validators.set")
    updates = args["updates"]
    if type(updates) is not list or not 1 <= len(updates) <= MAX_VALIDATORS:
        raise BadGovArgs(f"updates must list 1..{MAX_VALIDATORS} [pub, power] pairs")
    current = {pub: power for pub, power in (ctx.state.get(GOV_VALIDATORS) or [])}
    seen: set[bytes] = set()
    for u in updates:
        if (
            type(u) is not list or len(u) != 2 or type(u[0]) is not bytes or len(u[0]) != 32
            or type(u[1]) is not int or not 0 <= u[1] <= MAX_TOTAL_POWER
        ):  # fmt: skip
            raise BadGovArgs("each update must be [32-byte pub, power 0..2^60]")
        pub, power = u
        if pub in seen:
            raise BadGovArgs(f"validator {short(pub)} is listed twice")
        seen.add(pub)
        if power == 0:
            if pub not in current:
                raise BadGovArgs(f"validator {short(pub)} is not in the set; it cannot be removed")
            del current[pub]
        else:
            current[pub] = power
    if not current:
        raise BadGovArgs("the update would leave no validators")
    if len(current) > MAX_VALIDATORS or sum(current.values()) > MAX_TOTAL_POWER:
        raise BadGovArgs(f"at most {MAX_VALIDATORS} validators with a total power of 2^60")
    vs = ValidatorSet(tuple(current.items()))
    ctx.state.put(GOV_VALIDATORS, vs.to_obj())


MAX_ANCHORS = 64  # per purpose: gov/anchors is read by every attestation check


def _cert_arg(args: dict[str, Any], action: str) -> tuple[bytes, str]:
    _args(args, {"cert", "purpose"}, action)
    der, purpose = args["cert"], args["purpose"]
    if type(der) is not bytes or not 0 < len(der) <= 8192:
        raise BadGovArgs("cert must be DER bytes (at most 8 KiB)")
    if purpose not in ANCHOR_PURPOSES:
        raise BadGovArgs(f"purpose must be one of {', '.join(ANCHOR_PURPOSES)}")
    return der, purpose


def _put_anchors(ctx: Ctx, current: Any, purpose: str, anchors: list[bytes]) -> None:
    new = {p: anchors_of(current, p) for p in ANCHOR_PURPOSES}
    new[purpose] = sorted(anchors, key=H)
    ctx.state.put(GOV_ANCHORS, new)


def _anchors_add(ctx: Ctx, args: dict[str, Any]) -> None:
    der, purpose = _cert_arg(args, "anchors.add")
    try:
        parse_anchor(der)
    except TxRejected as e:  # Malformed from parse_anchor: report it as a bad argument
        raise BadGovArgs(str(e)) from e
    current = ctx.state.get(GOV_ANCHORS)
    anchors = anchors_of(current, purpose)
    if der in anchors:
        raise BadGovArgs(f"this trust anchor is already listed for {purpose}")
    if len(anchors) >= MAX_ANCHORS:
        raise BadGovArgs(f"at most {MAX_ANCHORS} {purpose} anchors; remove one first")
    _put_anchors(ctx, current, purpose, [*anchors, der])


def _anchors_remove(ctx: Ctx, args: dict[str, Any]) -> None:
    der, purpose = _cert_arg(args, "anchors.remove")
    current = ctx.state.get(GOV_ANCHORS)
    anchors = anchors_of(current, purpose)
    if der not in anchors:
        raise BadGovArgs(f"this certificate is not a listed {purpose} trust anchor")
    _put_anchors(ctx, current, purpose, [a for a in anchors if a != der])


def _issuers_revoke(ctx: Ctx, args: dict[str, Any]) -> None:
    _args(args, {"issuer"}, "issuers.revoke")
    issuer = args["issuer"]
    if type(issuer) is not bytes or len(issuer) != 32:
        raise BadGovArgs("issuer must be H(leaf certificate DER), 32 bytes")
    revoked: list[bytes] = ctx.state.get(GOV_REVOKED) or []
    if issuer in revoked:
        raise BadGovArgs("this issuer is already revoked")
    if len(revoked) >= MAX_REVOKED:
        raise BadGovArgs(
            f"gov/revoked holds {MAX_REVOKED} issuers, the limit; remove the anchor of a CA "
            "whose issuers are compromised instead"
        )
    ctx.state.put(GOV_REVOKED, sorted([*revoked, issuer]))


def _members_set(ctx: Ctx, args: dict[str, Any]) -> None:
    _args(args, {"members", "threshold"}, "members.set")
    members, k = args["members"], args["threshold"]
    if type(members) is not list or not 1 <= len(members) <= MAX_AUTH:
        raise BadGovArgs(f"members must list 1..{MAX_AUTH} keys")
    if any(type(m) is not bytes or len(m) != 32 for m in members) or len(set(members)) != len(members):
        raise BadGovArgs("members must be distinct 32-byte keys")
    if type(k) is not int or not 1 <= k <= len(members):
        raise BadGovArgs(f"threshold must be in 1..{len(members)}")
    ctx.state.put(GOV_MEMBERS, {"members": sorted(members), "threshold": k})


def _params_set(ctx: Ctx, args: dict[str, Any]) -> None:
    if not args:
        raise BadGovArgs("params.set needs at least one {name: value}")
    for name, value in args.items():
        why = param_error(name, value)
        if why is not None:
            raise BadGovArgs(why)
    merged = {**ctx.params(), **args}
    ctx.state.put(GOV_PARAMS, {k: merged[k] for k in sorted(merged)})


MAX_PROVIDER_NAME = 64  # bytes of UTF-8


def _pub_arg(v: Any) -> bytes:
    if type(v) is not bytes or len(v) != 32:
        raise BadGovArgs("pub must be the provider's 32-byte public key")
    return v


def _providers_set(ctx: Ctx, args: dict[str, Any]) -> None:
    """Register a provider or change its name, roles and cap (suspension and live_w are kept).

    A cap below the provider's live_w is allowed: its live grants stay, new control grants are
    refused until enough of them end."""
    _args(args, {"cap_w", "name", "pub", "roles"}, "providers.set")
    pub, name, roles, cap = _pub_arg(args["pub"]), args["name"], args["roles"], args["cap_w"]
    if type(name) is not str or not 0 < len(name.encode()) <= MAX_PROVIDER_NAME:
        raise BadGovArgs(f"name must be a string of 1..{MAX_PROVIDER_NAME} bytes")
    if type(roles) is not list or any(r not in ROLES for r in roles) or len(set(roles)) != len(roles):
        raise BadGovArgs(f"roles must be distinct roles of {', '.join(ROLES)}")
    if cap is not None and (type(cap) is not int or not 0 <= cap <= MAX_UINT):
        raise BadGovArgs("cap_w must be nil (no cap) or watts, an unsigned integer")
    old = ctx.state.get(prov_key(pub))
    if old is None:
        listed: list[bytes] = ctx.state.get(GOV_PROVIDERS) or []
        if len(listed) >= MAX_PROVIDERS:
            raise BadGovArgs(f"the register holds {MAX_PROVIDERS} providers, the limit")
        ctx.state.put(GOV_PROVIDERS, sorted([*listed, pub]))
        counted = ctx.state.get(lev_grantee_key(pub))  # grants it already holds count at once
        suspended, live_w = False, 0 if counted is None else counted["w"]
    else:
        suspended, live_w = old["suspended"], old["live_w"]
    ctx.state.put(prov_key(pub), {"cap_w": cap, "height": ctx.height, "live_w": live_w, "name": name,
                                  "roles": sorted(roles), "suspended": suspended})  # fmt: skip


def _providers_suspend(ctx: Ctx, args: dict[str, Any]) -> None:
    """Suspend (new grants refused at once, live ones revoked over the next blocks) or lift.

    Lifting restores nothing, and waits until the revocation has finished."""
    _args(args, {"pub", "suspended"}, "providers.suspend")
    pub, on = _pub_arg(args["pub"]), args["suspended"]
    if type(on) is not bool:
        raise BadGovArgs("suspended must be a bool")
    prov = ctx.state.get(prov_key(pub))
    if prov is None:
        raise BadGovArgs(f"{short(pub)} is not a registered provider; register it first (providers.set)")
    if prov["suspended"] == on:
        raise BadGovArgs(f"provider {short(pub)} is already {'suspended' if on else 'not suspended'}")
    queue: list[bytes] = ctx.state.get(LEV_SUSPENDING) or []
    if on:
        ctx.state.put(LEV_SUSPENDING, [*queue, pub])
    elif pub in queue:
        left = (ctx.state.get(lev_grantee_key(pub)) or {"n": 0})["n"]
        raise BadGovArgs(f"provider {short(pub)}'s grants are still being revoked ({left} left); "
                         "lift the suspension once that has finished")  # fmt: skip
    ctx.state.put(prov_key(pub), {**prov, "height": ctx.height, "suspended": on})


_ACTIONS: dict[str, Callable[[Ctx, dict[str, Any]], None]] = {
    "validators.set": _validators_set,
    "anchors.add": _anchors_add,
    "anchors.remove": _anchors_remove,
    "issuers.revoke": _issuers_revoke,
    "members.set": _members_set,
    "params.set": _params_set,
    "providers.set": _providers_set,
    "providers.suspend": _providers_suspend,
}


def apply_gov(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    gov = ctx.state.get(GOV_MEMBERS)
    if gov is None:
        raise Quorum("this chain has no governance members (gov/members is empty)")
    members, k = set(gov["members"]), gov["threshold"]
    outsiders = [p for p in env.signers() if p not in members]
    if outsiders:
        raise NotMember(f"{short(outsiders[0])} is not a governance member; only members may sign gov txs")
    if len(env.auth) < k:
        raise Quorum(f"gov needs {k} member signatures, this tx has {len(env.auth)}; collect more cosigners")
    _ACTIONS[env.body["action"]](ctx, env.body["args"])
