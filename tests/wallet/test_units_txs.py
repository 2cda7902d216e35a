"""Strict units (every error names the accepted forms) and the transaction builders' early
checks, which turn a sure refusal into a clearer error before anything is signed."""

from __future__ import annotations

import pytest

from ads_ledger.state.bodies import check_body
from ads_ledger.wallet import txs
from ads_ledger.wallet.errors import WalletError, hint_for
from ads_ledger.wallet.units import format_power, format_when, parse_duration, parse_power, parse_when

NOW = 1_800_000_000_000


@pytest.mark.parametrize("text,watts", [("7400", 7400), ("7400W", 7400), ("7.4kW", 7400), ("11 kw", 11_000),
                                        ("1.2MW", 1_200_000), ("0.5kW", 500)])  # fmt: skip
def test_power(text: str, watts: int) -> None:
    assert parse_power(text) == watts


@pytest.mark.parametrize("text", ["fast", "-5kW", "7,4kW", "1e3W", "0W", "kW", "7.4 kWh", ""])
def test_power_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(WalletError, match="7.4kW"):
        parse_power(text)


@pytest.mark.parametrize("text,ms", [("90", 90_000), ("90s", 90_000), ("15m", 900_000), ("15min", 900_000),
                                     ("2h", 7_200_000), ("30d", 2_592_000_000), ("1w", 604_800_000)])  # fmt: skip
def test_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["3x", "2 hours", "-1h", "0.1s", "h", "1y"])
def test_duration_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(WalletError, match="30d"):
        parse_duration(text)


def test_dates() -> None:
    assert parse_when("now", NOW) == NOW
    assert parse_when("2027-01-01", NOW) == 1_798_761_600_000
    assert parse_when("2027-01-01T08:00", NOW) == 1_798_761_600_000 + 8 * 3_600_000
    assert parse_when("2027-01-01T08:00+01:00", NOW) == 1_798_761_600_000 + 7 * 3_600_000
    assert format_when(1_798_761_600_000) == "2027-01-01 00:00 UTC"
    for bad in ("tomorrow", "01/01/2027", "2027-13-01", "2027-01-01T25:00"):
        with pytest.raises(WalletError, match="2027-01-01T08:00"):
            parse_when(bad, NOW)
    assert format_power(11_000) == "11 kW" and format_power(7400) == "7.4 kW" and format_power(500) == "500 W"


def spec(**kw: object) -> txs.GrantSpec:
    base: dict[str, object] = {"cp": b"\x01" * 32, "grantee": b"\x02" * 32, "scopes": ("meter.read",),
                               "not_before": NOW - 1000, "not_after": NOW + 3_600_000}  # fmt: skip
    return txs.GrantSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_grant_body_is_one_the_ledger_parses() -> None:
    ttype, body = txs.grant(spec(scopes=("meter.read", "charging.profile"), max_power_w=11_000, priority=20), NOW)
    assert ttype == "grant" and body["scopes"] == ["charging.profile", "meter.read"]
    check_body("grant", body)  # the ledger's own shape check accepts it
    words = txs.describe(ttype, body, b"\x03" * 32, b"\xab" * 32)
    assert "granted charging.profile, meter.read on cp 01010101…" in words and "≤ 11 kW" in words
    assert "ab" * 16 in words  # the grant id


@pytest.mark.parametrize("kw,code", [({"scopes": ("charging.everything",)}, "scope_unknown"),
                                     ({"scopes": ("flex",)}, "exclusive_required"),
                                     ({"not_after": NOW - 1}, "bad_window"),
                                     ({"not_before": NOW + 10, "not_after": NOW + 5}, "bad_window"),
                                     ({"priority": 100}, "bad_argument"),
                                     ({"scopes": ("meter.read", "meter.read")}, "bad_argument")])  # fmt: skip
def test_grant_refused_before_signing(kw: dict[str, object], code: str) -> None:
    with pytest.raises(WalletError) as e:
        txs.grant(spec(**kw), NOW)
    assert e.value.code == code


def test_keys_ids_and_attestations_are_checked() -> None:
    with pytest.raises(WalletError, match="64 hex"):
        txs.parse_pub("abc")
    with pytest.raises(WalletError, match="32 hex"):
        txs.parse_id("00" * 32)
    with pytest.raises(WalletError) as e:
        txs.attest({"attestation": {"account": b"\x09" * 32}, "issuer_certs": [], "issuer_sig": b""}, b"\x08" * 32)
    assert e.value.code == "account_mismatch"
    with pytest.raises(WalletError, match="device-sig"):
        txs.claim(b"\x01" * 32, b"\x00" * 10, None)


def test_every_refusal_code_the_ledger_has_gets_a_next_step() -> None:
    from ads_ledger.state.reasons import CODES

    missing = sorted(c for c in CODES if not hint_for(c) and c != "rejected")
    assert not missing, f"codes without a hint: {missing}"
