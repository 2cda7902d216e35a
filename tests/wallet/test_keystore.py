"""The keyring: argon2id + XChaCha20-Poly1305 at rest, 0600/0700, typed errors for a wrong
passphrase or a damaged file, plaintext keys for devnets only, PKCS#8 out and in."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ads_ledger.core.crypto import SigningKey
from ads_ledger.wallet.keystore import (
    CorruptKeyFile,
    KeyExists,
    KeyNotFound,
    Keyring,
    KeystoreError,
    WrongPassphrase,
)


def test_new_load_list_delete_and_permissions(tmp_path: Path) -> None:
    kr = Keyring(tmp_path / "kr")
    info = kr.new("owner", "correct horse")
    assert stat.S_IMODE(kr.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    doc = json.loads(info.path.read_text())
    assert "seed" not in doc and doc["kdf"]["alg"] == "argon2id"
    key = kr.load("owner", "correct horse")
    assert key.pub == info.pub and kr.load(info.pub.hex(), "correct horse").pub == info.pub
    assert [(k.name, k.encrypted) for k in kr.list()] == [("owner", True)]
    with pytest.raises(KeyExists):
        kr.new("owner", "x")
    with pytest.raises(WrongPassphrase):
        kr.load("owner", "wrong horse")
    with pytest.raises(WrongPassphrase):
        kr.load("owner", None)
    with pytest.raises(KeyNotFound, match="ads key list"):
        kr.load("nobody", "x")
    with pytest.raises(KeystoreError):
        kr.new("../evil", "x")
    kr.delete("owner")
    assert kr.list() == []


@pytest.mark.parametrize("damage", ["truncate", "flip_ct", "swap_name", "not_json", "kdf_bomb"])
def test_damaged_files_are_refused_clearly(tmp_path: Path, damage: str) -> None:
    kr = Keyring(tmp_path / "kr")
    info = kr.new("k", "pw")
    raw = info.path.read_text()
    doc = json.loads(raw)
    if damage == "truncate":
        info.path.write_text(raw[: len(raw) // 2])
    elif damage == "flip_ct":
        ct = bytearray.fromhex(doc["ciphertext"])
        ct[3] ^= 1
        info.path.write_text(json.dumps({**doc, "ciphertext": ct.hex()}))
    elif damage == "swap_name":  # the header is bound to the secret as associated data
        (tmp_path / "kr" / "other.key").write_text(json.dumps({**doc, "name": "other"}))
        info.path.unlink()
        with pytest.raises(WrongPassphrase):
            kr.load("other", "pw")
        return
    elif damage == "not_json":
        info.path.write_bytes(b"\x00\xff" * 10)
    else:
        info.path.write_text(json.dumps({**doc, "kdf": {**doc["kdf"], "memlimit": 1 << 40}}))
    with pytest.raises((CorruptKeyFile, WrongPassphrase)) as e:
        kr.load("k", "pw")
    assert str(e.value)


def test_plaintext_keys_only_on_test_chains(tmp_path: Path) -> None:
    kr = Keyring(tmp_path / "kr")
    info = kr.add("dev", SigningKey.generate(), None)
    assert not info.encrypted
    assert kr.load("dev", None, chain_id="ads-devnet").pub == info.pub
    with pytest.raises(KeystoreError, match="plaintext"):
        kr.load("dev", None, chain_id="ads-mainnet")


def test_pkcs8_export_is_read_by_cryptography_and_imports_back(tmp_path: Path) -> None:
    kr = Keyring(tmp_path / "kr")
    info = kr.new("prov", "pw")
    pem = kr.export_pkcs8("prov", "pw", "export-pw")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    k = serialization.load_pem_private_key(pem, b"export-pw")
    assert isinstance(k, Ed25519PrivateKey)
    assert k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == info.pub
    with pytest.raises(KeystoreError):
        kr.export_pkcs8("prov", "pw", "")  # never in the clear
    again = kr.import_pkcs8("prov2", pem, "export-pw", "pw2")
    assert again.pub == info.pub and kr.load("prov2", "pw2").pub == info.pub
    with pytest.raises(KeystoreError):
        kr.import_pkcs8("prov3", pem, "wrong", "pw")


def test_cli_new_list_show_export_import_delete(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ADS_KEYRING": str(tmp_path / "kr"), "ADS_PASSPHRASE": "pw",
           "ADS_EXPORT_PASSPHRASE": "xpw", "ADS_IMPORT_PASSPHRASE": "xpw"}  # fmt: skip

    def ads(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", "key", *args, "--json"], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        return p.returncode, json.loads(p.stdout)

    rc, new = ads("new", "alice")
    assert rc == 0 and new["encrypted"]
    rc, lst = ads("list")
    assert [k["name"] for k in lst["keys"]] == ["alice"]
    rc, show = ads("show", "alice", "--check")
    assert rc == 0 and show["opened"] and show["pub"] == new["pub"]
    wrong = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", "key", "show", "alice", "--check", "--json"],
                           env={**env, "ADS_PASSPHRASE": "nope"}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert wrong.returncode == 1 and "wrong passphrase" in json.loads(wrong.stdout)["error"]["message"]
    rc, _ = ads("export", "alice", "--out", str(tmp_path / "alice.pem"))
    assert rc == 0 and serialization.load_pem_private_key((tmp_path / "alice.pem").read_bytes(), b"xpw")
    rc, imp = ads("import", "alice2", str(tmp_path / "alice.pem"))
    assert rc == 0 and imp["pub"] == new["pub"]
    rc, gone = ads("delete", "alice2", "--yes")
    assert rc == 0 and gone["deleted"]
