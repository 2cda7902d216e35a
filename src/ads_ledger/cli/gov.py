"""`ads gov propose|sign|show|submit`: governance without sharing keys (DESIGN §4 `gov`, §8).

    ads gov propose validators.set --update PUB:0 --signer alice --node URL --out d.msgpack
    ads gov sign d.msgpack --key alice        # each member, on their own machine, offline
    ads gov show d.msgpack --node URL         # who signed, how many more are needed
    ads gov submit d.msgpack --node URL

The draft file (ads_ledger.wallet.gov.Draft) holds no secret; it travels between members.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from ads_ledger.cli.common import (
    key_options,
    load_key,
    node_option,
    open_ledger,
    resolve_pub,
    wallet_command,
    write_new,
)
from ads_ledger.cli.key import keyring_option
from ads_ledger.client.output import emit
from ads_ledger.core.crypto import H
from ads_ledger.wallet.errors import NodeUnreachable, WalletError
from ads_ledger.wallet.gov import (
    ACTIONS,
    Draft,
    anchors_change,
    issuers_revoke,
    members_set,
    params_set,
    providers_set,
    providers_suspend,
    validators_set,
)
from ads_ledger.wallet.ledger import Ledger
from ads_ledger.wallet.txs import describe_gov_args, parse_pub
from ads_ledger.wallet.units import parse_power

__all__ = ["gov"]

_DELAYED = ("validators.set", "params.set")  # DESIGN §4: these take effect at H+2


@click.group()
def gov() -> None:
    """Governance drafts: propose, sign offline one member after another, show, submit."""


# ---------------------------------------------------------------- helpers


def read_draft(path: Path) -> Draft:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WalletError(f"cannot read {path}: {e.strerror or e}", code="bad_draft") from None
    return Draft.decode(data)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of either."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # a draft holds no secret: other members read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cert(path: Path) -> bytes:
    """A certificate file, PEM or DER → DER (checked to parse)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    raw = path.read_bytes()
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
        x509.load_der_x509_certificate(raw)
    except ValueError as e:
        raise WalletError(f"{path} is not an X.509 certificate (PEM or DER): {e}") from None
    return raw


