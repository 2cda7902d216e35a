import pytest

from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.mempool import AlreadySeen, Mempool, MempoolFull, NonceGap
from ads_ledger.state.envelope import make_envelope, parse_envelope

CHAIN = "test-chain"


def tx(key: SigningKey, nonce: int, owner: bytes = b"\x01" * 32):
    env = parse_envelope(make_envelope(CHAIN, "cp.propose", key, nonce, {"owner": owner}))
    return env.txid(CHAIN), env


def test_nonce_sequence_counts_pending() -> None:
    mp = Mempool()
    k = SigningKey.generate()
    mp.add(*tx(k, 4), committed_nonce=3)
    mp.add(*tx(k, 5), committed_nonce=3)
    with pytest.raises(NonceGap, match="next nonce is 6"):
        mp.add(*tx(k, 7), committed_nonce=3)
    assert len(mp) == 2


def test_duplicate_and_seen_cache() -> None:
    mp = Mempool()
    k = SigningKey.generate()
    t = tx(k, 1)
    mp.add(*t, committed_nonce=0)
    with pytest.raises(AlreadySeen):
        mp.add(*t, committed_nonce=0)
    mp.update([t[0]], lambda s: 1)
    assert len(mp) == 0
    with pytest.raises(AlreadySeen):  # still remembered after inclusion
        mp.add(*t, committed_nonce=1)


def test_limits_refuse_and_change_nothing() -> None:
    mp = Mempool(max_txs=2)
    keys = [SigningKey.generate() for _ in range(3)]
    mp.add(*tx(keys[0], 1), committed_nonce=0)
    mp.add(*tx(keys[1], 1), committed_nonce=0)
    before = (len(mp), mp.total_bytes)
    with pytest.raises(MempoolFull):
        mp.add(*tx(keys[2], 1), committed_nonce=0)
    assert (len(mp), mp.total_bytes) == before


def test_check_first_only_for_first_pending() -> None:
    mp = Mempool()
    k = SigningKey.generate()
    calls = []
    mp.add(*tx(k, 1), committed_nonce=0, check_first=calls.append)
    mp.add(*tx(k, 2), committed_nonce=0, check_first=calls.append)
    assert len(calls) == 1 and calls[0].nonce == 1


def test_reap_keeps_order_and_byte_limit() -> None:
    mp = Mempool()
    k = SigningKey.generate()
    ids = [mp.add(*tx(k, n), committed_nonce=0).txid for n in range(1, 6)]
    size = mp.pending()[0].size
    got = mp.reap(max_bytes=size * 3)
    assert [p.txid for p in got] == ids[:3]


def test_update_drops_stale_and_gapped() -> None:
    mp = Mempool()
    a, b = SigningKey.generate(), SigningKey.generate()
    for n in (1, 2, 3):
        mp.add(*tx(a, n), committed_nonce=0)
    mp.add(*tx(b, 1), committed_nonce=0)
    # a block used a's nonces 1..2 by other txs (e.g. from another node): 1 and 2 are stale
    dropped = mp.update([], lambda s: 2 if s == a.pub else 0)
    assert dropped == 2
    assert [p.env.nonce for p in mp.pending() if p.env.signer == a.pub] == [3]
    assert len(mp) == 2


def test_recheck_drops_a_signer_whose_first_tx_now_fails() -> None:
    mp = Mempool()
    a, b = SigningKey.generate(), SigningKey.generate()
    for n in (1, 2):
        mp.add(*tx(a, n), committed_nonce=0)
    mp.add(*tx(b, 1), committed_nonce=0)
    dropped = mp.recheck(lambda env: env.signer != a.pub)
    assert dropped == 2 and [p.env.signer for p in mp.pending()] == [b.pub]
    assert mp.recheck(lambda env: True) == 0


def test_update_with_touched_signers_checks_only_those() -> None:
    mp = Mempool()
    a, b = SigningKey.generate(), SigningKey.generate()
    ta, tb = tx(a, 1), tx(b, 1)
    mp.add(*ta, committed_nonce=0)
    mp.add(*tb, committed_nonce=0)
    asked: list[bytes] = []

    def nonce(signer: bytes) -> int:
        asked.append(signer)
        return 1  # both nonces were used (b's by a tx we never had)

    assert mp.update([], nonce, touched=[b.pub]) == 1
    assert asked == [b.pub]  # a was not looked up: its nonce cannot have moved
    assert ta[0] in mp and tb[0] not in mp
    assert mp.signer_of(ta[0]) == a.pub and mp.signer_of(tb[0]) is None and mp.signer_count() == 1


def test_recheck_rotates_when_more_signers_than_the_limit() -> None:
    mp = Mempool()
    keys = [SigningKey.generate() for _ in range(5)]
    for k in keys:
        mp.add(*tx(k, 1), committed_nonce=0)
    checked: list[bytes] = []

    def check(env) -> bool:  # type: ignore[no-untyped-def]
        checked.append(env.signer)
        return True

    for _ in range(3):
        assert mp.recheck(check, limit=2) == 0
    assert len(checked) == 6  # at most `limit` per call
    assert set(checked) == {k.pub for k in keys}  # …and every signer within a few calls
    assert mp.recheck(lambda env: env.signer != keys[0].pub, limit=10) == 1
    assert len(mp) == 4
