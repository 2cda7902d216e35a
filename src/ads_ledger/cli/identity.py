"""`ads eid issue` (the testnet's TEST-ONLY eID broker) and `ads identity attest|show`.

A real owner gets the attestation file from an eID broker (a MitID/eIDAS identity provider
with a qualified seal certificate); on a devnet `ads eid issue` plays that broker with the
testnet's `eid/` directory. `identity attest` records it on the ledger; `identity show` reads
it back verified and says whether it still counts, and if not, why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ads_ledger.cli.common import (
    key_options,
    load_key,
    node_option,
    open_ledger,
    resolve_pub,
    trust_options,
    verifier,
    wallet_command,
    write_new,
)
from ads_ledger.cli.key import keyring_option
from ads_ledger.client.output import emit
from ads_ledger.core import codec
from ads_ledger.core.crypto import H
from ads_ledger.core.errors import DecodeError
from ads_ledger.state.records import GOV_ANCHORS, GOV_REVOKED, acct_key, anchors_of
from ads_ledger.wallet import txs
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.keystore import is_test_chain
from ads_ledger.wallet.units import format_when, parse_duration

__all__ = ["eid", "identity"]


# ---------------------------------------------------------------- eid


@click.group()
def eid() -> None:
    """The TEST-ONLY eID broker of a testnet (devnet/test chains only)."""


@eid.command("issue")
@click.option("--eid", "eid_dir", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The testnet's eid/ directory (TEST-ONLY broker certificate and key).")  # fmt: skip
@click.option("--account", required=True, metavar="NAME|PUB", help="The account to attest: a key name or pub hex.")
@click.option("--person", default=None, help="The person's test eID (hashed into a pseudonym; default: the account).")
@click.option("--level", type=click.Choice(["substantial", "high"]), default="substantial", show_default=True)
@click.option("--valid", "valid_for", default="365d", show_default=True, help="How long it is valid: 2h, 30d, 1w …")
@click.option("--chain-id", default=None, help="The chain it is for (default: read from --node).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@keyring_option
@node_option
@wallet_command
def eid_issue(eid_dir: Path, account: str, person: str | None, level: str, valid_for: str, chain_id: str | None,
              out: Path, keyring: Path | None, nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Sign an identity attestation for ACCOUNT as the testnet's TEST-ONLY broker."""
    from ads_ledger.testing.trustlist import issue_attestation, load_trust_list, subject_pseudonym

    pub = resolve_pub(account, keyring)
    ms = parse_duration(valid_for)
    if chain_id is None:
        with open_ledger(nodes) as ledger:
            chain_id = ledger.chain_id
    if not is_test_chain(chain_id):
        raise WalletError(f"the TEST-ONLY broker does not attest on chain {chain_id!r}",
                          hint="on a real chain, get the attestation from your eID broker")  # fmt: skip
    try:
        tl = load_trust_list(eid_dir)
    except (OSError, ValueError) as e:
        raise WalletError(f"{eid_dir} is not a testnet eid/ directory: {e}") from e
    now = int(time.time() * 1000)
    subject = subject_pseudonym(person) if person else None
    body = issue_attestation(tl, chain_id, pub, issued_at=now - 60_000, expires_at=now + ms, subject=subject, level=level)
    write_new(out, codec.encode(body))
    emit(as_json, {"out": str(out), "account": pub, "level": level, "expires_at": now + ms, "chain_id": chain_id},
         f"wrote {out}: TEST-ONLY attestation of {pub.hex()[:16]}… at level {level}, valid until "
         f"{format_when(now + ms)}\nnext: ads identity attest --key NAME --attestation {out}")  # fmt: skip


# ---------------------------------------------------------------- identity


@click.group()
def identity() -> None:
    """Your account's eID identity attestation (needed to own charge points and grant rights)."""


@identity.command("attest")
@key_options
@click.option("--attestation", "att_file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The attestation file from your eID broker (msgpack).")  # fmt: skip
@node_option
@wallet_command
def identity_attest(key_ref: str, keyring: Path | None, passphrase_file: Path | None, att_file: Path,
                    nodes: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Record an eID broker's attestation of your account on the ledger."""
    data = att_file.read_bytes()
    if len(data) > 32 * 1024:
        raise WalletError(f"{att_file} is over 32 KiB; an attestation is a few KiB")
    try:
        body = codec.decode(data)
    except DecodeError as e:
        raise WalletError(f"{att_file} is not an attestation file: {e}",
                          hint="get it from your eID broker (devnet: `ads eid issue`)") from e  # fmt: skip
    with open_ledger(nodes) as ledger:
        key = load_key(key_ref, keyring, passphrase_file, ledger.chain_id)
        ttype, b = txs.attest(body, key.pub)  # type: ignore[arg-type]
        out = ledger.submit(key, ttype, b)
    emit(as_json, {"txid": out.txid, "height": out.height, "account": key.pub, "code": out.code},
         f"{txs.describe(ttype, b, key.pub, out.txid)}: committed at height {out.height} (tx {out.txid.hex()[:16]}…)")  # fmt: skip


def identity_status(ident: dict[str, Any] | None, anchors: Any, revoked: Any, now: int) -> tuple[bool, str]:
    """(counts?, why not) — DESIGN §4: not expired, anchor still an eid anchor, issuer not revoked."""
    if ident is None:
        return False, "no identity attested: `ads identity attest`"
    if ident["expires_at"] <= now:
        return False, f"expired at {format_when(ident['expires_at'])}: attest again"
    if ident.get("anchor") not in {H(d) for d in anchors_of(anchors, "eid")}:
        return False, "its trust anchor was removed by governance: attest through another broker"
    if ident["issuer"] in (revoked or []):
        return False, "its issuer was revoked by governance: attest through another broker"
    return True, ""


@identity.command("show")
@click.argument("account", metavar="NAME|PUB")
@keyring_option
@node_option
@trust_options
@wallet_command
def identity_show(account: str, keyring: Path | None, nodes: tuple[str, ...], trust_height: int | None,
                  trust_hash: str | None, as_json: bool) -> None:  # fmt: skip
    """An account's identity, verified as a light client: level, issuer, expiry, and whether it counts."""
    pub = resolve_pub(account, keyring)
    with open_ledger(nodes) as ledger:
        v = verifier(ledger, trust_height, trust_hash)
        acct, anchors, revoked = v.states([acct_key(pub), GOV_ANCHORS, GOV_REVOKED])
    ident = None if acct.value is None else acct.value.get("identity")
    ok, why = identity_status(ident, anchors.value, revoked.value, acct.header.time)
    out = {"account": pub, "identity": ident, "valid": ok, "reason": why, "nonce": 0 if acct.value is None else acct.value["nonce"],
           "verified": acct.to_json_obj()}  # fmt: skip

    def human() -> str:
        head = f"account {pub.hex()}  (verified at height {acct.height}, {acct.signers}/{acct.validators} signatures)"
        if ident is None:
            return f"{head}\n  {why}"
        state = "valid" if ok else f"NOT VALID: {why}"
        return (f"{head}\n  level    {ident['level']}\n  issuer   {ident['issuer'].hex()[:16]}…  (anchor "
                f"{ident['anchor'].hex()[:16]}…)\n  expires  {format_when(ident['expires_at'])}\n  subject  "
                f"{ident['subject'].hex()[:16]}… (pseudonym)\n  status   {state}")  # fmt: skip

    emit(as_json, out, human)
