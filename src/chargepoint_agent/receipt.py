"""Device-signed receipts (DESIGN §7): every request gets one, refused or accepted.

`receipt = {"cmd": H(canonical cmd), "ok", "code", "at", "acl_height", "data"}`, signed by the
device key over sign_bytes("ads/receipt/1", chain_id, receipt) and delivered as
`{"receipt": receipt, "sig": bin64}`.
"""

from __future__ import annotations

from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey, sign_bytes, verify

__all__ = ["RECEIPT_TAG", "make_receipt", "receipt_valid"]

RECEIPT_TAG = "ads/receipt/1"


def make_receipt(key: SigningKey, chain_id: str, *, cmd_hash: bytes, code: str, at_ms: int,
                 acl_height: int, data: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The signed receipt envelope; `data` must be canonical-encodable (str keys, no floats)."""
    receipt = {"acl_height": acl_height, "at": at_ms, "cmd": cmd_hash, "code": code,
               "data": data or {}, "ok": code == "ok"}  # fmt: skip
    receipt = codec.decode(codec.encode(receipt))  # canonical form: what the signature covers
    return {"receipt": receipt, "sig": key.sign_tagged(RECEIPT_TAG, chain_id, receipt)}


def receipt_valid(device: bytes, chain_id: str, envelope: Any) -> bool:
    """Does `envelope` carry a receipt signed by charge point `device` (shape and signature)?"""
    if type(envelope) is not dict or set(envelope) != {"receipt", "sig"}:
        return False
    r, sig = envelope["receipt"], envelope["sig"]
    if type(r) is not dict or type(sig) is not bytes or len(sig) != 64:
        return False
    if set(r) != {"acl_height", "at", "cmd", "code", "data", "ok"}:
        return False
    try:
        return verify(device, sig, sign_bytes(RECEIPT_TAG, chain_id, r))
    except Exception:  # a value the canonical encoder refuses is simply not a valid receipt
        return False
