"""Accounts: nonces, eID identity (`attest`) and the identity requirement of owners (DESIGN §4, §5)."""

from __future__ import annotations

from typing import Any

from ads_ledger.state.context import Ctx
from ads_ledger.state.envelope import Envelope
from ads_ledger.state.identity import verify_attestation
from ads_ledger.state.reasons import IdentityExpired, NoIdentity
from ads_ledger.state.records import GOV_ANCHORS, acct_key, short

__all__ = ["apply_attest", "require_identity", "bump_nonce"]


def require_identity(ctx: Ctx, pub: bytes) -> None:
    """Raise unless `pub` holds an eID identity attestation that is unexpired at block time."""
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


def apply_attest(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    anchors: list[bytes] = ctx.state.get(GOV_ANCHORS) or []
    identity = verify_attestation(ctx.chain_id, env.body, env.signer, anchors, ctx.time)
    acct = ctx.account(env.signer)
    ctx.state.put(acct_key(env.signer), {"identity": identity, "nonce": acct["nonce"]})


def bump_nonce(ctx: Ctx, pub: bytes, nonce: int) -> None:
    """Record `nonce` as the account's last (on the staged version, after the rule ran)."""
    acct: dict[str, Any] = ctx.account(pub)
    ctx.state.put(acct_key(pub), {"identity": acct["identity"], "nonce": nonce})
