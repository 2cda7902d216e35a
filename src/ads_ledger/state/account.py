"""Accounts: nonces, eID identity (`attest`) and the identity requirement of owners (DESIGN §4, §5).

An identity counts (for `cp.accept`, `cp.claim`, an owner's `grant`) only while it has not
expired, its anchor is still an `eid` anchor in gov/anchors and its issuer is not in
gov/revoked. This gates new actions only: grants an owner made while the identity counted stay
until the owner or governance acts.
"""

from __future__ import annotations

from typing import Any

from ads_ledger.core.crypto import H
from ads_ledger.state.context import Ctx
from ads_ledger.state.envelope import Envelope
from ads_ledger.state.identity import is_revoked, verify_attestation
from ads_ledger.state.reasons import IdentityExpired, IdentityRevoked, NoIdentity
from ads_ledger.state.records import GOV_ANCHORS, GOV_REVOKED, acct_key, anchors_of, short

__all__ = ["apply_attest", "require_identity", "bump_nonce"]


def require_identity(ctx: Ctx, pub: bytes) -> None:
    """Raise unless `pub` holds an eID identity that counts at block time (see the module doc)."""
    ident = ctx.account(pub)["identity"]
    if ident is None:
        raise NoIdentity(
            f"account {short(pub)} has no eID identity; have an eID broker attest it and submit "
            "the `attest` transaction first"
        )
    if ident["expires_at"] <= ctx.time:
        raise IdentityExpired(
            f"the identity of account {short(pub)} expired at {ident['expires_at']} (ms); "
            "submit a fresh `attest` transaction"
        )
    if ident.get("anchor") not in {H(d) for d in anchors_of(ctx.state.get(GOV_ANCHORS), "eid")}:
        raise IdentityRevoked(
            f"the identity of account {short(pub)} was attested under a trust anchor governance "
            "has since removed; get a fresh attestation from a broker under a listed anchor"
        )
    if is_revoked(ctx.state.get(GOV_REVOKED) or [], ident["issuer"]):
        raise IdentityRevoked(
            f"governance revoked the broker that attested account {short(pub)}; get a fresh "
            "attestation from another eID broker"
        )


def apply_attest(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    anchors = anchors_of(ctx.state.get(GOV_ANCHORS), "eid")
    revoked = ctx.state.get(GOV_REVOKED) or []
    identity = verify_attestation(ctx.chain_id, env.body, env.signer, anchors, ctx.time, revoked)
    acct = ctx.account(env.signer)
    ctx.state.put(acct_key(env.signer), {"identity": identity, "nonce": acct["nonce"]})


def bump_nonce(ctx: Ctx, pub: bytes, nonce: int) -> None:
    """Record `nonce` as the account's last (on the staged version, after the rule ran)."""
    acct: dict[str, Any] = ctx.account(pub)
    ctx.state.put(acct_key(pub), {"identity": acct["identity"], "nonce": nonce})
