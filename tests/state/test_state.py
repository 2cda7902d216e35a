"""execute_block / check_tx semantics (state.py): nonces, failed txs, overlay, determinism, hostile bytes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, sign_bytes
from ads_ledger.state.envelope import TX_TAG, make_envelope, parse_envelope
from ads_ledger.state.identity import ms_to_datetime
from ads_ledger.state.machine import check_tx, execute_block, tx_sign_bytes
from ads_ledger.testing import LedgerHarness, key, make_test_genesis
from ads_ledger.testing.trustlist import TestTrustList, issue_attestation, make_trust_list

T0 = 1_800_000_000_000
DAY = 86_400_000
OWNER, DEV, PROV = key("owner"), key("dev"), key("prov")


@pytest.fixture(scope="module")
def trust() -> TestTrustList:
    at = ms_to_datetime(T0)
    return make_trust_list(not_before=at - dt.timedelta(days=1), not_after=at + dt.timedelta(days=365))


def grant_body(**kw: Any) -> dict[str, Any]:
    b = {
        "cp": DEV.pub, "grantee": PROV.pub, "scopes": ["meter.read"], "not_before": T0,
        "not_after": T0 + DAY, "limits": {}, "exclusive": False, "priority": 1, "redelegate": 0,
        "parent": None,
    }  # fmt: skip
    b.update(kw)
    return b


@pytest.fixture
def h(trust: TestTrustList) -> LedgerHarness:
    """A chain where OWNER is attested and owns DEV, built in ONE block (later txs see earlier ones)."""
    h = LedgerHarness(make_test_genesis(trust.anchors_der(), genesis_time=T0))
    att = issue_attestation(trust, h.chain_id, OWNER.pub, issued_at=T0, expires_at=T0 + 100 * DAY)
    res = h.block(
        h.tx(OWNER, "attest", att),
        h.propose(DEV, OWNER.pub),
        h.tx(OWNER, "cp.accept", {"cp": DEV.pub}),
        h.tx(OWNER, "grant", grant_body()),
    )
    assert [r.code for r in res.results] == ["ok"] * 4
    assert list(res.writes) == sorted(res.writes)
    for v in res.writes.values():  # canonical values only
        assert v is not None and codec.encode(codec.decode(v)) == v
    return h


def test_failed_rule_consumes_nonce_only(h: LedgerHarness) -> None:
    before = h.cp(DEV.pub)
    res = h.block(h.tx(OWNER, "revoke", {"cp": DEV.pub, "grant": bytes(16)}))
    assert res.results[0].code == "grant_unknown"
    assert set(res.writes) == {b"acct/" + OWNER.pub}
    assert h.acct(OWNER.pub)["nonce"] == 4
    assert h.cp(DEV.pub) == before


def test_failed_rule_of_a_fresh_key_writes_nothing(h: LedgerHarness) -> None:
    """Refused txs from keys with no account cannot grow the state (spam from fresh keys)."""
    res = h.block(h.tx(PROV, "grant", grant_body()), h.propose(key("spam"), PROV.pub, attested=False))
    assert [r.code for r in res.results] == ["not_owner", "device_required"]
    assert res.writes == {}
    assert h.acct(PROV.pub) is None


def test_failed_tx_in_block_leaves_no_partial_changes(h: LedgerHarness) -> None:
    # the second grant fails; the third sees the first's effects but nothing of the second's
    m = [key(f"member{j}") for j in range(2)]
    reg = {"pub": PROV.pub, "name": "prov", "roles": ["aggregator"], "cap_w": None}
    assert h.run(m[0], "gov", {"action": "providers.set", "args": reg}, [m[1]]).ok  # flex needs a role
    g1 = h.tx(OWNER, "grant", grant_body(scopes=["flex"], exclusive=True))
    g2 = h.tx(OWNER, "grant", grant_body(scopes=["flex"], exclusive=True, grantee=OWNER.pub))
    g3 = h.tx(OWNER, "grant", grant_body(grantee=DEV.pub))
    res = h.block(g1, g2, g3)
    assert [r.code for r in res.results] == ["ok", "exclusive_held", "ok"]
    grantees = sorted(g["grantee"] for g in h.cp(DEV.pub)["grants"])
    assert grantees == sorted([PROV.pub, PROV.pub, DEV.pub])
    assert h.acct(OWNER.pub)["nonce"] == 6  # 3 before, 3 here (the failed one too)


def test_bad_signature_and_wrong_nonce_change_nothing(h: LedgerHarness) -> None:
    raw = make_envelope(h.chain_id, "grant", OWNER, 4, grant_body())
    env = codec.decode(raw)
    env["auth"][0][1] = bytes(64)
    forged = codec.encode(env)
    other_chain = make_envelope("other-chain", "grant", OWNER, 4, grant_body())
    res = h.block(forged, other_chain, make_envelope(h.chain_id, "grant", OWNER, 9, grant_body()))
    assert [r.code for r in res.results] == ["bad_signature", "bad_signature", "bad_nonce"]
    assert res.writes == {}
    assert "use 4" in res.results[2].log


def test_replay_is_refused(h: LedgerHarness) -> None:
    raw = h.tx(OWNER, "revoke", {"cp": DEV.pub, "grant": bytes(16)})
    assert h.block(raw).results[0].code == "grant_unknown"  # consumed its nonce
    res = h.block(raw)
    assert res.results[0].code == "bad_nonce" and res.writes == {}


def test_duplicate_in_one_block(h: LedgerHarness) -> None:
    raw = h.tx(OWNER, "grant", grant_body())
    assert [r.code for r in h.block(raw, raw).results] == ["ok", "bad_nonce"]


def test_sigs_checked_skips_only_envelope_signatures(h: LedgerHarness) -> None:
    env = codec.decode(make_envelope(h.chain_id, "grant", OWNER, 4, grant_body()))
    env["auth"][0][1] = bytes(64)
    assert h.block(codec.encode(env), sigs_checked=True).results[0].ok


def test_hostile_bytes(h: LedgerHarness) -> None:
    res = h.block(b"", b"\xc1", b"\x80", codec.encode({"type": "grant"}), b"\x00" * (33 * 1024))
    assert [r.code for r in res.results] == ["malformed"] * 4 + ["too_large"]
    assert res.results[0].txid == H(b"") and res.writes == {}


def test_check_tx_matches_execution_and_writes_nothing(h: LedgerHarness) -> None:
    good = h.tx(OWNER, "grant", grant_body())
    bad = make_envelope(h.chain_id, "grant", PROV, 1, grant_body())
    snapshot = dict(h.view.data)
    c_good, c_bad = h.check(good), h.check(bad)
    assert (c_good.ok, c_bad.code) == (True, "not_owner")
    assert h.view.data == snapshot
    assert check_tx(h.view, h.chain_id, good, T0, verify_sigs=True).txid == c_good.txid
    assert check_tx(h.view, "other", good, T0).code == "bad_signature"
    res = h.block(good, bad)
    assert [(r.txid, r.code) for r in res.results] == [(c_good.txid, "ok"), (c_bad.txid, "not_owner")]


@pytest.mark.parametrize("n", [1, 2, 15, 16, 32])
def test_fast_sign_bytes_match_envelope(n: int) -> None:
    keys = [key(f"k{i}") for i in range(n)]
    raw = make_envelope("ads-test", "gov", keys[0], 3, {"action": "params.set", "args": {"x": 1}}, keys[1:])
    env = parse_envelope(raw)
    encoded = sign_bytes(TX_TAG, "ads-test", env.unsigned())  # DESIGN §3's definition, re-encoded
    assert tx_sign_bytes(env, "ads-test") == env.sign_bytes("ads-test") == encoded
    assert H(encoded) == env.txid("ads-test")


def test_deterministic_writes(h: LedgerHarness) -> None:
    txs = [h.tx(OWNER, "grant", grant_body(grantee=key(f"p{i}").pub)) for i in range(5)]
    txs.append(h.propose(DEV, PROV.pub))
    a = execute_block(h.view, h.chain_id, 9, T0 + 5000, txs)
    b = execute_block(h.view, h.chain_id, 9, T0 + 5000, list(txs))
    assert a.writes == b.writes and list(a.writes) == list(b.writes) and a.results == b.results
    assert len(h.cp(DEV.pub)["grants"]) == 1  # execute_block never writes to the view


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_transactions_never_crash(h: LedgerHarness, data: st.DataObject) -> None:
    """Bit flips, truncations and splices of valid txs yield typed refusals, never exceptions."""
    raws = [  # fixed nonces: every example must draw from the same txs
        make_envelope(h.chain_id, "grant", OWNER, 4, grant_body()),
        make_envelope(h.chain_id, "cp.propose", DEV, 2, {"owner": PROV.pub}),
        make_envelope(h.chain_id, "revoke", OWNER, 4, {"cp": DEV.pub, "grant": bytes(16)}),
    ]
    raw = bytearray(data.draw(st.sampled_from(raws)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[i:]
            if not raw:
                break
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    for sigs_checked in (False, True):
        res = execute_block(h.view, h.chain_id, 5, T0 + 9000, [bytes(raw)], sigs_checked=sigs_checked)
        assert res.results[0].code in {
            "ok", "malformed", "bad_signature", "bad_nonce", "unknown_type", "scope_unknown",
            "not_owner", "grant_unknown", "cp_owned", "cp_unknown", "bad_window", "not_pending",
            "exclusive_required", "no_owner",
        }  # fmt: skip


def test_every_cosignature_is_verified(h: LedgerHarness) -> None:
    m = [key(f"member{j}") for j in range(3)]
    raw = make_envelope(h.chain_id, "gov", m[0], 1, {"action": "params.set", "args": {"heartbeat_ms": 3000}}, [m[1]])
    env = codec.decode(raw)
    env["auth"][1][1] = m[1].sign(b"something else")
    res = h.block(codec.encode(env))
    assert res.results[0].code == "bad_signature" and "auth[1]" in res.results[0].log
    assert res.writes == {}


def test_each_key_read_once_per_block(h: LedgerHarness) -> None:
    """The overlay decodes a record once per block, however many txs touch it."""
    reads: list[bytes] = []

    class CountingView:
        def get(self, k: bytes) -> bytes | None:
            reads.append(k)
            return h.view.get(k)

    txs = [h.tx(OWNER, "grant", grant_body(grantee=key(f"p{i}").pub)) for i in range(4)]
    res = execute_block(CountingView(), h.chain_id, 9, T0 + 5000, txs)
    assert all(r.ok for r in res.results)
    assert len(reads) == len(set(reads))
    assert len(codec.decode(res.writes[b"cp/" + DEV.pub])["grants"]) == 5


def test_a_rule_that_raises_unexpectedly_refuses_the_tx_and_keeps_the_node_up(
    h: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug a tx can trigger must not halt every validator: the tx is refused with
    `internal_error` (the same on every node), its nonce consumed, nothing else changed."""
    from ads_ledger.state import machine as state

    def broken(ctx: Any, env: Any, txid: bytes) -> None:
        ctx.state.put(b"cp/" + DEV.pub, {"half": "written"})
        raise KeyError("planted")

    before = h.cp(DEV.pub)
    monkeypatch.setitem(state.RULES, "revoke", broken)
    res = h.block(h.tx(OWNER, "revoke", {"cp": DEV.pub, "grant": b"\x00" * 16}))
    assert res.results[0].code == "internal_error"
    assert h.cp(DEV.pub) == before
    assert set(res.writes) == {b"acct/" + OWNER.pub}


def test_certificate_with_an_invalid_version_is_malformed(trust: TestTrustList) -> None:
    """cryptography raises InvalidVersion (not a ValueError) for a bad version field."""
    from ads_ledger.state.identity import verify_attestation
    from ads_ledger.state.reasons import TxRejected

    body = issue_attestation(trust, "c", OWNER.pub, issued_at=T0, expires_at=T0 + DAY)
    der = bytearray(body["issuer_certs"][0])
    i = der.index(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT version v3
    der[i + 4] = 0x07
    body["issuer_certs"] = [bytes(der)] + body["issuer_certs"][1:]
    with pytest.raises(TxRejected) as e:
        verify_attestation("c", body, OWNER.pub, trust.anchors_der(), T0)
    assert e.value.code == "malformed"
