import pytest

from ads_ledger.core.crypto import SigningKey
from ads_ledger.node.mempool import AlreadySeen, ClientBusy, Mempool, MempoolFull, NonceGap, SignerBusy
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


# ---------------------------------------------------------------- fair admission


def _fill(mp: Mempool, key: SigningKey, n: int, first: int = 1) -> list[bytes]:
    ids = []
    for nonce in range(first, first + n):
        txid, env = tx(key, nonce)
        mp.add(txid, env, committed_nonce=first - 1)
        ids.append(txid)
    return ids


def _check(mp: Mempool) -> None:
    """The count buckets agree with the per-signer lists (the invariant eviction relies on)."""
    counts = {s: len(ids) for s, ids in mp._by_signer.items()}
    assert counts == mp._signers.as_dict()
    top = mp.busiest()
    assert (top is None) == (not counts) and (top is None or top[1] == max(counts.values()))
    origins = {o: len(ids) for o, ids in mp._by_origin.items()}
    assert origins == mp._origins.as_dict()
    assert sum(origins.values()) == sum(1 for p in mp.pending() if p.origin is not None)


def test_admits_at_least_64_pending_per_signer() -> None:
    mp = Mempool()
    assert mp.max_per_signer >= 64
    k = SigningKey.generate()
    _fill(mp, k, 64)
    assert mp.pending_of(k.pub) == 64


def test_signer_bound_refuses_with_signer_busy() -> None:
    mp = Mempool(max_per_signer=64)
    k = SigningKey.generate()
    _fill(mp, k, 64)
    with pytest.raises(SignerBusy) as e:
        mp.add(*tx(k, 65), committed_nonce=0)
    assert e.value.code == "signer_busy" and len(mp) == 64
    mp.update([], lambda s: 1, [k.pub])  # nonce 1 committed elsewhere: room for one more
    mp.add(*tx(k, 65), committed_nonce=1)
    _check(mp)


def test_full_pool_evicts_the_flooders_newest_for_a_newcomer() -> None:
    mp = Mempool(max_txs=10)
    flooder, owner = SigningKey.generate(), SigningKey.generate()
    ids = _fill(mp, flooder, 10)
    t = tx(owner, 1)
    mp.add(*t, committed_nonce=0)  # without the rule: MempoolFull
    assert t[0] in mp and ids[-1] not in mp and len(mp) == 10 and mp.evicted == 1
    assert [p.env.nonce for p in mp.pending() if p.env.signer == flooder.pub] == list(range(1, 10))
    assert not mp.seen(ids[-1])  # forgotten: the flooder may submit it again later
    assert mp.expected_nonce(flooder.pub, 0) == 10
    _check(mp)


def test_eviction_by_bytes_frees_enough_room() -> None:
    flooder, owner = SigningKey.generate(), SigningKey.generate()
    size = len(tx(flooder, 1)[1].raw)
    mp = Mempool(max_bytes=10 * size)
    _fill(mp, flooder, 10)
    mp.add(*tx(owner, 1, owner=b"\x02" * 32), committed_nonce=0)
    assert mp.total_bytes <= 10 * size and mp.pending_of(owner.pub) == 1
    _check(mp)


def test_many_flooders_cannot_starve_newcomers() -> None:
    """Fresh keys flood a full pool; every honest newcomer still gets in, and the busiest
    signers are the ones that lose txs, down to an even share."""
    mp = Mempool(max_txs=200)
    flooders = [SigningKey.generate() for _ in range(10)]
    for f in flooders:
        _fill(mp, f, 20)
    assert len(mp) == 200
    owners = [SigningKey.generate() for _ in range(50)]
    for o in owners:
        mp.add(*tx(o, 1), committed_nonce=0)
        _check(mp)
    assert len(mp) == 200 and all(mp.pending_of(o.pub) == 1 for o in owners)
    assert {mp.pending_of(f.pub) for f in flooders} == {15}  # 150 left, evenly
    for f in flooders:  # each flooder's chain is still consecutive from its first nonce
        assert [p.env.nonce for p in mp.pending() if p.env.signer == f.pub] == list(range(1, 16))


def test_full_pool_of_fair_shares_refuses_and_changes_nothing() -> None:
    mp = Mempool(max_txs=4)
    a, b, c = (SigningKey.generate() for _ in range(3))
    _fill(mp, a, 2)
    _fill(mp, b, 2)
    mp.add(*tx(c, 1), committed_nonce=0)  # a holds 2 ≥ 0 + 2: one of a's or b's goes
    assert len(mp) == 4 and mp.evicted == 1
    before = [p.txid for p in mp.pending()]
    with pytest.raises(MempoolFull):  # c holds 1; the busiest holds 2 < 1 + 2
        mp.add(*tx(c, 2), committed_nonce=0)
    assert [p.txid for p in mp.pending()] == before and mp.evicted == 1


def test_refused_newcomer_evicts_nothing() -> None:
    mp = Mempool(max_txs=3)
    flooder, owner = SigningKey.generate(), SigningKey.generate()
    _fill(mp, flooder, 3)

    def refuse(env: object) -> None:
        raise ValueError("state check failed")

    with pytest.raises(NonceGap):
        mp.add(*tx(owner, 2), committed_nonce=0)
    with pytest.raises(ValueError):
        mp.add(*tx(owner, 1), committed_nonce=0, check_first=refuse)
    assert len(mp) == 3 and mp.evicted == 0


