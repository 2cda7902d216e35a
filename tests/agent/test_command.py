"""Command verification (DESIGN §7): every receipt code from a real case, the order of checks,
receipts that answer exactly their command, and fuzzed envelopes that never crash and never
yield `ok`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.wallet.commands import ReceiptError, check_receipt, command_hash, sign_command
from chargepoint_agent.receipt import make_receipt
from chargepoint_agent.verify import OWNER_STACK_LEVEL, AccessList, check_command

CHAIN = "ads-test"
NOW = 1_800_000_000_000
CP = SigningKey(b"\x01" * 32)
OWNER = SigningKey(b"\x02" * 32)
PROV = SigningKey(b"\x03" * 32)
OTHER = SigningKey(b"\x04" * 32)
GID = b"\x10" * 16
GRANT = {
    "id": GID, "issuer": OWNER.pub, "grantee": PROV.pub, "scopes": ["charging.profile", "meter.read"],
    "not_before": NOW - 60_000, "not_after": NOW + 3_600_000, "limits": {"max_power_w": 11_000},
    "exclusive": False, "priority": 10, "redelegate": 0, "parent": None, "height": 5,
}  # fmt: skip
ACL = AccessList(owner=OWNER.pub, grants=(GRANT,), height=7, header_time_ms=NOW - 1000, staleness_limit_ms=60_000)
PROFILE = {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 7_200_000, "periods": [[0, 7400]]}}


def cmd(key: SigningKey = PROV, *, action: str = "charging.profile.set", params: dict[str, Any] | None = None,
        grant: bytes | None = GID, seq: int = 1, issued_at: int = NOW, ttl: int = 60_000,
        cp: bytes = CP.pub, chain: str = CHAIN) -> bytes:  # fmt: skip
    return sign_command(key, chain, cp=cp, action=action, params=PROFILE if params is None else params,
                        seq=seq, issued_at=issued_at, expires_at=issued_at + ttl, grant=grant)  # fmt: skip


def verdict(raw: bytes, *, acl: AccessList | None = ACL, now: int = NOW, last: dict[bytes, int] | None = None) -> Any:
    seqs = last or {}
    return check_command(raw, chain_id=CHAIN, cp=CP.pub, acl=acl, now_ms=now, last_seq=seqs.get)


def code(raw: bytes, **kw: Any) -> str:
    v = verdict(raw, **kw)
    assert v.message or v.ok  # a refusal says why
    return v.code  # type: ignore[no-any-return]


def test_ok_and_stack_level_from_the_grant() -> None:
    v = verdict(cmd())
    assert v.ok and v.grant == GRANT and v.stack_level == 10
    assert v.cmd_hash == command_hash(cmd()) == H(codec.encode(v.cmd))  # the slice is the canonical cmd
    owner = verdict(cmd(OWNER, grant=None))
    assert owner.ok and owner.stack_level == OWNER_STACK_LEVEL and owner.grant is None


def test_every_refusal_code() -> None:
    assert code(b"\x93\x01\x02\x03") == "malformed"
    assert code(cmd(action="charging.teleport", params={})) == "malformed"
    forged = codec.decode(cmd())
    forged["sig"] = bytes(64)
    assert code(codec.encode(forged)) == "bad_signature"
    assert code(cmd(chain="other-chain")) == "bad_signature"  # signed for another ADS
    assert code(cmd(cp=OTHER.pub)) == "wrong_cp"
    assert code(cmd(OTHER)) == "no_grant"  # someone else naming the provider's grant
    assert code(cmd(OTHER, grant=None)) == "no_grant"  # someone else posing as the owner
    assert code(cmd(grant=b"\x11" * 16)) == "no_grant"  # revoked or never existed
    assert code(cmd(), now=GRANT["not_before"] - 1, acl=ACL) == "expired"  # issued in the future
    early = AccessList(ACL.owner, ({**GRANT, "not_before": NOW + 10_000},), 7, NOW - 1000, 60_000)
    assert code(cmd(), acl=early) == "not_yet_valid"
    late = AccessList(ACL.owner, ({**GRANT, "not_after": NOW},), 7, NOW - 1000, 60_000)
    assert code(cmd(), acl=late) == "grant_expired"
    assert code(cmd(action="charging.start", params={})) == "scope"
    big = {"profile": {**PROFILE["profile"], "periods": [[0, 7400], [3600, 22_000]]}}
    assert code(cmd(params=big)) == "limits"
    assert code(cmd(action="flex.activate", params={"limit_w": 1, "duration_s": 1})) == "scope"
    assert code(cmd(seq=5), last={PROV.pub: 5}) == "replay"
    assert code(cmd(issued_at=NOW - 120_000)) == "expired"
    assert code(cmd(ttl=300_001)) == "expired"  # a window over 300 s
    stale = AccessList(ACL.owner, ACL.grants, 7, NOW - 60_001, 60_000)
    assert code(cmd(), acl=stale) == "stale_acl"
    assert code(cmd(), acl=None) == "stale_acl"


def test_owner_commands_work_with_a_stale_list() -> None:
    stale = AccessList(ACL.owner, ACL.grants, 7, NOW - 3_600_000, 60_000)
    assert code(cmd(OWNER, grant=None, action="charging.stop", params={}), acl=stale) == "ok"
    assert code(cmd(), acl=stale) == "stale_acl"


def test_owner_is_not_capped_by_any_grant() -> None:
    big = {"profile": {**PROFILE["profile"], "periods": [[0, 22_000]]}}
    assert code(cmd(OWNER, grant=None, params=big)) == "ok"


def test_replay_is_per_issuer_and_strictly_rising() -> None:
    assert code(cmd(seq=6), last={PROV.pub: 5}) == "ok"
    assert code(cmd(seq=1), last={OWNER.pub: 9}) == "ok"  # another issuer's seq does not count
    assert code(cmd(seq=0)) == "ok"  # the first from an issuer: any seq


@pytest.mark.parametrize("params", [
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW, "periods": [[0, 1]]}},  # empty window
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 1, "periods": [[5, 1]]}},  # not from 0
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 1, "periods": [[0, 1], [0, 2]]}},
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 1, "periods": [[0, -1]]}},
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 1, "periods": []}},
    {"profile": {"id": 1, "valid_from": NOW, "valid_to": NOW + 1, "periods": [[0, 1]], "x": 1}},
])  # fmt: skip
def test_bad_profiles_are_malformed(params: dict[str, Any]) -> None:
    assert code(cmd(params=params)) == "malformed"


def test_receipt_answers_exactly_its_command() -> None:
    raw = cmd()
    v = verdict(raw)
    rec = make_receipt(CP, CHAIN, cmd_hash=v.cmd_hash, code=v.code, at_ms=NOW, acl_height=ACL.height,
                       data={"limit_w": 7400})  # fmt: skip
    assert check_receipt(CP.pub, CHAIN, raw, rec)["code"] == "ok"
    wire = codec.decode(codec.encode(rec))
    assert check_receipt(CP.pub, CHAIN, raw, wire)["data"] == {"limit_w": 7400}
    with pytest.raises(ReceiptError, match="another command"):
        check_receipt(CP.pub, CHAIN, cmd(seq=2), wire)
    with pytest.raises(ReceiptError, match="not signed"):
        check_receipt(OTHER.pub, CHAIN, raw, wire)
    tampered = {**wire, "receipt": {**wire["receipt"], "code": "scope", "ok": False}}
    with pytest.raises(ReceiptError):
        check_receipt(CP.pub, CHAIN, raw, tampered)
    with pytest.raises(ReceiptError, match="not signed"):
        check_receipt(CP.pub, "other-chain", raw, rec)  # signed for this chain only


_VALID = [cmd(), cmd(OWNER, grant=None, action="charging.stop", params={}),
          cmd(action="meter.read", params={})]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_envelopes_never_crash_and_never_pass(data: st.DataObject) -> None:
    """Bit flips, cuts, insertions and random bytes: a typed verdict, never an exception, and
    never `ok` (any change breaks the signature or the shape)."""
    raw = bytearray(data.draw(st.sampled_from(_VALID)))
    if data.draw(st.booleans()):
        raw = bytearray(data.draw(st.binary(max_size=600)))
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            i = data.draw(st.integers(0, max(0, len(raw) - 1)))
            if op == "flip" and raw:
                raw[i] ^= 1 << data.draw(st.integers(0, 7))
            elif op == "cut":
                del raw[i:]
            else:
                raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    if bytes(raw) in _VALID:
        return
    v = verdict(bytes(raw))
    assert not v.ok, v
    assert v.code in ("malformed", "bad_signature")


def test_audit_read_needs_a_read_scope() -> None:
    assert code(cmd(action="audit.read", params={"limit": 10})) == "ok"  # meter.read suffices
    no_read = AccessList(ACL.owner, ({**GRANT, "scopes": ["charging.profile"]},), 7, NOW - 1000, 60_000)
    assert code(cmd(action="audit.read", params={}), acl=no_read) == "scope"
    assert code(cmd(action="audit.read", params={"limit": 101})) == "malformed"
    assert code(cmd(OWNER, grant=None, action="audit.read", params={"since": 5})) == "ok"
