"""TEST-ONLY helpers: a test eID trust list (trustlist.py) and an in-memory ledger harness.

Never used by a production node. May import anything in ads_ledger; nothing in ads_ledger's
runtime imports this package.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Sequence

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.state.machine import BlockResult, DictView, TxResult, check_tx, execute_block
from ads_ledger.state.records import acct_key, cp_key
from ads_ledger.testing.trustlist import TestDeviceCA, issue_device_attestation, make_device_ca

__all__ = [
    "LedgerHarness",
    "key",
    "make_test_genesis",
    "test_device_ca",
    "device_attestation",
    "propose_tx",
]

# the test manufacturer's statements are dated here, before every test chain's genesis
DEVICE_ISSUED_AT = 1_600_000_000_000


@lru_cache(maxsize=1)
def test_device_ca() -> TestDeviceCA:
    """TEST-ONLY: one manufacturer CA per process, valid 2020–2099 (test chains start in 2027)."""
    return make_device_ca(
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        not_after=dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc),
    )


test_device_ca.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


@lru_cache(maxsize=4096)
def device_attestation(device: bytes, ca: TestDeviceCA | None = None) -> dict[str, Any]:
    """TEST-ONLY: the test manufacturer's attestation for `device` (cached: ECDSA is randomised,
    and a device ships one attestation for life)."""
    return issue_device_attestation(ca or test_device_ca(), device, issued_at=DEVICE_ISSUED_AT)


def key(name: str) -> SigningKey:
    """A deterministic TEST-ONLY key named `name` (seed = SHA-256 of the name)."""
    from ads_ledger.core.crypto import H

    return SigningKey(H(b"ads test key " + name.encode()))


def propose_tx(chain_id: str, device: SigningKey, owner: bytes, *, nonce: int = 1,
               ca: TestDeviceCA | None = None) -> bytes:  # fmt: skip
    """TEST-ONLY: a `cp.propose`; the first (nonce 1) carries the manufacturer's attestation
    (from `ca`, e.g. a testnet's `device-ca/`, or the process-wide test CA)."""
    body: dict[str, Any] = {"owner": owner}
    if nonce == 1:
        body["device"] = (device_attestation(device.pub) if ca is None else
                          issue_device_attestation(ca, device.pub, issued_at=DEVICE_ISSUED_AT))  # fmt: skip
    return make_envelope(chain_id, "cp.propose", device, nonce, body)


class LedgerHarness:
    """TEST-ONLY: a chain in a dict. Build txs with the right nonces and run blocks on it."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.view = DictView(dict(genesis.state_writes()))
        self.height = 0
        self.time = genesis.genesis_time
        self._nonces: dict[bytes, int] = {}

    def nonce(self, pub: bytes) -> int:
        """The next nonce for `pub`, counting txs built but not yet executed."""
        n = self._nonces.get(pub)
        if n is None:
            acct = self.acct(pub)
            n = 0 if acct is None else int(acct["nonce"])
        return n + 1

    def propose(self, device: SigningKey, owner: bytes, *, attested: bool = True) -> bytes:
        """A cp.propose by `device` naming `owner`, with the test manufacturer's attestation."""
        body: dict[str, Any] = {"owner": owner}
        if attested:
            body["device"] = device_attestation(device.pub)
        return self.tx(device, "cp.propose", body)

    def tx(
        self,
        signer: SigningKey,
        ttype: str,
        body: dict[str, Any],
        cosigners: Sequence[SigningKey] = (),
        nonce: int | None = None,
    ) -> bytes:
        n = self.nonce(signer.pub) if nonce is None else nonce
        if nonce is None:
            self._nonces[signer.pub] = n
        return make_envelope(self.chain_id, ttype, signer, n, body, cosigners)

    def block(self, *txs: bytes, dt_ms: int = 1000, sigs_checked: bool = False) -> BlockResult:
        self.height += 1
        self.time += dt_ms
        res = execute_block(self.view, self.chain_id, self.height, self.time, list(txs),
                            sigs_checked=sigs_checked)  # fmt: skip
        self.view.apply(res.writes)
        self._nonces.clear()
        return res

    def run(self, signer: SigningKey, ttype: str, body: dict[str, Any], cosigners: Sequence[SigningKey] = ()) -> TxResult:
        """One tx in its own block; its result."""
        return self.block(self.tx(signer, ttype, body, cosigners)).results[0]

    def check(self, raw: bytes) -> TxResult:
        return check_tx(self.view, self.chain_id, raw, self.time + 1000)

    def get(self, k: bytes) -> Any:
        raw = self.view.get(k)
        return None if raw is None else codec.decode(raw)

    def acct(self, pub: bytes) -> Any:
        return self.get(acct_key(pub))

    def cp(self, pub: bytes) -> Any:
        return self.get(cp_key(pub))


def make_test_genesis(
    anchors_der: Sequence[bytes] = (),
    *,
    chain_id: str = "ads-test",
    genesis_time: int = 1_800_000_000_000,
    n_validators: int = 4,
    n_members: int = 3,
    threshold: int = 2,
    device_anchors_der: Sequence[bytes] | None = None,
) -> Genesis:
    """TEST-ONLY genesis: validators `key("validator{i}")`, members `key("member{j}")`; the
    device anchor is `test_device_ca()`'s root unless `device_anchors_der` is given."""
    return Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        validators=[(key(f"validator{i}").pub, 10) for i in range(n_validators)],
        members=[key(f"member{j}").pub for j in range(n_members)],
        threshold=threshold,
        anchors=list(anchors_der),
        device_anchors=list(test_device_ca().anchors_der() if device_anchors_der is None else device_anchors_der),
        note="TEST-ONLY genesis — NOT FOR PRODUCTION",
    )