def test_eviction_is_cheap_with_thousands_of_signers() -> None:
    import time

    mp = Mempool(max_txs=20000)
    keys = [SigningKey.generate() for _ in range(2000)]
    envs = [tx(k, n) for k in keys[:1000] for n in range(1, 21)]
    for txid, env in envs:
        mp.add(txid, env, committed_nonce=0)
    assert len(mp) == 20000
    fresh = [tx(k, 1) for k in keys[1000:]]
    t0 = time.perf_counter()
    for txid, env in fresh:
        mp.add(txid, env, committed_nonce=0)
    per_add = (time.perf_counter() - t0) / len(fresh)
    assert len(mp) == 20000 and mp.evicted == 1000
    assert per_add < 1e-3, f"{per_add * 1e6:.0f} µs per admission with eviction"
    _check(mp)


def test_reap_takes_rounds_across_signers_so_a_chain_does_not_queue_others() -> None:
    mp = Mempool()
    flooder, owner = SigningKey.generate(), SigningKey.generate()
    chain = _fill(mp, flooder, 10)
    grant = mp.add(*tx(owner, 1), committed_nonce=0).txid
    got = [p.txid for p in mp.reap(max_bytes=1 << 20, max_txs=3)]
    assert got == [chain[0], grant, chain[1]]  # arrival order would be chain[0..2]
    assert [p.txid for p in mp.reap(max_bytes=1 << 20)] == [chain[0], grant, *chain[1:]]


def test_reap_byte_limit_stops_a_signer_but_not_the_others() -> None:
    mp = Mempool()
    a, b = SigningKey.generate(), SigningKey.generate()
    big, _ = _fill(mp, a, 2)
    (small,) = _fill(mp, b, 1)
    size = mp.pending()[0].size
    mp._txs[big].size = 10 * size  # as if a's first tx were large
    got = [p.txid for p in mp.reap(max_bytes=5 * size)]
    assert got == [small]  # a's later tx cannot skip its first; b's still fits
    assert [p.txid for p in mp.reap(max_bytes=11 * size)] == [big, small]


def test_client_bound_refuses_with_client_busy() -> None:
    mp = Mempool(max_per_client=3)
    keys = [SigningKey.generate() for _ in range(4)]
    for k in keys[:3]:
        mp.add(*tx(k, 1), committed_nonce=0, origin="10.0.0.1")
    with pytest.raises(ClientBusy) as e:
        mp.add(*tx(keys[3], 1), committed_nonce=0, origin="10.0.0.1")
    assert e.value.code == "client_busy" and len(mp) == 3
    mp.add(*tx(keys[3], 1), committed_nonce=0, origin="10.0.0.2")  # another client
    mp.add(*tx(keys[0], 2), committed_nonce=0)  # relayed by a peer: no client bound
    mp.update([], lambda s: 1, [keys[0].pub])  # keys[0]'s first committed: the client has room
    assert mp.pending_of_client("10.0.0.1") == 2
    mp.add(*tx(SigningKey.generate(), 1), committed_nonce=0, origin="10.0.0.1")
    _check(mp)


def test_full_pool_of_fresh_keys_from_one_client_yields_to_another_client() -> None:
    """Many fresh keys, one tx each, from one address: no signer is over its share, but the
    client is, so a newcomer from another address evicts that client's newest tx."""
    mp = Mempool(max_txs=100)
    sybils = [SigningKey.generate() for _ in range(100)]
    ids = [mp.add(*tx(k, 1), committed_nonce=0, origin="127.0.0.1").txid for k in sybils]
    owner = SigningKey.generate()
    with pytest.raises(MempoolFull):  # rule 2 needs the newcomer's client: a relayed tx waits
        mp.add(*tx(owner, 1), committed_nonce=0)
    t = tx(owner, 1)
    mp.add(*t, committed_nonce=0, origin="127.0.0.2")
    assert t[0] in mp and ids[-1] not in mp and len(mp) == 100 and mp.evicted == 1
    assert not mp.seen(ids[-1])
    for i in range(2, 51):  # the owner's client gets up to an even share, then no more
        mp.add(*tx(owner, i), committed_nonce=0, origin="127.0.0.2")
    assert mp.pending_of_client("127.0.0.2") == 50 and mp.pending_of_client("127.0.0.1") == 50
    with pytest.raises(MempoolFull):
        mp.add(*tx(owner, 51), committed_nonce=0, origin="127.0.0.2")
    _check(mp)


def test_client_rule_never_evicts_the_newcomers_own_chain() -> None:
    mp = Mempool(max_txs=5)
    k = SigningKey.generate()
    for n in range(1, 6):
        mp.add(*tx(k, n), committed_nonce=0, origin="10.0.0.1")
    # k holds 5 but is the newcomer's own signer; its client is the only one: refuse, evict none
    with pytest.raises(MempoolFull):
        mp.add(*tx(k, 6), committed_nonce=0, origin="10.0.0.2")
    assert len(mp) == 5 and mp.evicted == 0
