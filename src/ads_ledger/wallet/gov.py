"""Governance without sharing keys (DESIGN §4 `gov`): a draft file that members sign offline,
one after another, then anyone submits.

    draft file (canonical msgpack, ≤ 64 KiB):
      {"chain_id": str, "tx": {"type": "gov", "signer": pub, "nonce": n,
                               "body": {"action", "args"}, "auth": [[pub, sig], ...]}}

Every `auth` signature is over the tx's sign bytes on `chain_id`, so a draft for another chain
fails to verify and adding a signature never changes what the others signed. The proposing
member (`signer`) must sign too; its entry goes first in the submitted envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify
from ads_ledger.core.errors import DecodeError
from ads_ledger.state.envelope import MAX_AUTH, TX_TAG
from ads_ledger.state.records import ANCHOR_PURPOSES, PARAMS, ROLES, param_error
from ads_ledger.wallet.errors import WalletError

__all__ = ["Draft", "Tally", "ACTIONS", "validators_set", "anchors_change", "issuers_revoke", "members_set",
           "params_set", "providers_set", "providers_suspend"]  # fmt: skip

ACTIONS = ("validators.set", "anchors.add", "anchors.remove", "issuers.revoke", "members.set", "params.set",
           "providers.set", "providers.suspend")  # fmt: skip
MAX_DRAFT = 64 * 1024


def validators_set(updates: list[tuple[bytes, int]]) -> dict[str, Any]:
    if not updates:
        raise WalletError("give at least one --update PUB:POWER (power 0 removes a validator)")
    if len({p for p, _ in updates}) != len(updates):
        raise WalletError("a validator is listed twice")
    return {"updates": [[p, w] for p, w in updates]}


def anchors_change(cert_der: bytes, purpose: str) -> dict[str, Any]:
    if purpose not in ANCHOR_PURPOSES:
        raise WalletError(f"--purpose must be one of {', '.join(sorted(ANCHOR_PURPOSES))}")
    return {"cert": cert_der, "purpose": purpose}


def issuers_revoke(issuer: bytes) -> dict[str, Any]:
    if len(issuer) != 32:
        raise WalletError("--issuer is H(leaf certificate DER): 64 hex characters (or give --cert)")
    return {"issuer": issuer}


def members_set(members: list[bytes], threshold: int) -> dict[str, Any]:
    if not members or not 1 <= threshold <= len(members):
        raise WalletError(f"--threshold must be 1..{len(members)} (the number of --member keys)")
    if len(set(members)) != len(members):
        raise WalletError("a member is listed twice")
    return {"members": sorted(members), "threshold": threshold}


def params_set(values: dict[str, Any]) -> dict[str, Any]:
    if not values:
        raise WalletError("give at least one --param NAME=VALUE")
    known = sorted([*PARAMS, "scope_roles"])
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise WalletError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for k, v in sorted(values.items()):  # DESIGN §6 ranges: the ledger refuses others as bad_gov_args
        if k in PARAMS:
            lo, hi, _ = PARAMS[k]
            if not lo <= v <= hi:
                raise WalletError(f"{k} = {v} is out of range {lo}..{hi}")
        else:
            why = param_error(k, v)
            if why is not None:
                raise WalletError(why)
    return dict(values)


def providers_set(pub: bytes, name: str, roles: list[str], cap_w: int | None) -> dict[str, Any]:
    """Register a service provider, or change its name, roles and capacity cap (regulator levers)."""
    if len(pub) != 32:
        raise WalletError("--pub must be the provider's public key (64 hex characters)")
    if not 0 < len(name.encode()) <= 64:
        raise WalletError("--name must be 1..64 bytes")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise WalletError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    if len(set(roles)) != len(roles):
        raise WalletError("a --role is listed twice")
    if cap_w is not None and cap_w < 0:
        raise WalletError("--cap must be a power, e.g. 50kW")
    return {"cap_w": cap_w, "name": name, "pub": pub, "roles": sorted(roles)}


def providers_suspend(pub: bytes, suspended: bool) -> dict[str, Any]:
    """Suspend a provider (its live grants are revoked over the next blocks) or lift it."""
    if len(pub) != 32:
        raise WalletError("--pub must be the provider's public key (64 hex characters)")
    return {"pub": pub, "suspended": suspended}


@dataclass
class Tally:
    """Who signed a draft, against the governance members the ledger lists."""

    valid: list[bytes]  # signatures that verify, in file order
    members: list[bytes]  # of those, the current members
    strangers: list[bytes]  # valid signatures of non-members (the ledger refuses them)
    invalid: list[bytes]  # signatures that do not verify (wrong chain, or altered)
    threshold: int
    signer_signed: bool

    @property
    def missing(self) -> int:
        return max(0, self.threshold - len(self.members))

    @property
    def ready(self) -> bool:
        return self.signer_signed and self.missing == 0 and not self.strangers and not self.invalid


@dataclass
class Draft:
    chain_id: str
    signer: bytes
    nonce: int
    action: str
    args: dict[str, Any]
    auth: list[list[bytes]] = field(default_factory=list)

    # ------------------------------------------------------------------ make

    @classmethod
    def propose(cls, chain_id: str, signer: bytes, nonce: int, action: str, args: dict[str, Any]) -> Draft:
        if action not in ACTIONS:
            raise WalletError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        d = cls(chain_id, signer, nonce, action, args)
        if len(d.encode()) > MAX_DRAFT:
            raise WalletError("the governance transaction is larger than 64 KiB")
        return d

    def unsigned(self) -> dict[str, Any]:
        return {"type": "gov", "signer": self.signer, "nonce": self.nonce,
                "body": {"action": self.action, "args": self.args}}  # fmt: skip

    def sign_bytes(self) -> bytes:
        return sign_bytes(TX_TAG, self.chain_id, self.unsigned())

    @property
    def txid(self) -> bytes:
        return H(self.sign_bytes())

    def sign(self, key: SigningKey) -> None:
        if any(p == key.pub for p, _ in self.auth):
            raise WalletError(f"key {key.pub.hex()[:16]}… has already signed this draft", code="already_signed",
                              hint="each member signs once; `ads gov show FILE` lists who signed")  # fmt: skip
        self.auth.append([key.pub, key.sign(self.sign_bytes())])

    def tally(self, members: list[bytes], threshold: int) -> Tally:
        msg = self.sign_bytes()
        valid, invalid = [], []
        for pub, sig in self.auth:
            (valid if verify(pub, sig, msg) else invalid).append(pub)
        ms = set(members)
        return Tally(valid, [p for p in valid if p in ms], [p for p in valid if p not in ms], invalid, threshold,
                     self.signer in valid)  # fmt: skip

    def envelope(self) -> bytes:
        """The tx to submit: the signer's entry first, then the others as signed."""
        first = [a for a in self.auth if a[0] == self.signer]
        if not first:
            raise WalletError(f"the proposer {self.signer.hex()[:16]}… has not signed yet", code="quorum",
                              hint="the proposing member signs too: `ads gov sign FILE --key THEIR_KEY`")  # fmt: skip
        rest = [a for a in self.auth if a[0] != self.signer]
        return codec.encode({**self.unsigned(), "auth": first + rest})

    # ------------------------------------------------------------------ file

    def encode(self) -> bytes:
        return codec.encode({"chain_id": self.chain_id, "tx": {**self.unsigned(), "auth": self.auth}})

    @classmethod
    def decode(cls, data: bytes) -> Draft:
        """A draft file; WalletError (`bad_draft`) on anything else."""
        def bad(why: str) -> WalletError:
            return WalletError(f"not a governance draft: {why}", code="bad_draft",
                               hint="make one with `ads gov propose … --out FILE`")  # fmt: skip

        if len(data) > MAX_DRAFT:
            raise bad("over 64 KiB")
        try:
            obj = codec.decode(data)
        except DecodeError as e:
            raise bad(str(e)) from None
        if type(obj) is not dict or set(obj) != {"chain_id", "tx"} or type(obj["chain_id"]) is not str:
            raise bad("expected {chain_id, tx}")
        tx = obj["tx"]
        if type(tx) is not dict or set(tx) != {"type", "signer", "nonce", "body", "auth"} or tx["type"] != "gov":
            raise bad("tx must be a gov transaction with type, signer, nonce, body, auth")
        body, auth = tx["body"], tx["auth"]
        if type(tx["signer"]) is not bytes or len(tx["signer"]) != 32 or type(tx["nonce"]) is not int \
                or tx["nonce"] < 1:  # fmt: skip
            raise bad("signer must be 32 bytes and nonce a positive integer")
        if type(body) is not dict or set(body) != {"action", "args"} or body["action"] not in ACTIONS \
                or type(body["args"]) is not dict:  # fmt: skip
            raise bad(f"body must be {{action, args}} with an action of {', '.join(ACTIONS)}")
        if type(auth) is not list or len(auth) > MAX_AUTH or any(
            type(a) is not list or len(a) != 2 or type(a[0]) is not bytes or len(a[0]) != 32
            or type(a[1]) is not bytes or len(a[1]) != 64 for a in auth
        ):  # fmt: skip
            raise bad("auth must list [32-byte pub, 64-byte signature] pairs")
        if len({a[0] for a in auth}) != len(auth):
            raise bad("a key signed twice")
        return cls(obj["chain_id"], tx["signer"], tx["nonce"], body["action"], body["args"], auth)
