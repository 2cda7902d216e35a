"""`ads key new|list|show|import|export|delete`: the keyring (ads_ledger.wallet.keystore).

The keyring is `--keyring DIR`, `ADS_KEYRING`, or `$XDG_CONFIG_HOME/ads/keyring`. A passphrase
comes from `--passphrase-file`, `ADS_PASSPHRASE`, or a prompt (twice when a key is created).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ads_ledger.client.output import emit, fail, json_option
from ads_ledger.wallet.keystore import Keyring, KeystoreError

__all__ = ["key", "keyring_option", "passphrase_option", "read_passphrase"]


def keyring_option(f):  # type: ignore[no-untyped-def]
    return click.option("--keyring", type=click.Path(path_type=Path, file_okay=False), default=None,
                        help="Keyring directory (default: $ADS_KEYRING or ~/.config/ads/keyring).")(f)  # fmt: skip


def passphrase_option(f):  # type: ignore[no-untyped-def]
    return click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                        default=None, help="Read the passphrase from this file's first line.")(f)  # fmt: skip


def read_passphrase(file: Path | None, *, confirm: bool = False, prompt: str = "Passphrase") -> str:
    if file is not None:
        return file.read_text().splitlines()[0] if file.read_text() else ""
    env = os.environ.get("ADS_PASSPHRASE")
    if env is not None:
        return env
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


@click.group()
def key() -> None:
    """Named keys, encrypted at rest (argon2id + XChaCha20-Poly1305)."""


@key.command("new")
@click.argument("name")
@keyring_option
@passphrase_option
@click.option("--plaintext", is_flag=True, help="No passphrase: for devnet/test chains only (refused elsewhere).")
@json_option
def key_new(name: str, keyring: Path | None, passphrase_file: Path | None, plaintext: bool, as_json: bool) -> None:
    """Create a key NAME."""
    kr = Keyring(keyring)
    try:
        pw = None if plaintext else read_passphrase(passphrase_file, confirm=True)
        info = kr.new(name, pw)
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    emit(as_json, {"name": info.name, "pub": info.pub, "encrypted": info.encrypted, "path": str(info.path)},
         f"key {info.name}: {info.pub.hex()}  ({'encrypted' if info.encrypted else 'PLAINTEXT, devnets only'}, "
         f"{info.path})")  # fmt: skip


@key.command("list")
@keyring_option
@json_option
def key_list(keyring: Path | None, as_json: bool) -> None:
    """The keys in the keyring (no passphrase needed)."""
    kr = Keyring(keyring)
    keys = kr.list()
    emit(as_json, {"keyring": str(kr.path), "keys": [{"name": k.name, "pub": k.pub, "encrypted": k.encrypted}
                                                       for k in keys]},  # fmt: skip
         lambda: "\n".join([f"{k.name:20} {k.pub.hex()}  {'' if k.encrypted else '(plaintext)'}" for k in keys])
         or f"no keys in {kr.path}; create one with `ads key new NAME`")  # fmt: skip


@key.command("show")
@click.argument("name")
@keyring_option
@passphrase_option
@click.option("--check", is_flag=True, help="Also open the key with its passphrase.")
@json_option
def key_show(name: str, keyring: Path | None, passphrase_file: Path | None, check: bool, as_json: bool) -> None:
    """A key's public key and file; with --check, whether the passphrase opens it."""
    kr = Keyring(keyring)
    try:
        info = kr.find(name)
        if check:
            kr.load(name, None if not info.encrypted else read_passphrase(passphrase_file), chain_id="test")
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    emit(as_json, {"name": info.name, "pub": info.pub, "encrypted": info.encrypted, "path": str(info.path),
                   "opened": check},  # fmt: skip
         f"{info.name}: {info.pub.hex()}  {info.path}" + ("  (passphrase ok)" if check else ""))


@key.command("export")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@keyring_option
@passphrase_option
@json_option
def key_export(name: str, out: Path, keyring: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Write NAME as encrypted PKCS#8 PEM (openssl reads it with the export passphrase)."""
    kr = Keyring(keyring)
    try:
        info = kr.find(name)
        pw = read_passphrase(passphrase_file) if info.encrypted else None
        out_pw = os.environ.get("ADS_EXPORT_PASSPHRASE") or str(
            click.prompt("Passphrase for the PEM file", hide_input=True, confirmation_prompt=True))
        pem = kr.export_pkcs8(name, pw, out_pw, chain_id="test" if not info.encrypted else None)
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    emit(as_json, {"name": name, "out": str(out)}, f"wrote {out} (encrypted PKCS#8 PEM)")


@key.command("import")
@click.argument("name")
@click.argument("pem_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@keyring_option
@passphrase_option
@json_option
def key_import(name: str, pem_file: Path, keyring: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Import an Ed25519 PKCS#8 PEM as NAME (encrypted with the keyring passphrase)."""
    kr = Keyring(keyring)
    try:
        pem_pw = os.environ.get("ADS_IMPORT_PASSPHRASE")
        info = kr.import_pkcs8(name, pem_file.read_bytes(), pem_pw, read_passphrase(passphrase_file, confirm=True))
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    emit(as_json, {"name": info.name, "pub": info.pub}, f"imported {info.name}: {info.pub.hex()}")


@key.command("delete")
@click.argument("name")
@keyring_option
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
def key_delete(name: str, keyring: Path | None, yes: bool, as_json: bool) -> None:
    """Delete a key file (there is no undo: export it first if in doubt)."""
    kr = Keyring(keyring)
    try:
        info = kr.find(name)
        if not yes and not click.confirm(f"delete {info.name} ({info.pub.hex()[:16]}…)?"):
            fail(as_json, "cancelled", "nothing deleted")
        kr.delete(name)
    except KeystoreError as e:
        fail(as_json, "keystore", str(e))
    emit(as_json, {"name": info.name, "pub": info.pub, "deleted": True}, f"deleted {info.name}")
