"""What every wallet command shares: `--node` (repeatable, or ADS_NODE with commas) with
failover, the keyring and passphrase, `--json`, and one way to turn a wallet error into one
clear line with a next step and exit status 1.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from ads_ledger.cli.key import keyring_option, passphrase_option, read_passphrase
from ads_ledger.client.output import fail, json_option
from ads_ledger.core.crypto import SigningKey
from ads_ledger.light.errors import LightError
from ads_ledger.wallet.errors import TxRefused, WalletError
from ads_ledger.wallet.keystore import Keyring, KeystoreError
from ads_ledger.wallet.ledger import Ledger
from ads_ledger.wallet.verified import Verified, Verifier

__all__ = ["node_option", "key_options", "wallet_command", "open_ledger", "load_key", "trust_options", "resolve_pub",
           "write_new", "verifier", "trust_note"]

F = TypeVar("F", bound=Callable[..., Any])


def node_option(f: F) -> F:
    return click.option("--node", "nodes", multiple=True, metavar="URL",
                        help="A node API URL (repeat for failover; default: $ADS_NODE, comma-separated).")(f)  # fmt: skip


def key_options(f: F) -> F:
    """--key NAME|PUB (or a devnet key file), --keyring, --passphrase-file."""
    f = passphrase_option(keyring_option(f))
    return click.option("--key", "key_ref", required=True, metavar="NAME",
                        help="Your key: a keyring name or public key hex (or a devnet key file).")(f)  # fmt: skip


def trust_options(f: F) -> F:
    f = click.option("--trust-height", type=click.IntRange(1), default=None,
                     help="Height of a block you trust (with --trust-hash); default: trust block 1 on first use.")(f)  # fmt: skip
    return click.option("--trust-hash", default=None, metavar="HEX",
                        help="That block's id, obtained out of band (e.g. from the network's operators).")(f)  # fmt: skip


def open_ledger(nodes: tuple[str, ...]) -> Ledger:
    urls = list(nodes) or [u.strip() for u in os.environ.get("ADS_NODE", "").split(",") if u.strip()]
    if not urls:
        raise WalletError("no node given", hint="pass --node URL (repeatable) or set ADS_NODE")
    return Ledger(urls)


def load_key(ref: str, keyring: Path | None, passphrase_file: Path | None, chain_id: str) -> SigningKey:
    """A keyring key by name or pub hex; a devnet key file {"pub", "seed"} on test chains only."""
    path = Path(ref)
    if ("/" in ref or ref.endswith((".key", ".json"))) and path.is_file():  # keyring names have neither
        from ads_ledger.wallet.keystore import is_test_chain

        if not is_test_chain(chain_id):
            raise WalletError(f"{path} is a plaintext key file; they are for devnet/test chains only",
                              hint="import it into the keyring: `ads key import`")  # fmt: skip
        try:
            doc = json.loads(path.read_text())
            return SigningKey(bytes.fromhex(doc["seed"]))
        except (ValueError, KeyError, TypeError) as e:
            raise WalletError(f"{path} is not a key file: {e}") from e
    kr = Keyring(keyring)
    info = kr.find(ref)
    return kr.load(ref, read_passphrase(passphrase_file) if info.encrypted else None, chain_id=chain_id)


def resolve_pub(ref: str, keyring: Path | None, what: str = "key") -> bytes:
    """A public key: 64 hex characters, a keyring name (no passphrase needed) or a devnet key file."""
    from ads_ledger.wallet.txs import parse_pub

    path = Path(ref)
    if ("/" in ref or ref.endswith((".key", ".json"))) and path.is_file():
        try:
            return parse_pub(str(json.loads(path.read_text())["pub"]), what)
        except (ValueError, KeyError, TypeError) as e:
            raise WalletError(f"{path} is not a key file: {e}") from None
    if len(ref) == 64:
        try:
            return parse_pub(ref, what)
        except WalletError:
            pass  # a 64-character keyring name
    return Keyring(keyring).find(ref).pub


def write_new(path: Path, data: bytes) -> None:
    """Create `path` (never overwriting: O_EXCL), fsynced; mode 0644 (no secrets go through here)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise WalletError(f"{path} exists; not overwriting it", code="exists", hint="choose another --out") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def verifier(ledger: Ledger, trust_height: int | None, trust_hash: str | None) -> Verifier:
    try:
        h = None if trust_hash is None else bytes.fromhex(trust_hash)
    except ValueError:
        raise WalletError("--trust-hash must be hex (a block id)") from None
    return Verifier(ledger, trust_height=trust_height, trust_hash=h)


def trust_note(v: Verified) -> str:
    return ("\n  (trust on first use: block 1 as this node served it; pin a block you know with "
            "--trust-height/--trust-hash)" if v.first_use else "")  # fmt: skip


def wallet_command(f: F) -> F:
    """Run a wallet command: WalletError / KeystoreError / LightError → one line, a hint, exit 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return f(*args, **kwargs)
        except TxRefused as e:
            where = f" (tx {e.txid.hex()[:16]}…" + (f", block {e.height})" if e.height else ")") if e.txid else ""
            fail(as_json, e.code, f"refused ({e.code}): {e}{where}", e.hint)
        except WalletError as e:
            fail(as_json, e.code, str(e), e.hint)
        except KeystoreError as e:
            fail(as_json, "keystore", str(e), "check the key name (`ads key list`) and its passphrase")
        except LightError as e:
            fail(as_json, "not_verified", f"the node's answer does not verify: {e}", "try another --node")

    return json_option(wrapper)  # type: ignore[return-value]
