"""The provider's side of DESIGN §7: sign a command, check the receipt that answers it.

`sign_command` builds the `{"cmd", "sig"}` envelope a provider (or the owner) sends to a charge
point's agent; `check_receipt` verifies that a receipt is signed by that charge point and
answers exactly this command (its `cmd` is H(canonical cmd)).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify
from ads_ledger.core.errors import RemoteError

__all__ = ["CMD_TAG", "RECEIPT_TAG", "ReceiptError", "sign_command", "command_hash", "check_receipt", "post_command"]

CMD_TAG = "ads/cmd/1"
RECEIPT_TAG = "ads/receipt/1"


class ReceiptError(RemoteError):
    """The answer is not a receipt from that charge point for this command: do not trust it."""


def sign_command(key: SigningKey, chain_id: str, *, cp: bytes, action: str, params: dict[str, Any],
                 seq: int, issued_at: int, expires_at: int, grant: bytes | None = None) -> bytes:  # fmt: skip
    """The canonical msgpack envelope of a command signed by `key` (the issuer)."""
    cmd = {"action": action, "cp": cp, "expires_at": expires_at, "grant": grant, "issued_at": issued_at,
           "issuer": key.pub, "params": params, "seq": seq}  # fmt: skip
    return codec.encode({"cmd": cmd, "sig": key.sign_tagged(CMD_TAG, chain_id, cmd)})


def command_hash(envelope: bytes) -> bytes:
    """H(canonical cmd) of a command envelope: what its receipt names."""
    return H(codec.encode(codec.decode(envelope)["cmd"]))  # type: ignore[index]


def check_receipt(cp: bytes, chain_id: str, envelope: bytes, answer: Any) -> dict[str, Any]:
    """The receipt in `answer` (`{"receipt", "sig"}`, bytes as bytes) if charge point `cp` signed
    it for this command; ReceiptError otherwise."""
    if type(answer) is not dict or set(answer) != {"receipt", "sig"}:
        raise ReceiptError("the answer is not a {receipt, sig} envelope")
    r, sig = answer["receipt"], answer["sig"]
    if type(r) is not dict or set(r) != {"acl_height", "at", "cmd", "code", "data", "ok"}:
        raise ReceiptError("the receipt does not have the §7 fields")
    if type(sig) is not bytes or not verify(cp, sig, sign_bytes(RECEIPT_TAG, chain_id, r)):
        raise ReceiptError(f"the receipt is not signed by charge point {cp.hex()[:8]}…")
    if r["cmd"] != command_hash(envelope):
        raise ReceiptError("the receipt answers another command")
    if r["ok"] is not (r["code"] == "ok"):
        raise ReceiptError("the receipt's ok and code disagree")
    return r  # type: ignore[no-any-return]


def post_command(agent_url: str, envelope: bytes, timeout_s: float = 15.0) -> Any:
    """POST a command envelope to a charge point's agent; the decoded answer (msgpack). A 400
    carries a signed `malformed` receipt too. URLError/OSError when the agent is unreachable;
    DecodeError when the answer is not msgpack."""
    req = urllib.request.Request(agent_url.rstrip("/") + "/commands", data=envelope, method="POST",
                                 headers={"content-type": "application/msgpack", "accept": "application/msgpack"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return codec.decode(r.read())
    except urllib.error.HTTPError as e:
        return codec.decode(e.read())
