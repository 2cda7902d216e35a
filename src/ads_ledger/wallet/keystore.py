"""The keyring: named Ed25519 keys in a directory, encrypted at rest (issue: wallet, DESIGN §8).

    KEYRING/            mode 0700 (`--keyring`, `ADS_KEYRING`, default $XDG_CONFIG_HOME/ads/keyring)
      NAME.key          mode 0600, JSON:
        {"version": 1, "name", "pub": hex, "kdf": {"alg": "argon2id", "opslimit", "memlimit",
         "salt": hex}, "aead": "xchacha20poly1305-ietf", "nonce": hex, "ciphertext": hex}

The seed is sealed with XChaCha20-Poly1305 under a key derived from the passphrase by argon2id
(libsodium through PyNaCl); the name and public key are the associated data, so a file whose
header was edited does not open. A plaintext key (`"seed": hex`, no passphrase) exists for
devnets only: `load` refuses it unless the chain id names a devnet or test chain.

Keys leave in encrypted PKCS#8 PEM (`export_pkcs8`) so that openssl and other tools can read
them, and come in from it (`import_pkcs8`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError

__all__ = [
    "Keyring",
    "KeyInfo",
    "KeystoreError",
    "WrongPassphrase",
    "CorruptKeyFile",
    "KeyNotFound",
    "KeyExists",
    "default_keyring",
    "is_test_chain",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AEAD = "xchacha20poly1305-ietf"
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE  # ~0.1 s and 64 MiB on a laptop
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
MAX_KEY_FILE = 64 * 1024


class KeystoreError(AdsError):
    """A key cannot be stored or opened; the message says what to do."""


class WrongPassphrase(KeystoreError):
    pass


class CorruptKeyFile(KeystoreError):
    pass


class KeyNotFound(KeystoreError):
    pass


class KeyExists(KeystoreError):
    pass


def default_keyring() -> Path:
    """$ADS_KEYRING, else $XDG_CONFIG_HOME/ads/keyring, else ~/.config/ads/keyring."""
    if os.environ.get("ADS_KEYRING"):
        return Path(os.environ["ADS_KEYRING"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ads" / "keyring"


def is_test_chain(chain_id: str) -> bool:
    """Plaintext keys are for chains whose id says they are throwaway."""
    return "devnet" in chain_id or "test" in chain_id


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    pub: bytes
    encrypted: bool
    path: Path


def _aad(name: str, pub: bytes) -> bytes:
    return b"ads-keyring/1\x00" + name.encode() + b"\x00" + pub


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(32, passphrase.encode(), salt, opslimit=opslimit, memlimit=memlimit)


class Keyring:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_keyring()

    # ------------------------------------------------------------------ writing

    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(self.path, 0o700)

    def _write(self, name: str, doc: dict[str, object]) -> Path:
        if not _NAME.match(name):
            raise KeystoreError(f"key name {name!r}: use 1..64 of letters, digits, '.', '_', '-'")
        self._ensure_dir()
        path = self.path / f"{name}.key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyExists(f"a key named {name!r} exists in {self.path}; choose another name or delete it") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return path

    def add(self, name: str, key: SigningKey, passphrase: str | None) -> KeyInfo:
        """Store `key` under `name`, sealed with `passphrase` (None: plaintext, devnets only)."""
        if passphrase is None:
            doc: dict[str, object] = {"version": 1, "name": name, "pub": key.pub.hex(), "seed": key.seed.hex(),
                                      "plaintext": True}  # fmt: skip
        else:
            if not passphrase:
                raise KeystoreError("an empty passphrase protects nothing; choose one")
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            nonce = nacl.utils.random(24)
            box = _derive(passphrase, salt, OPSLIMIT, MEMLIMIT)
            ct = crypto_aead_xchacha20poly1305_ietf_encrypt(key.seed, _aad(name, key.pub), nonce, box)
            doc = {"version": 1, "name": name, "pub": key.pub.hex(),
                   "kdf": {"alg": "argon2id", "opslimit": OPSLIMIT, "memlimit": MEMLIMIT, "salt": salt.hex()},
                   "aead": _AEAD, "nonce": nonce.hex(), "ciphertext": ct.hex()}  # fmt: skip
        path = self._write(name, doc)
        return KeyInfo(name, key.pub, passphrase is not None, path)

    def new(self, name: str, passphrase: str | None) -> KeyInfo:
        return self.add(name, SigningKey.generate(), passphrase)

    def delete(self, name_or_pub: str) -> KeyInfo:
        info = self.find(name_or_pub)
        info.path.unlink()
        return info

    # ------------------------------------------------------------------ reading

    def _read(self, path: Path) -> dict[str, object]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"{path} does not exist") from None
        if len(data) > MAX_KEY_FILE:
            raise CorruptKeyFile(f"{path} is {len(data)} bytes, not a key file")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptKeyFile(f"{path} is not a key file (not JSON: {e}); restore it from a backup") from e
        if type(doc) is not dict or doc.get("version") != 1 or type(doc.get("pub")) is not str:
            raise CorruptKeyFile(f"{path} is not a version-1 key file; restore it from a backup")
        return doc

    def list(self) -> list[KeyInfo]:
        if not self.path.is_dir():
            return []
        out = []
        for p in sorted(self.path.glob("*.key")):
            try:
                doc = self._read(p)
                out.append(KeyInfo(p.stem, bytes.fromhex(str(doc["pub"])), not doc.get("plaintext"), p))
            except (KeystoreError, ValueError):
                continue  # `show` on it says what is wrong
        return out

    def find(self, name_or_pub: str) -> KeyInfo:
        """A key by name, or by public key hex."""
        if _NAME.match(name_or_pub) and (self.path / f"{name_or_pub}.key").exists():
            p = self.path / f"{name_or_pub}.key"
            doc = self._read(p)
            try:
                return KeyInfo(p.stem, bytes.fromhex(str(doc["pub"])), not doc.get("plaintext"), p)
            except ValueError as e:
                raise CorruptKeyFile(f"{p}: pub is not hex") from e
        for info in self.list():
            if info.pub.hex() == name_or_pub.lower():
                return info
        raise KeyNotFound(f"no key named or with public key {name_or_pub!r} in {self.path}; `ads key list` shows them")

    def load(self, name_or_pub: str, passphrase: str | None, *, chain_id: str | None = None) -> SigningKey:
        """The signing key; WrongPassphrase, CorruptKeyFile, KeyNotFound or KeystoreError."""
        info = self.find(name_or_pub)
        doc = self._read(info.path)
        try:
            if doc.get("plaintext"):
                if chain_id is None or not is_test_chain(chain_id):
                    raise KeystoreError(f"{info.path} is a plaintext devnet key; it is refused on chain "
                                        f"{chain_id!r} (only devnet/test chains)")  # fmt: skip
                key = SigningKey(bytes.fromhex(str(doc["seed"])))
            else:
                if passphrase is None:
                    raise WrongPassphrase(f"key {info.name!r} is encrypted: give its passphrase")
                kdf = doc["kdf"]
                if type(kdf) is not dict or kdf.get("alg") != "argon2id" or doc.get("aead") != _AEAD:
                    raise CorruptKeyFile(f"{info.path}: unknown KDF or AEAD")
                ops, mem = int(kdf["opslimit"]), int(kdf["memlimit"])
                if not (1 <= ops <= 64 and 8192 <= mem <= 4 << 30):  # a file cannot make us spend anything
                    raise CorruptKeyFile(f"{info.path}: KDF parameters out of range")
                box = _derive(passphrase, bytes.fromhex(str(kdf["salt"])), ops, mem)
                try:
                    seed = crypto_aead_xchacha20poly1305_ietf_decrypt(
                        bytes.fromhex(str(doc["ciphertext"])), _aad(info.name, info.pub),
                        bytes.fromhex(str(doc["nonce"])), box)  # fmt: skip
                except nacl.exceptions.CryptoError:
                    raise WrongPassphrase(f"wrong passphrase for key {info.name!r} (or the file was altered)") from None
                key = SigningKey(seed)
        except (KeyError, ValueError, TypeError, nacl.exceptions.ValueError) as e:
            raise CorruptKeyFile(f"{info.path} is damaged ({type(e).__name__}: {e}); restore it from a backup") from e
        if key.pub != info.pub:
            raise CorruptKeyFile(f"{info.path}: the stored public key does not match the secret")
        return key

    # ------------------------------------------------------------------ PKCS#8

    def export_pkcs8(self, name_or_pub: str, passphrase: str | None, out_passphrase: str, *,
                     chain_id: str | None = None) -> bytes:  # fmt: skip
        """The key as encrypted PKCS#8 PEM (readable by openssl with `out_passphrase`)."""
        if not out_passphrase:
            raise KeystoreError("an exported key must be encrypted: give a passphrase for the file")
        key = self.load(name_or_pub, passphrase, chain_id=chain_id)
        return Ed25519PrivateKey.from_private_bytes(key.seed).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(out_passphrase.encode()))  # fmt: skip

    def import_pkcs8(self, name: str, pem: bytes, pem_passphrase: str | None, passphrase: str | None) -> KeyInfo:
        """Store the Ed25519 key of a PKCS#8 PEM (encrypted or not) under `name`."""
        try:
            k = serialization.load_pem_private_key(pem, pem_passphrase.encode() if pem_passphrase else None)
        except TypeError as e:
            raise WrongPassphrase(f"the PEM is encrypted: give its passphrase ({e})") from e
        except ValueError as e:
            raise KeystoreError(f"not a readable PKCS#8 PEM key, or a wrong passphrase: {e}") from e
        if not isinstance(k, Ed25519PrivateKey):
            raise KeystoreError(f"the PEM holds a {type(k).__name__}, not an Ed25519 key")
        seed = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())  # fmt: skip
        return self.add(name, SigningKey(seed), passphrase)
