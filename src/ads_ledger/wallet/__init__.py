"""The wallet (DESIGN §8): what owners, providers and governance members do, as a Python API
usable without the CLI.

    keystore   named Ed25519 keys encrypted at rest (argon2id + XChaCha20-Poly1305)
    ledger     `Ledger`: node failover, nonces, submit and wait for commit (`TxOutcome`)
    verified   `Verifier`: records and accounts checked as a light client
    txs        transaction bodies from typed arguments, and what a committed one did in words
    gov        offline multi-signature governance drafts
    units      strict power / duration / date parsing
    commands   DESIGN §7 commands to a charge point and their receipts
    errors     `WalletError` (code + hint), `TxRefused`, `NodeUnreachable`, `NotVerified`

    with Ledger(["http://127.0.0.1:26657"]) as ledger:
        out = ledger.submit(owner_key, *txs.revoke(cp, grant_id))

May import `ads_ledger.core`, `.state`, `.light` and `.client`; never the node.
"""

from ads_ledger.wallet.errors import NodeUnreachable, NotVerified, TxRefused, WalletError
from ads_ledger.wallet.ledger import Ledger, TxOutcome
from ads_ledger.wallet.verified import Verified, Verifier

__all__ = ["Ledger", "TxOutcome", "Verifier", "Verified", "WalletError", "TxRefused", "NodeUnreachable",
           "NotVerified"]  # fmt: skip