def build_args(action: str, updates: tuple[str, ...], cert: Path | None, purpose: str | None, issuer: str | None,
               members: tuple[str, ...], threshold: int | None, params: tuple[str, ...],
               provider: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The action's args from its options; a WalletError names what is missing or wrong."""
    prov = provider or {}
    if action in ("providers.set", "providers.suspend"):
        if not prov.get("pub"):
            raise WalletError(f"{action} needs --pub PROVIDER")
        pub = parse_pub(prov["pub"], "--pub")
        if action == "providers.suspend":
            if prov.get("suspended") is None:
                raise WalletError("providers.suspend needs --suspended or --unsuspended")
            return providers_suspend(pub, prov["suspended"])
        if not prov.get("name"):
            raise WalletError("providers.set needs --name NAME (and --role, repeatable; --cap for a capacity cap)")
        cap = prov.get("cap")
        cap_w = None if cap in (None, "none") else 0 if cap in ("0", "0W") else parse_power(cap)
        return providers_set(pub, prov["name"], list(prov.get("roles", ())), cap_w)
    if action == "validators.set":
        ups = []
        for u in updates:
            pub, _, power = u.rpartition(":")
            if not power.isdigit():
                raise WalletError(f"--update {u!r}: expected PUB:POWER, e.g. {'ab' * 32}:10")
            ups.append((parse_pub(pub, "--update"), int(power)))
        return validators_set(ups)
    if action in ("anchors.add", "anchors.remove"):
        if cert is None or purpose is None:
            raise WalletError(f"{action} needs --cert FILE and --purpose eid|device")
        return anchors_change(read_cert(cert), purpose)
    if action == "issuers.revoke":
        if (cert is None) == (issuer is None):
            raise WalletError("issuers.revoke needs one of --cert LEAF_FILE or --issuer HEX")
        if cert is not None:
            return issuers_revoke(H(read_cert(cert)))
        try:
            return issuers_revoke(bytes.fromhex(str(issuer)))
        except ValueError:
            return issuers_revoke(b"")  # raises the 64-hex message
    if action == "members.set":
        if threshold is None:
            raise WalletError("members.set needs --threshold K")
        return members_set([parse_pub(m, "--member") for m in members], threshold)
    values: dict[str, Any] = {}
    for p in params:
        name, _, value = p.partition("=")
        if name.strip() == "scope_roles":  # the one map-valued parameter: JSON {scope: [role, ...]}
            try:
                values["scope_roles"] = json.loads(value)
            except ValueError:
                raise WalletError(f"--param {p!r}: expected scope_roles=JSON, e.g. "
                                  'scope_roles=\'{"flex": ["aggregator", "dso", "tso"]}\'') from None  # fmt: skip
            continue
        try:
            values[name.strip()] = int(value)
        except ValueError:
            raise WalletError(f"--param {p!r}: expected NAME=INTEGER, e.g. timeout_propose_ms=3000") from None
    return params_set(values)


def _summary(d: Draft) -> dict[str, Any]:
    return {"action": d.action, "args": d.args, "what": describe_gov_args(d.action, d.args), "chain_id": d.chain_id,
            "signer": d.signer, "nonce": d.nonce, "txid": d.txid}  # fmt: skip


def check(d: Draft, ledger: Ledger) -> dict[str, Any]:
    """The draft against the ledger: chain, nonce, members and threshold."""
    node_chain = ledger.chain_id
    ms = ledger.members()
    members = [m for m in ms.get("members", []) if isinstance(m, bytes)]
    t = d.tally(members, int(ms.get("threshold", 0)))
    next_nonce = ledger.nonce(d.signer) + 1
    chain_ok = node_chain == d.chain_id
    return {"node": ledger.node, "node_chain_id": node_chain, "chain_matches": chain_ok, "next_nonce": next_nonce,
            "nonce_current": d.nonce == next_nonce, "members": members, "threshold": t.threshold,
            "signer_is_member": d.signer in members, "signer_signed": t.signer_signed, "member_signatures": len(t.members),
            "strangers": t.strangers, "invalid": t.invalid, "missing": t.missing,
            "ready": t.ready and chain_ok and d.nonce == next_nonce and d.signer in members}  # fmt: skip


# ---------------------------------------------------------------- propose


@gov.command("propose")
@click.argument("action", type=click.Choice(ACTIONS), metavar="ACTION")
@click.option("--update", "updates", multiple=True, metavar="PUB:POWER", help="validators.set (repeatable; 0 removes).")
@click.option("--cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="anchors.*: the anchor certificate; issuers.revoke: the leaf to revoke (PEM or DER).")
@click.option("--purpose", type=click.Choice(["eid", "device"]), default=None, help="anchors.*: which trust list.")
@click.option("--issuer", default=None, metavar="HEX", help="issuers.revoke: H(leaf DER), instead of --cert.")
@click.option("--member", "members", multiple=True, metavar="PUB", help="members.set (repeatable).")
@click.option("--threshold", type=int, default=None, help="members.set: signatures needed.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="params.set (repeatable, integers).")
@click.option("--pub", "prov_pub", default=None, metavar="PUB", help="providers.*: the provider's public key.")
@click.option("--name", "prov_name", default=None, help="providers.set: the provider's name.")
@click.option("--role", "prov_roles", multiple=True, help="providers.set (repeatable): cpo, emsp, aggregator, dso, "
              "tso, supplier.")
@click.option("--cap", "prov_cap", default=None, metavar="POWER", help="providers.set: capacity cap on live control "
              "grants, e.g. 50kW (default: none).")
@click.option("--suspended/--unsuspended", "prov_suspended", default=None,
              help="providers.suspend: suspend (revokes its grants) or lift.")
@click.option("--signer", required=True, metavar="NAME|PUB", help="The proposing member (keyring name, pub or key file).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The draft file to create.")
@click.option("--nonce", type=click.IntRange(1), default=None, help="With --chain-id: propose offline.")
@click.option("--chain-id", default=None, help="With --nonce: propose offline.")
@node_option
@keyring_option
@wallet_command
def gov_propose(action: str, updates: tuple[str, ...], cert: Path | None, purpose: str | None, issuer: str | None,
                members: tuple[str, ...], threshold: int | None, params: tuple[str, ...], prov_pub: str | None,
                prov_name: str | None, prov_roles: tuple[str, ...], prov_cap: str | None, prov_suspended: bool | None,
                signer: str, out: Path, nonce: int | None, chain_id: str | None, nodes: tuple[str, ...],
                keyring: Path | None, as_json: bool) -> None:  # fmt: skip
    """Write a draft for ACTION (validators.set, anchors.add, anchors.remove, issuers.revoke, members.set,
    params.set, providers.set, providers.suspend) to --out; members then sign it with `ads gov sign`."""
    if out.exists():
        raise WalletError(f"{out} exists; not overwriting it", code="exists", hint="choose another --out")
    provider = {"pub": prov_pub and str(resolve_pub(prov_pub, keyring, "--pub").hex()), "name": prov_name,
                "roles": prov_roles, "cap": prov_cap, "suspended": prov_suspended}  # fmt: skip
    args = build_args(action, updates, cert, purpose, issuer, members, threshold, params, provider)
    pub = resolve_pub(signer, keyring, "--signer")
    if nonce is None or chain_id is None:  # the node fills in what was not given
        with open_ledger(nodes) as ledger:
            chain_id = chain_id or ledger.chain_id
            nonce = nonce or ledger.nonce(pub) + 1
            if pub not in ledger.members().get("members", []):
                raise WalletError(f"{pub.hex()[:16]}… is not a governance member of {chain_id}", code="not_member",
                                  hint="the proposer must be a current member (--signer)")  # fmt: skip
    d = Draft.propose(chain_id, pub, nonce, action, args)
    write_new(out, d.encode())
    emit(as_json, {"out": str(out), **_summary(d)},
         f"draft {out}: governance {action} {describe_gov_args(action, args)}\n"
         f"  chain {chain_id}, proposer {pub.hex()}, nonce {nonce}, tx {d.txid.hex()}\n"
         f"next: each member (the proposer too) runs `ads gov sign {out} --key NAME`, then "
         f"`ads gov submit {out} --node URL`")  # fmt: skip


# ---------------------------------------------------------------- sign


@gov.command("sign")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@key_options
@wallet_command
def gov_sign(file: Path, key_ref: str, keyring: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Add your signature to the draft FILE (offline; the file is rewritten atomically)."""
    d = read_draft(file)
    key = load_key(key_ref, keyring, passphrase_file, d.chain_id)
    d.sign(key)  # already_signed: raised before anything is written
    write_atomic(file, d.encode())
    emit(as_json, {"file": str(file), "pub": key.pub, "signatures": len(d.auth), **_summary(d)},
         f"signed {file} as {key.pub.hex()}: governance {d.action} {describe_gov_args(d.action, d.args)}\n"
         f"  {len(d.auth)} signature(s) now; `ads gov show {file} --node URL` says how many more are needed")  # fmt: skip


# ---------------------------------------------------------------- show


@gov.command("show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@node_option
@wallet_command
def gov_show(file: Path, nodes: tuple[str, ...], as_json: bool) -> None:
    """What the draft FILE does, who signed it, and (with a node) whether it can be submitted."""
    d = read_draft(file)
    valid = set(d.tally([], 0).valid)
    doc: dict[str, Any] = {"file": str(file), **_summary(d),
                           "signatures": [{"pub": p, "valid": p in valid} for p, _ in d.auth]}  # fmt: skip
    unchecked = ""
    if nodes or os.environ.get("ADS_NODE"):
        try:
            with open_ledger(nodes) as ledger:
                doc["checked"] = check(d, ledger)
        except NodeUnreachable as e:
            unchecked = str(e)
    else:
        unchecked = "no node given (--node URL or ADS_NODE)"
    if unchecked:
        doc["checked"] = None
        doc["unchecked"] = unchecked
    emit(as_json, doc, lambda: _show_human(d, doc))


def _show_human(d: Draft, doc: dict[str, Any]) -> str:
    c = doc.get("checked")
    ms = set(c["members"]) if c else set()
    lines = [f"governance {d.action} {describe_gov_args(d.action, d.args)}",
             f"  chain {d.chain_id}, proposer {d.signer.hex()}, nonce {d.nonce}, tx {d.txid.hex()}",
             f"  {len(d.auth)} signature(s):"]  # fmt: skip
    for s in doc["signatures"]:
        who = "" if not c else ("  member" if s["pub"] in ms else "  NOT A MEMBER")
        lines.append(f"    {s['pub'].hex()}  {'valid' if s['valid'] else 'INVALID (other chain or altered)'}{who}")
    if not c:
        lines.append(f"could not check membership, threshold, chain or nonce: {doc['unchecked']}")
        return "\n".join(lines)
    if not c["chain_matches"]:
        lines.append(f"WRONG CHAIN: the node at {c['node']} runs {c['node_chain_id']}, the draft is for {d.chain_id}")
    if not c["nonce_current"]:
        lines.append(f"nonce {d.nonce} is not the proposer's next ({c['next_nonce']}): "
                     + ("propose again" if d.nonce < c["next_nonce"] else "earlier transactions must commit first"))
    if not c["signer_is_member"]:
        lines.append("the proposer is not a current member")
    elif not c["signer_signed"]:
        lines.append("the proposer has not signed yet")
    lines.append(f"  {c['member_signatures']} of {c['threshold']} member signature(s); {c['missing']} more needed")
    lines.append(f"ready: submit with `ads gov submit {doc['file']} --node URL`" if c["ready"] else "not ready to submit")
    return "\n".join(lines)


# ---------------------------------------------------------------- submit


@gov.command("submit")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@node_option
@wallet_command
def gov_submit(file: Path, nodes: tuple[str, ...], as_json: bool) -> None:
    """Submit the signed draft FILE; refused here, before sending, if the ledger would refuse it."""
    d = read_draft(file)
    with open_ledger(nodes) as ledger:
        c = check(d, ledger)
        if not c["chain_matches"]:
            raise WalletError(f"the draft is for chain {d.chain_id}; {c['node']} runs {c['node_chain_id']}",
                              code="wrong_chain", hint="submit to a node of the draft's chain, or propose again")  # fmt: skip
        if c["invalid"]:
            raise WalletError(f"{len(c['invalid'])} signature(s) do not verify (altered draft?): "
                              + ", ".join(p.hex()[:16] + "…" for p in c["invalid"]), code="bad_signature",
                              hint="propose a fresh draft and have it signed again")  # fmt: skip
        if not c["signer_is_member"] or c["strangers"]:
            who = [d.signer] if not c["signer_is_member"] else c["strangers"]
            raise WalletError("not governance members: " + ", ".join(p.hex()[:16] + "…" for p in who),
                              code="not_member", hint="only current members may propose and sign")  # fmt: skip
        if not c["signer_signed"]:
            raise WalletError(f"the proposer {d.signer.hex()[:16]}… has not signed", code="quorum",
                              hint=f"the proposer signs too: `ads gov sign {file} --key THEIR_KEY`")  # fmt: skip
        if c["missing"]:
            raise WalletError(f"{c['member_signatures']} of {c['threshold']} member signatures: "
                              f"{c['missing']} more needed", code="quorum",
                              hint=f"more members run `ads gov sign {file} --key NAME`")  # fmt: skip
        if d.nonce < c["next_nonce"]:
            raise WalletError(f"nonce {d.nonce} of the proposer is already used (next is {c['next_nonce']})",
                              code="bad_nonce", hint="propose a new draft and have it signed again")  # fmt: skip
        out = ledger.submit_raw(d.envelope())
    eff = out.height + 2 if d.action in _DELAYED else out.height
    what = f"governance: {d.action} {describe_gov_args(d.action, d.args)}"
    emit(as_json, {**_summary(d), "height": out.height, "effective_height": eff, "node": out.node},
         f"{what} committed at height {out.height} (tx {out.txid.hex()})"
         + (f"; effective at height {eff}" if d.action in _DELAYED else ""))  # fmt: skip
