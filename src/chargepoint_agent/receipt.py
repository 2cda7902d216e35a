"""Device-signed receipts (DESIGN §7): every request gets one, refused or accepted.

`receipt = {"cmd": H(canonical cmd), "ok", "code", "at", "acl_height", "data"}`, signed by the
device key over sign_bytes("ads/receipt/1", chain_id, receipt) and delivered as
`{"receipt": receipt, "sig": bin64}`.
"""

from __future__ import annotations

from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey

__all__ = ["RECEIPT_TAG", "make_receipt"]

RECEIPT_TAG = "ads/receipt/1"


def make_receipt(key: SigningKey, chain_id: str, *, cmd_hash: bytes, code: str, at_ms: int,
                 acl_height: int, data: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The signed receipt envelope; `data` must be canonical-encodable (str keys, no floats)."""
    receipt = {"acl_height": acl_height, "at": at_ms, "cmd": cmd_hash, "code": code,
               "data": data or {}, "ok": code == "ok"}  # fmt: skip
    receipt = codec.decode(codec.encode(receipt))  # canonical form: what the signature covers
    return {"receipt": receipt, "sig": key.sign_tagged(RECEIPT_TAG, chain_id, receipt)}
