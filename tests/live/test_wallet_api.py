"""The wallet's Python API on a real devnet: node failover, the nonce race, typed refusals,
and the light-client reads refusing a lying answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from livenet import running_devnet

from ads_ledger.core.crypto import SigningKey
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet import Ledger, NodeUnreachable, NotVerified, TxOutcome, TxRefused, Verifier, txs


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "wapi") as n:
        yield n


def attestation(net: Network, pub: bytes) -> dict[str, object]:
    now = int(time.time() * 1000)
    return issue_attestation(load_trust_list(Path(net.info["eid"])), net.info["chain_id"], pub,
                             issued_at=now - 60_000, expires_at=now + 86_400_000)  # fmt: skip


def test_failover_and_unreachable(net: Network) -> None:
    key = SigningKey.generate()
    with Ledger(["http://127.0.0.1:9", net.apis[2]]) as ledger:  # the first is dead
        out = ledger.submit(key, *txs.attest(attestation(net, key.pub), key.pub))
        assert out.height >= 1 and out.node == net.apis[2] and out.nonce == 1
        assert ledger.account(key.pub)["identity"]["level"] == "substantial"  # type: ignore[index]
    with Ledger(["http://127.0.0.1:9", "http://127.0.0.1:1"]) as dead:
        with pytest.raises(NodeUnreachable) as e:
            dead.status()
    assert "127.0.0.1:9" in str(e.value) and "127.0.0.1:1" in str(e.value) and e.value.code == "node_unreachable"


def test_nonce_race_between_two_wallets_is_retried(net: Network) -> None:
    """Three wallets of one key submit at once through three nodes: all read nonce 0, one
    wins nonce 1, the others see the race and go again; every tx commits, nonces 1..3."""
    key = SigningKey.generate()
    bodies = [attestation(net, key.pub) for _ in range(3)]
    results: list[object] = [None] * 3

    def one(i: int) -> None:
        with Ledger([net.apis[i]], commit_timeout_s=60) as ledger:
            try:
                results[i] = ledger.submit(key, *txs.attest(bodies[i], key.pub))
            except Exception as e:  # noqa: BLE001 — reported by the assert below
                results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    nonces = sorted(r.nonce if isinstance(r, TxOutcome) else -1 for r in results)
    assert nonces == [1, 2, 3], results
    with Ledger([net.apis[0]]) as ledger:
        assert ledger.nonce(key.pub) == 3


def test_refusal_is_typed_and_changes_nothing(net: Network) -> None:
    stranger = SigningKey.generate()
    cp = SigningKey.generate().pub
    with Ledger([net.apis[0]]) as ledger:
        with pytest.raises(TxRefused) as e:
            ledger.submit(stranger, *txs.accept(cp))
        assert e.value.code == "not_pending" or e.value.code == "cp_unknown"
        assert e.value.hint and e.value.height is None  # refused at intake: not in a block
        assert ledger.account(stranger.pub) is None  # no account written, no nonce used


def test_verified_reads_refuse_a_tampered_answer(net: Network, tmp_path: Path) -> None:
    key = SigningKey.generate()
    with Ledger([net.apis[0]]) as ledger:
        ledger.submit(key, *txs.attest(attestation(net, key.pub), key.pub))
        v = Verifier(ledger, tmp_path / "light")
        got = v.account(key.pub)
        assert got.value["identity"]["level"] == "substantial" and got.first_use  # type: ignore[index]
        assert Verifier(ledger, tmp_path / "light").account(key.pub).first_use is False  # the stored root
        absent = v.record(SigningKey.generate().pub)
        assert absent.value is None and absent.raw is None  # proven absent

        # a node that swaps in another value for the key: the proof no longer matches
        real = ledger.call(lambda c: c.state)
        def lying_state(k: bytes, height: int | None = None) -> tuple[int, bytes | None, object]:
            h, raw, proof = real(k, height)
            return h, (raw or b"\x80")[:-1] + b"\x81", proof
        client = ledger._client(ledger.node)
        client.state = lying_state  # type: ignore[method-assign]
        with pytest.raises(NotVerified):
            v.account(key.pub)
        # a wrong trust root (a block id nobody signed) is refused, not adopted
        client.state = real  # type: ignore[method-assign]
        with pytest.raises(NotVerified):
            Verifier(ledger, tmp_path / "other", trust_height=1, trust_hash=b"\x00" * 32).account(key.pub)
