"""The wallet's typed errors: each carries a stable `code` and a `hint` (what to do next), so the
CLI prints one clear line and scripts branch on the code.

WalletError      base (also a bad argument: `bad_argument`)
TxRefused        the ledger refused a transaction (`code` is the DESIGN §4 reason)
NodeUnreachable  no node answered (names every URL tried)
NotVerified      a node's answer did not verify as a light client (wrong chain, lying node)
"""

from __future__ import annotations

from ads_ledger.core.errors import AdsError

__all__ = ["WalletError", "TxRefused", "NodeUnreachable", "NotVerified", "hint_for"]


class WalletError(AdsError):
    """Something the user can fix: `code` (stable), the message, and `hint` (the next step)."""

    def __init__(self, message: str, *, code: str = "bad_argument", hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


class TxRefused(WalletError):
    """The ledger refused the transaction, before inclusion (HTTP 4xx) or in its block."""

    def __init__(self, code: str, message: str, *, txid: bytes | None = None, height: int | None = None) -> None:
        super().__init__(message, code=code, hint=hint_for(code))
        self.txid = txid
        self.height = height


class NodeUnreachable(WalletError):
    """No node gave a usable answer."""

    def __init__(self, tried: list[tuple[str, str]]) -> None:
        urls = ", ".join(f"{u} ({why})" for u, why in tried)
        super().__init__(f"no node answered: tried {urls}", code="node_unreachable",
                         hint="check --node / ADS_NODE, and that the node runs (`ads status --node URL`)")  # fmt: skip
        self.tried = tried


class NotVerified(WalletError):
    """The node's answer did not verify against the validators we trust: do not believe it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_verified",
                         hint="try another --node; if every node fails, the trust root may be wrong "
                              "(see `ads cp show --help`)")  # fmt: skip


# the next step for a refusal, by its code (DESIGN §4 reasons; the message says what happened)
_HINTS = {
    "bad_nonce": "another transaction of this key got in first; run the command again",
    "bad_signature": "the key does not match, or the tx was built for another chain: rebuild it with this node's chain id",
    "malformed": "the transaction has the wrong shape: check the arguments (`--help`)",
    "not_owner": "only the charge point's owner can do this: check --key and the charge point (`ads cp show CP`)",
    "not_pending": "the charge point has not named this key as its owner: run `chargepoint-agent propose-owner` on it first",
    "cp_owned": "the charge point already has an owner: ask them to `ads cp transfer` it to you",
    "cp_unknown": "no such charge point on the ledger: check the key, or have the device propose its owner first",
    "no_owner": "the charge point has no owner yet: accept or claim it first",
    "no_identity": "attest your identity first: `ads identity attest --key NAME --attestation FILE`",
    "identity_expired": "your identity attestation expired: get a new one from your eID broker and `ads identity attest`",
    "identity_revoked": "your identity's broker is no longer trusted: attest again through another broker",
    "scope_unknown": "use known scopes: availability, charging.control, charging.profile, flex, meter.read, status.read",
    "exclusive_held": "another live grant holds this exclusive scope: revoke it first (`ads cp show CP` lists it)",
    "exclusive_required": "this scope is exclusive: add --exclusive",
    "not_attenuated": "a sub-grant cannot exceed its parent: narrow the scopes, window, limits or priority",
    "grant_unknown": "no such live grant on this charge point: `ads cp show CP` lists its grants",
    "not_grantee": "re-delegating needs a parent grant held by this key with --redelegate > 0",
    "not_allowed": "only the owner, the grant's issuer or its grantee can revoke it",
    "bad_window": "the window must end after it starts, and in the future: check --from/--for",
    "too_many_grants": "the charge point has its maximum of grants: revoke unused ones first",
    "role_required": "this scope is reserved for registered providers with certain roles (gov/params "
                     "scope_roles): see `ads providers show PUB`; governance registers providers",
    "suspended": "governance suspended this provider: it can neither receive nor re-delegate grants "
                 "until the suspension is lifted (`ads providers show PUB`)",
    "capacity_cap": "the provider's live control grants would exceed its capacity cap: state "
                    "limits.max_power_w, revoke some grants, or ask governance to raise the cap",
    "bad_device_sig": "the device signature does not match: run `chargepoint-agent sign-ownership --owner YOUR_KEY` again",
    "quorum": "more governance members must sign: `ads gov show FILE` says how many",
    "not_member": "only governance members may sign governance transactions",
    "bad_gov_args": "check the action's arguments (`ads gov propose --help`)",
    "untrusted_chain": "the issuer's certificate chain does not lead to a trust anchor on this ledger",
    "cert_expired": "a certificate of the issuer chain is expired or not yet valid",
    "bad_issuer_sig": "the issuer's signature does not verify: the file was altered, or made for another chain; get a fresh one",
    "key_usage": "the issuer's certificate may not sign attestations (key usage): the issuer must use its seal certificate",
    "too_large": "the transaction is over 32 KiB: shorten it (e.g. fewer certificates)",
    "unknown_type": "this node does not know the transaction type: update the wallet or the node",
    "attestation_expired": "the attestation is expired or not yet valid: get a fresh one",
    "account_mismatch": "the attestation was issued for another key: attest with the key it names",
    "issuer_revoked": "governance revoked this issuer: get an attestation from another one",
    "device_required": "a new charge point needs its manufacturer's device attestation",
    "device_mismatch": "the device attestation is for another charge point key",
    "chain_too_large": "the certificate chain is over 4 certificates or 16 KiB",
    "signer_busy": "this key has too many transactions pending: wait for a block and retry",
    "client_busy": "too many transactions pending from this address: wait and retry",
    "mempool_full": "the node is busy: wait and retry, or use another --node",
    "rate_limited": "too many requests: wait and retry",
}


def hint_for(code: str) -> str:
    return _HINTS.get(code, "")
