"""Ownership of a charge point: cp.propose, cp.accept, cp.claim, cp.transfer (DESIGN §4).

A charge point record is created only with its manufacturer's device attestation (device.py):
`cp.propose` or `cp.claim` must carry `device` when the record does not exist yet. One given for
an existing record is checked too and refreshes the record's `device` (e.g. after the
manufacturer re-signed under a new certificate).
"""

from __future__ import annotations

from typing import Any

from ads_ledger.core.crypto import sign_bytes, verify
from ads_ledger.state.account import require_identity
from ads_ledger.state.context import Ctx
from ads_ledger.state.device import verify_device_attestation
from ads_ledger.state.envelope import Envelope
from ads_ledger.state.levers import put_cp
from ads_ledger.state.reasons import (
    BadDeviceSig,
    CpOwned,
    CpUnknown,
    DeviceRequired,
    NoOwner,
    NotOwner,
    NotPending,
)
from ads_ledger.state.records import GOV_ANCHORS, GOV_REVOKED, anchors_of, cp_key, new_cp, prune_grants, short

__all__ = ["apply_propose", "apply_accept", "apply_claim", "apply_transfer", "load_cp", "owner_sig_body"]


def load_cp(ctx: Ctx, cp: bytes) -> dict[str, Any]:
    rec = ctx.state.get(cp_key(cp))
    if rec is None:
        raise CpUnknown(
            f"charge point {short(cp)} is not on the ledger; the device must first send "
            "cp.propose (or the owner cp.claim with the device's signature)"
        )
    return rec  # type: ignore[no-any-return]


def _owned(cp: bytes, owner: bytes) -> CpOwned:
    return CpOwned(
        f"charge point {short(cp)} is owned by {short(owner)}; the owner must transfer it "
        "first (cp.transfer)"
    )


def _take(ctx: Ctx, cp: bytes, rec: dict[str, Any], owner: bytes) -> None:
    """`owner` becomes the owner (cp.accept / cp.claim): epoch+1; a transfer drops all grants."""
    grants = [] if rec["owner"] is not None else prune_grants(rec["grants"], ctx.time)
    old = ctx.state.get(cp_key(cp))
    put_cp(
        ctx, cp, [] if old is None else old["grants"],
        {**rec, "epoch": rec["epoch"] + 1, "grants": grants, "owner": owner, "pending": None,
         "updated": ctx.height},
    )  # fmt: skip


def _base(ctx: Ctx, cp: bytes, body: dict[str, Any]) -> dict[str, Any]:
    """The unowned record a propose/claim builds on: the existing one, or a new one that the
    device attestation in `body` vouches for (refused without it)."""
    rec = ctx.state.get(cp_key(cp))
    if rec is not None and rec["owner"] is not None:
        raise _owned(cp, rec["owner"])
    att = body.get("device")
    if att is None:
        if rec is None:
            raise DeviceRequired(
                f"charge point {short(cp)} is not on the ledger yet: the first cp.propose or "
                "cp.claim must carry the device attestation its manufacturer signed "
                "(device_attestation.msgpack on the device)"
            )
        return rec  # type: ignore[no-any-return]
    anchors = anchors_of(ctx.state.get(GOV_ANCHORS), "device")
    device = verify_device_attestation(att, cp, anchors, ctx.state.get(GOV_REVOKED) or [], ctx.time)
    return new_cp(ctx.height, device) if rec is None else {**rec, "device": device}


def apply_propose(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    cp = env.signer
    base = _base(ctx, cp, env.body)
    old = ctx.state.get(cp_key(cp))
    put_cp(
        ctx, cp, [] if old is None else old["grants"],
        {**base, "grants": prune_grants(base["grants"], ctx.time), "owner": None,
         "pending": env.body["owner"], "updated": ctx.height},
    )  # fmt: skip


def apply_accept(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    cp = env.body["cp"]
    rec = load_cp(ctx, cp)
    if rec["pending"] != env.signer:
        raise NotPending(
            f"charge point {short(cp)} awaits acceptance by {short(rec['pending'])}, not by "
            f"{short(env.signer)}; the device (cp.propose) or owner (cp.transfer) must name you"
        )
    require_identity(ctx, env.signer)
    _take(ctx, cp, rec, env.signer)


def owner_sig_body(cp: bytes, owner: bytes, epoch: int) -> dict[str, Any]:
    """What the device signs with tag ads/own/1 to let `owner` claim it (cp.claim)."""
    return {"cp": cp, "epoch": epoch, "owner": owner}


def apply_claim(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    cp = env.body["cp"]
    rec = ctx.state.get(cp_key(cp))
    if rec is not None and rec["owner"] is not None:
        raise _owned(cp, rec["owner"])
    epoch = 0 if rec is None else rec["epoch"]
    # cheap checks first: one Ed25519 verify and a record read before any X.509 work
    msg = sign_bytes("ads/own/1", ctx.chain_id, owner_sig_body(cp, env.signer, epoch))
    if not verify(cp, env.body["device_sig"], msg):
        raise BadDeviceSig(
            f"device_sig is not charge point {short(cp)}'s signature over "
            f'{{"cp","owner","epoch": {epoch}}} (tag ads/own/1); have the device sign it again'
        )
    require_identity(ctx, env.signer)
    _take(ctx, cp, _base(ctx, cp, env.body), env.signer)


def apply_transfer(ctx: Ctx, env: Envelope, txid: bytes) -> None:
    cp, to = env.body["cp"], env.body["to"]
    rec = load_cp(ctx, cp)
    if rec["owner"] is None:
        raise NoOwner(f"charge point {short(cp)} has no owner to transfer it")
    if rec["owner"] != env.signer:
        raise NotOwner(
            f"charge point {short(cp)} is owned by {short(rec['owner'])}; only the owner can "
            "transfer it"
        )
    put_cp(
        ctx, cp, rec["grants"],
        {**rec, "grants": prune_grants(rec["grants"], ctx.time),
         "pending": None if to == rec["owner"] else to, "updated": ctx.height},
    )  # fmt: skip
