"""eID attestation verification: real X.509 path validation and issuer signatures (identity.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.core.crypto import H
from ads_ledger.state.identity import ms_to_datetime, verify_attestation
from ads_ledger.state.reasons import TxRejected
from ads_ledger.testing.trustlist import (
    TestTrustList,
    issue_attestation,
    load_trust_list,
    make_trust_list,
    sign_attestation,
    write_trust_list,
)

CHAIN = "ads-test"
T0 = 1_800_000_000_000
DAY = 86_400_000
ACCOUNT = bytes(range(32))
AT = ms_to_datetime(T0)


def tl_at(**kw: Any) -> TestTrustList:
    return make_trust_list(not_before=AT - dt.timedelta(days=1), not_after=AT + dt.timedelta(days=365), **kw)


@pytest.fixture(scope="module")
def ec() -> TestTrustList:
    return tl_at()


def body_for(tl: TestTrustList, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"issued_at": T0 - 1000, "expires_at": T0 + DAY}
    args.update(kw)
    return issue_attestation(tl, CHAIN, ACCOUNT, **args)


def code_of(tl: TestTrustList, body: dict[str, Any], *, anchors: list[bytes] | None = None,
            at: int = T0, signer: bytes = ACCOUNT) -> str:  # fmt: skip
    try:
        verify_attestation(CHAIN, body, signer, tl.anchors_der() if anchors is None else anchors, at)
    except TxRejected as e:
        assert str(e)
        return e.code
    return "ok"


@pytest.mark.parametrize("kind,intermediate", [("ec", False), ("ec", True), ("rsa", False)])
def test_valid_attestation(kind: str, intermediate: bool) -> None:
    tl = tl_at(key_type=kind, intermediate=intermediate)  # type: ignore[arg-type]
    body = body_for(tl)
    ident = verify_attestation(CHAIN, body, ACCOUNT, tl.anchors_der(), T0)
    att = body["attestation"]
    assert ident == {"anchor": H(tl.anchors_der()[0]), "expires_at": att["expires_at"],
                     "issuer": H(body["issuer_certs"][0]), "level": "substantial",
                     "subject": att["subject"]}  # fmt: skip


def test_expiry_capped_by_every_certificate_of_the_path() -> None:
    """The identity ends with the earliest not_after of leaf, intermediate and anchor."""
    short_leaf = tl_at(intermediate=True, leaf_not_after=AT + dt.timedelta(days=3))
    ident = verify_attestation(CHAIN, body_for(short_leaf, expires_at=2**64 - 1), ACCOUNT,
                               short_leaf.anchors_der(), T0)  # fmt: skip
    assert ident["expires_at"] == T0 + 3 * DAY
    # the root's own end (365 days) caps a long-lived attestation too
    ident = verify_attestation(CHAIN, body_for(short_leaf := tl_at(), expires_at=T0 + 900 * DAY), ACCOUNT,
                               short_leaf.anchors_der(), T0)  # fmt: skip
    assert ident["expires_at"] == T0 + 365 * DAY


def test_revoked_issuer_refused(ec: TestTrustList) -> None:
    body = body_for(ec)
    assert code_of(ec, body) == "ok"
    try:
        verify_attestation(CHAIN, body, ACCOUNT, ec.anchors_der(), T0, revoked=[H(body["issuer_certs"][0])])
    except TxRejected as e:
        assert e.code == "issuer_revoked"
    else:
        raise AssertionError("a revoked broker's attestation was accepted")


def test_untrusted_chain(ec: TestTrustList) -> None:
    other = tl_at()
    assert code_of(ec, body_for(ec), anchors=other.anchors_der()) == "untrusted_chain"
    assert code_of(ec, body_for(ec), anchors=[]) == "untrusted_chain"
    # an issuing CA left out of the chain: no path to the root
    inter = tl_at(intermediate=True)
    body = body_for(inter)
    body["issuer_certs"] = body["issuer_certs"][:1]
    assert code_of(inter, body) == "untrusted_chain"


def test_leaf_cannot_pose_as_anchor(ec: TestTrustList) -> None:
    # a self-asserted chain: the broker's own certificate is no trust anchor
    with pytest.raises(TxRejected) as e:
        verify_attestation(CHAIN, body_for(ec), ACCOUNT, ec.chain_der(), T0)
    assert e.value.code == "malformed"


def test_expired_and_not_yet_valid_certificates(ec: TestTrustList) -> None:
    assert code_of(ec, body_for(ec, expires_at=T0 + 400 * DAY), at=T0 + 366 * DAY) == "cert_expired"
    assert code_of(ec, body_for(ec, issued_at=T0 - 3 * DAY), at=T0 - 2 * DAY) == "cert_expired"
    short = tl_at(leaf_not_after=AT + dt.timedelta(days=2))
    assert code_of(short, body_for(short, expires_at=T0 + 10 * DAY), at=T0 + 3 * DAY) == "cert_expired"


def test_key_usage_must_include_digital_signature() -> None:
    tl = tl_at(leaf_digital_signature=False)
    assert code_of(tl, body_for(tl)) == "key_usage"


def test_bad_issuer_signature(ec: TestTrustList) -> None:
    body = body_for(ec)
    body["attestation"] = {**body["attestation"], "level": "high"}  # signed as substantial
    assert code_of(ec, body) == "bad_issuer_sig"
    other = tl_at()
    body = body_for(ec)
    body["issuer_sig"] = sign_attestation(other.broker_key, CHAIN, body["attestation"])
    assert code_of(ec, body) == "bad_issuer_sig"
    body = body_for(ec)  # signed for another chain
    body["issuer_sig"] = sign_attestation(ec.broker_key, "other-chain", body["attestation"])
    assert code_of(ec, body) == "bad_issuer_sig"
    body["issuer_sig"] = b"\x30\x00"
    assert code_of(ec, body) == "bad_issuer_sig"


def test_rsa_pss_signature_checked() -> None:
    tl = tl_at(key_type="rsa")
    body = body_for(tl)
    sig = bytearray(body["issuer_sig"])
    sig[-1] ^= 1
    body["issuer_sig"] = bytes(sig)
    assert code_of(tl, body) == "bad_issuer_sig"


def test_attestation_window(ec: TestTrustList) -> None:
    assert code_of(ec, body_for(ec, expires_at=T0)) == "attestation_expired"
    assert code_of(ec, body_for(ec, issued_at=T0 + 1)) == "attestation_expired"
    assert code_of(ec, body_for(ec), at=T0 + DAY - 1) == "ok"


def test_account_must_be_signer(ec: TestTrustList) -> None:
    assert code_of(ec, body_for(ec), signer=bytes(32)) == "account_mismatch"


def test_garbage_certificates(ec: TestTrustList) -> None:
    body = body_for(ec)
    body["issuer_certs"] = [b"\x30\x03\x02\x01\x00"]
    assert code_of(ec, body) == "malformed"


def test_trust_list_files_round_trip(tmp_path: Any, ec: TestTrustList) -> None:
    paths = write_trust_list(ec, tmp_path)
    assert "NOT FOR PRODUCTION" in ec.root.subject.rfc4514_string()
    assert "NOT FOR PRODUCTION" in ec.broker.subject.rfc4514_string()
    assert all(p.exists() for p in paths.values())
    loaded = load_trust_list(tmp_path)
    assert loaded.anchors_der() == ec.anchors_der() and loaded.chain_der() == ec.chain_der()
    body = issue_attestation(loaded, CHAIN, ACCOUNT, issued_at=T0, expires_at=T0 + DAY)
    assert verify_attestation(CHAIN, body, ACCOUNT, ec.anchors_der(), T0)["level"] == "substantial"


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_mutated_certificates_never_crash(data: st.DataObject) -> None:
    """Hostile DER in issuer_certs yields a typed refusal, never another exception."""
    tl = _FUZZ_TL
    body = dict(_FUZZ_BODY)
    certs = list(body["issuer_certs"])
    i = data.draw(st.integers(0, len(certs) - 1))
    der = bytearray(certs[i])
    for _ in range(data.draw(st.integers(1, 3))):
        j = data.draw(st.integers(0, len(der) - 1))
        der[j] = data.draw(st.integers(0, 255))
    certs[i] = bytes(der)
    body["issuer_certs"] = certs
    code = code_of(tl, body)
    assert code in {"ok", "malformed", "untrusted_chain", "cert_expired", "key_usage", "bad_issuer_sig",
                    "chain_too_large"}


_FUZZ_TL = tl_at(intermediate=True)
_FUZZ_BODY = body_for(_FUZZ_TL)
