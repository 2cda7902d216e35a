"""Each transaction type of DESIGN §4: its effect, and each reason it is refused."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.state.certs import datetime_to_ms
from ads_ledger.state.identity import ms_to_datetime
from ads_ledger.state.ownership import owner_sig_body
from ads_ledger.state.reasons import CODES
from ads_ledger.testing import LedgerHarness, device_attestation, key, make_test_genesis, test_device_ca
from ads_ledger.testing.trustlist import (
    TestTrustList,
    issue_attestation,
    issue_device_attestation,
    make_device_ca,
    make_trust_list,
)

T0 = 1_800_000_000_000
DAY = 86_400_000


@pytest.fixture(scope="module")
def trust() -> TestTrustList:
    at = ms_to_datetime(T0)
    return make_trust_list(not_before=at - dt.timedelta(days=1), not_after=at + dt.timedelta(days=365))


@dataclass
class World:
    h: LedgerHarness
    tl: TestTrustList
    owner: SigningKey
    dev: SigningKey
    prov: SigningKey
    sub: SigningKey
    other: SigningKey

    def attest(self, k: SigningKey, ttl: int = 100 * DAY) -> Any:
        body = issue_attestation(self.tl, self.h.chain_id, k.pub, issued_at=self.h.time, expires_at=self.h.time + ttl)
        return self.h.run(k, "attest", body)

    def propose(self, dev: SigningKey, owner: SigningKey, *, attested: bool = True) -> Any:
        return self.h.block(self.h.propose(dev, owner.pub, attested=attested)).results[0]

    def claim(self, owner: SigningKey, dev: SigningKey, epoch: int = 0, *, attested: bool = True) -> Any:
        sig = dev.sign_tagged("ads/own/1", self.h.chain_id, owner_sig_body(dev.pub, owner.pub, epoch))
        body: dict[str, Any] = {"cp": dev.pub, "device_sig": sig}
        if attested:
            body["device"] = device_attestation(dev.pub)
        return self.h.run(owner, "cp.claim", body)

    def gov(self, action: str, args: dict[str, Any]) -> Any:
        m = members()
        return self.h.run(m[0], "gov", {"action": action, "args": args}, [m[1]])

    def register(self, *provs: SigningKey, roles: tuple[str, ...] = ("aggregator",), cap_w: int | None = None) -> None:
        """Register providers (flex needs the aggregator, dso or tso role)."""
        for p in provs:
            args = {"pub": p.pub, "name": "p", "roles": list(roles), "cap_w": cap_w}
            assert self.gov("providers.set", args).ok

    def grant(self, signer: SigningKey, grantee: SigningKey, **kw: Any) -> Any:
        body = {
            "cp": self.dev.pub, "grantee": grantee.pub, "scopes": ["charging.control", "meter.read"],
            "not_before": T0, "not_after": T0 + 30 * DAY, "limits": {"max_power_w": 11_000},
            "exclusive": False, "priority": 10, "redelegate": 0, "parent": None,
        }  # fmt: skip
        body.update(kw)
        return self.h.run(signer, "grant", body)


@pytest.fixture
def w(trust: TestTrustList) -> World:
    h = LedgerHarness(make_test_genesis(trust.anchors_der(), genesis_time=T0))
    world = World(h, trust, key("owner"), key("dev"), key("prov"), key("sub"), key("other"))
    assert world.attest(world.owner).ok
    assert world.propose(world.dev, world.owner).ok
    assert h.run(world.owner, "cp.accept", {"cp": world.dev.pub}).ok
    return world


def refused(res: Any, code: str) -> None:
    assert code in CODES
    assert not res.ok and res.code == code, (res.code, res.log)
    assert res.log  # a message a user can act on


# ---------------------------------------------------------------- ownership


def test_propose_accept_sets_owner_and_epoch(w: World) -> None:
    rec = w.h.cp(w.dev.pub)
    assert rec["owner"] == w.owner.pub and rec["pending"] is None and rec["epoch"] == 1
    assert rec["grants"] == [] and rec["updated"] == w.h.height


def test_propose_on_owned_cp_is_refused(w: World) -> None:
    res = w.h.run(w.dev, "cp.propose", {"owner": w.other.pub})
    refused(res, "cp_owned")
    assert w.owner.pub[:4].hex() in res.log and "cp.transfer" in res.log
    assert w.h.cp(w.dev.pub)["pending"] is None


def test_accept_by_unnamed_account_is_refused(w: World) -> None:
    dev2 = key("dev2")
    assert w.propose(dev2, w.owner).ok
    refused(w.h.run(w.other, "cp.accept", {"cp": dev2.pub}), "not_pending")


def test_accept_needs_identity(w: World) -> None:
    dev2 = key("dev2")
    assert w.propose(dev2, w.other).ok
    refused(w.h.run(w.other, "cp.accept", {"cp": dev2.pub}), "no_identity")
    assert w.h.cp(dev2.pub)["owner"] is None


def test_identity_expires(w: World) -> None:
    assert w.attest(w.other, ttl=1500).ok  # expires before the next block
    dev2 = key("dev2")
    assert w.propose(dev2, w.other).ok
    refused(w.h.run(w.other, "cp.accept", {"cp": dev2.pub}), "identity_expired")


def test_accept_unknown_cp(w: World) -> None:
    refused(w.h.run(w.owner, "cp.accept", {"cp": key("nowhere").pub}), "cp_unknown")


def test_claim_with_device_signature(w: World) -> None:
    dev2 = key("dev2")
    sig = dev2.sign_tagged("ads/own/1", w.h.chain_id, owner_sig_body(dev2.pub, w.owner.pub, 0))
    refused(w.h.run(w.owner, "cp.claim", {"cp": dev2.pub, "device_sig": sig}), "device_required")
    assert w.claim(w.owner, dev2).ok
    rec = w.h.cp(dev2.pub)
    assert rec["owner"] == w.owner.pub and rec["epoch"] == 1
    # the same device signature cannot be replayed once the epoch moved on
    assert w.h.run(w.owner, "cp.transfer", {"cp": dev2.pub, "to": w.owner.pub}).ok
    refused(w.h.run(w.owner, "cp.claim", {"cp": dev2.pub, "device_sig": sig}), "cp_owned")


def test_claim_refusals(w: World) -> None:
    dev2 = key("dev2")
    wrong_epoch = dev2.sign_tagged("ads/own/1", w.h.chain_id, owner_sig_body(dev2.pub, w.owner.pub, 1))
    att = device_attestation(dev2.pub)
    refused(w.h.run(w.owner, "cp.claim", {"cp": dev2.pub, "device_sig": wrong_epoch, "device": att}),
            "bad_device_sig")  # fmt: skip
    for_other = dev2.sign_tagged("ads/own/1", w.h.chain_id, owner_sig_body(dev2.pub, w.other.pub, 0))
    refused(w.h.run(w.owner, "cp.claim", {"cp": dev2.pub, "device_sig": for_other, "device": att}),
            "bad_device_sig")  # fmt: skip
    refused(w.claim(w.other, dev2), "no_identity")
    assert w.h.cp(dev2.pub) is None
    sig = w.dev.sign_tagged("ads/own/1", w.h.chain_id, owner_sig_body(w.dev.pub, w.other.pub, 1))
    refused(w.h.run(w.other, "cp.claim", {"cp": w.dev.pub, "device_sig": sig}), "cp_owned")


def test_transfer_completes_and_drops_grants(w: World) -> None:
    assert w.grant(w.owner, w.prov).ok
    assert len(w.h.cp(w.dev.pub)["grants"]) == 1
    refused(w.h.run(w.other, "cp.transfer", {"cp": w.dev.pub, "to": w.other.pub}), "not_owner")
    assert w.h.run(w.owner, "cp.transfer", {"cp": w.dev.pub, "to": w.other.pub}).ok
    rec = w.h.cp(w.dev.pub)
    assert rec["pending"] == w.other.pub and rec["owner"] == w.owner.pub and len(rec["grants"]) == 1
    assert w.attest(w.other).ok
    assert w.h.run(w.other, "cp.accept", {"cp": w.dev.pub}).ok
    rec = w.h.cp(w.dev.pub)
    assert rec["owner"] == w.other.pub and rec["grants"] == [] and rec["epoch"] == 2


def test_transfer_to_self_cancels(w: World) -> None:
    assert w.h.run(w.owner, "cp.transfer", {"cp": w.dev.pub, "to": w.other.pub}).ok
    assert w.h.run(w.owner, "cp.transfer", {"cp": w.dev.pub, "to": w.owner.pub}).ok
    assert w.h.cp(w.dev.pub)["pending"] is None
    refused(w.h.run(w.other, "cp.accept", {"cp": w.dev.pub}), "not_pending")


def test_transfer_unowned(w: World) -> None:
    dev2 = key("dev2")
    assert w.propose(dev2, w.owner).ok
    refused(w.h.run(w.owner, "cp.transfer", {"cp": dev2.pub, "to": w.other.pub}), "no_owner")


# ---------------------------------------------------------------- grants


def test_grant_record(w: World) -> None:
    res = w.grant(w.owner, w.prov, scopes=["meter.read", "charging.control"])
    assert res.ok
    (g,) = w.h.cp(w.dev.pub)["grants"]
    assert g["id"] == res.txid[:16] and g["issuer"] == w.owner.pub and g["grantee"] == w.prov.pub
    assert g["scopes"] == ["charging.control", "meter.read"]  # stored sorted
    assert g["height"] == w.h.height and g["parent"] is None and g["limits"] == {"max_power_w": 11_000}


def test_grants_sorted_by_id(w: World) -> None:
    ids = [w.grant(w.owner, key(f"p{i}")).txid[:16] for i in range(6)]
    assert [g["id"] for g in w.h.cp(w.dev.pub)["grants"]] == sorted(ids)


def test_grant_refusals(w: World) -> None:
    refused(w.grant(w.other, w.prov), "not_owner")
    refused(w.grant(w.owner, w.prov, not_before=T0 + 5, not_after=T0 + 5), "bad_window")
    refused(w.grant(w.owner, w.prov, not_after=w.h.time), "bad_window")
    refused(w.grant(w.owner, w.prov, scopes=["teleport"]), "scope_unknown")
    refused(w.grant(w.owner, w.prov, scopes=["flex"]), "exclusive_required")
    refused(w.grant(w.owner, w.prov, cp=key("nowhere").pub), "cp_unknown")
    refused(w.grant(w.owner, w.prov, parent=bytes(16)), "grant_unknown")
    refused(w.grant(w.owner, w.prov, limits={"max_current_a": 3}), "malformed")
    refused(w.grant(w.owner, w.prov, priority=100), "malformed")
    assert w.h.cp(w.dev.pub)["grants"] == []


def test_owner_grant_needs_live_identity(w: World) -> None:
    dev2 = key("dev2")
    assert w.attest(w.other, ttl=1500).ok
    assert w.propose(dev2, w.other).ok
    w.h.time -= 2000  # accept just before the identity expires
    assert w.h.run(w.other, "cp.accept", {"cp": dev2.pub}).ok
    refused(w.grant(w.other, w.prov, cp=dev2.pub), "identity_expired")


def test_exclusive_scope_held_once_per_window(w: World) -> None:
    w.register(w.prov, w.other, w.sub)
    a = w.grant(w.owner, w.prov, scopes=["flex"], exclusive=True, not_after=T0 + 10 * DAY)
    assert a.ok
    refused(w.grant(w.owner, w.other, scopes=["flex", "meter.read"], exclusive=True), "exclusive_held")
    # a later, non-overlapping window is fine
    assert w.grant(w.owner, w.other, scopes=["flex"], exclusive=True, not_before=T0 + 10 * DAY).ok
    # non-exclusive grants of other scopes do not conflict
    assert w.grant(w.owner, w.other, scopes=["meter.read"]).ok
    # after revocation the scope is free again
    assert w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": a.txid[:16]}).ok
    assert w.grant(w.owner, w.sub, scopes=["flex"], exclusive=True, not_after=T0 + 5 * DAY).ok


def test_exclusive_non_flex_scope(w: World) -> None:
    assert w.grant(w.owner, w.prov, scopes=["charging.profile"], exclusive=True).ok
    refused(w.grant(w.owner, w.other, scopes=["charging.profile"], exclusive=True), "exclusive_held")
    assert w.grant(w.owner, w.other, scopes=["charging.profile"]).ok  # a shared holder may coexist


def test_sub_grant_attenuation(w: World) -> None:
    p = w.grant(w.owner, w.prov, redelegate=2, not_after=T0 + 20 * DAY)
    assert p.ok
    pid = p.txid[:16]
    ok = w.grant(w.prov, w.sub, parent=pid, scopes=["meter.read"], redelegate=1,
                 limits={"max_power_w": 7_000}, not_after=T0 + 10 * DAY)  # fmt: skip
    assert ok.ok
    g = next(g for g in w.h.cp(w.dev.pub)["grants"] if g["id"] == ok.txid[:16])
    assert g["issuer"] == w.prov.pub and g["parent"] == pid
    for kw in (
        {"scopes": ["availability"]},
        {"not_after": T0 + 20 * DAY + 1},  # one millisecond past the parent's end
        {"not_before": T0 - 1},
        {"limits": {}},
        {"limits": {"max_power_w": 11_001}},
        {"redelegate": 2},
    ):
        base: dict[str, Any] = {"parent": pid, "redelegate": 1, "not_after": T0 + 10 * DAY}
        refused(w.grant(w.prov, w.sub, **{**base, **kw}), "not_attenuated")
    refused(w.grant(w.other, w.sub, parent=pid), "not_grantee")
    assert w.grant(w.prov, w.sub, parent=pid, redelegate=1, not_after=T0 + 20 * DAY).ok  # ends with it
    # a grant that does not allow re-delegation
    q = w.grant(w.owner, w.other, redelegate=0)
    refused(w.grant(w.other, w.sub, parent=q.txid[:16]), "not_grantee")


def test_too_many_grants(w: World) -> None:
    m = [key(f"member{j}") for j in range(3)]
    assert w.h.run(m[0], "gov", {"action": "params.set", "args": {"max_grants_per_cp": 2}}, [m[1]]).ok
    assert w.grant(w.owner, w.prov).ok and w.grant(w.owner, w.other).ok
    refused(w.grant(w.owner, w.sub), "too_many_grants")


def test_expired_grants_pruned_on_touch(w: World) -> None:
    short = w.grant(w.owner, w.prov, not_after=w.h.time + 1500)
    assert short.ok
    assert len(w.h.cp(w.dev.pub)["grants"]) == 1
    w.h.block()  # time passes; the record is not touched, so it still lists the grant
    assert len(w.h.cp(w.dev.pub)["grants"]) == 1
    assert w.grant(w.owner, w.other).ok
    assert [g["grantee"] for g in w.h.cp(w.dev.pub)["grants"]] == [w.other.pub]


# ---------------------------------------------------------------- revoke


def test_revoke_cascades(w: World) -> None:
    a = w.grant(w.owner, w.prov, redelegate=3).txid[:16]
    b = w.grant(w.prov, w.sub, parent=a, redelegate=2).txid[:16]
    c = w.grant(w.sub, w.other, parent=b, redelegate=1).txid[:16]
    d = w.grant(w.owner, w.other).txid[:16]
    assert {g["id"] for g in w.h.cp(w.dev.pub)["grants"]} == {a, b, c, d}
    assert w.h.run(w.prov, "revoke", {"cp": w.dev.pub, "grant": b}).ok  # b's issuer
    assert {g["id"] for g in w.h.cp(w.dev.pub)["grants"]} == {a, d}
    assert w.h.run(w.prov, "revoke", {"cp": w.dev.pub, "grant": a}).ok  # a's grantee
    assert w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": d}).ok  # the owner
    assert w.h.cp(w.dev.pub)["grants"] == []


def test_revoke_refusals(w: World) -> None:
    a = w.grant(w.owner, w.prov).txid[:16]
    refused(w.h.run(w.other, "revoke", {"cp": w.dev.pub, "grant": a}), "not_allowed")
    refused(w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": bytes(16)}), "grant_unknown")
    assert w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": a}).ok
    refused(w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": a}), "grant_unknown")
    refused(w.h.run(w.owner, "revoke", {"cp": key("x").pub, "grant": a}), "cp_unknown")


# ---------------------------------------------------------------- governance


def members() -> list[SigningKey]:
    return [key(f"member{j}") for j in range(3)]


def test_gov_quorum_and_membership(w: World) -> None:
    m = members()
    args = {"action": "params.set", "args": {"heartbeat_ms": 2000}}
    refused(w.h.run(m[0], "gov", args), "quorum")
    refused(w.h.run(w.other, "gov", args, [m[0]]), "not_member")
    refused(w.h.run(m[0], "gov", args, [w.other]), "not_member")
    assert w.h.get(b"gov/params")["heartbeat_ms"] == 1000
    assert w.h.run(m[0], "gov", args, [m[2]]).ok
    assert w.h.get(b"gov/params")["heartbeat_ms"] == 2000


def test_gov_params_checked(w: World) -> None:
    m = members()
    refused(w.h.run(m[0], "gov", {"action": "params.set", "args": {"nope": 1}}, [m[1]]), "bad_gov_args")
    refused(w.h.run(m[0], "gov", {"action": "params.set", "args": {"heartbeat_ms": 60_001}}, [m[1]]), "bad_gov_args")
    refused(w.h.run(m[0], "gov", {"action": "party", "args": {}}, [m[1]]), "malformed")


def test_gov_members_set(w: World) -> None:
    m = members()
    new = [key("newmember").pub, m[0].pub]
    assert w.h.run(m[0], "gov", {"action": "members.set", "args": {"members": new, "threshold": 1}}, [m[1]]).ok
    assert w.h.get(b"gov/members") == {"members": sorted(new), "threshold": 1}
    refused(w.h.run(m[1], "gov", {"action": "params.set", "args": {"heartbeat_ms": 900}}), "not_member")
    refused(
        w.h.run(m[0], "gov", {"action": "members.set", "args": {"members": new, "threshold": 3}}),
        "bad_gov_args",
    )


def test_gov_validators_set_effective_h_plus_2(w: World) -> None:
    m = members()
    v0, vnew = key("validator0").pub, key("validatorX").pub
    tx = w.h.tx(m[0], "gov", {"action": "validators.set", "args": {"updates": [[v0, 0], [vnew, 25]]}}, [m[1]])
    res = w.h.block(tx)
    assert res.results[0].ok
    assert res.next_validators is not None and res.next_validators[0] == w.h.height + 2
    vals = w.h.get(b"gov/validators")
    assert vals[0] == [vnew, 25] and len(vals) == 4 and all(p != v0 for p, _ in vals)
    assert res.next_validators[1] == vals
    assert w.h.block().next_validators is None
    bad = {"action": "validators.set", "args": {"updates": [[key("ghost").pub, 0]]}}
    refused(w.h.run(m[0], "gov", bad, [m[1]]), "bad_gov_args")


def test_gov_anchors(w: World) -> None:
    m = members()
    other = make_trust_list()
    der = other.anchors_der()[0]
    leaf = other.chain_der()[0]
    assert m
    refused(w.gov("anchors.add", {"cert": leaf, "purpose": "eid"}), "bad_gov_args")
    refused(w.gov("anchors.add", {"cert": b"junk", "purpose": "eid"}), "bad_gov_args")
    refused(w.gov("anchors.add", {"cert": der}), "bad_gov_args")  # an anchor says what it is for
    refused(w.gov("anchors.add", {"cert": der, "purpose": "tls"}), "bad_gov_args")
    assert w.gov("anchors.add", {"cert": der, "purpose": "eid"}).ok
    anchors = w.h.get(b"gov/anchors")
    assert der in anchors["eid"] and len(anchors["eid"]) == 2 and der not in anchors["device"]
    refused(w.gov("anchors.add", {"cert": der, "purpose": "eid"}), "bad_gov_args")
    # remove the test root: its broker can no longer attest
    old = w.tl.anchors_der()[0]
    refused(w.gov("anchors.remove", {"cert": old, "purpose": "device"}), "bad_gov_args")
    assert w.gov("anchors.remove", {"cert": old, "purpose": "eid"}).ok
    refused(w.attest(w.other), "untrusted_chain")
    refused(w.gov("anchors.remove", {"cert": old, "purpose": "eid"}), "bad_gov_args")


def test_unknown_type(w: World) -> None:
    refused(w.h.run(w.owner, "mint", {}), "unknown_type")


def test_exclusive_sub_grant_shares_its_parents_hold(w: World) -> None:
    """§4: a sub-grant shares its parent's exclusive hold; it is not a second holder, so flex
    can be re-delegated along one hold — and never made exclusive under a shared parent."""
    w.register(w.prov, w.other, w.sub)
    p = w.grant(w.owner, w.prov, scopes=["flex", "meter.read"], exclusive=True, redelegate=2)
    assert p.ok
    pid = p.txid[:16]
    refused(w.grant(w.prov, w.sub, parent=pid, scopes=["flex"], exclusive=False), "exclusive_required")
    c = w.grant(w.prov, w.sub, parent=pid, scopes=["flex"], exclusive=True, redelegate=1)
    assert c.ok
    # deeper along the same hold, and a sibling in it, are fine too
    assert w.grant(w.sub, w.other, parent=c.txid[:16], scopes=["flex"], exclusive=True).ok
    assert w.grant(w.prov, w.other, parent=pid, scopes=["flex"], exclusive=True).ok
    # another root holder of flex is still refused while the hold lives
    refused(w.grant(w.owner, w.other, scopes=["flex"], exclusive=True), "exclusive_held")
    assert w.grant(w.prov, w.sub, parent=pid, scopes=["meter.read"], limits={"max_power_w": 11_000}).ok


def test_sub_grant_cannot_outrank_or_monopolise(w: World) -> None:
    """§4 attenuation of priority and exclusivity (issue: parent 10 → child 99; a delegate
    marking exclusive what the owner left shared, blocking the owner's own exclusive grant)."""
    p = w.grant(w.owner, w.prov, scopes=["charging.profile"], priority=10, redelegate=2)
    assert p.ok
    pid = p.txid[:16]
    res = w.grant(w.prov, w.sub, parent=pid, scopes=["charging.profile"], priority=99, redelegate=1)
    refused(res, "not_attenuated")
    assert "priority" in res.log
    res = w.grant(w.prov, w.sub, parent=pid, scopes=["charging.profile"], exclusive=True, redelegate=1)
    refused(res, "not_attenuated")
    assert "exclusive" in res.log
    assert w.grant(w.prov, w.sub, parent=pid, scopes=["charging.profile"], priority=10, redelegate=1).ok
    # the owner's own exclusive grant is still possible: no delegate holds the scope
    assert w.grant(w.owner, w.other, scopes=["charging.profile"], exclusive=True).ok


# ---------------------------------------------------------------- device attestation


def test_new_record_needs_device_attestation(w: World) -> None:
    dev2 = key("dev2")
    res = w.propose(dev2, w.owner, attested=False)
    refused(res, "device_required")
    assert "manufacturer" in res.log
    assert w.h.cp(dev2.pub) is None and w.h.acct(dev2.pub) is None  # a fresh key leaves no state
    assert w.propose(dev2, w.owner).ok
    rec = w.h.cp(dev2.pub)
    assert rec["device"] == {"issuer": test_device_ca().issuer(), "model": "ADS-SIM-22"}
    # the record exists now: re-proposing needs no attestation
    assert w.propose(dev2, w.other, attested=False).ok
    assert w.h.cp(dev2.pub)["pending"] == w.other.pub


def test_device_attestation_refusals(w: World) -> None:
    dev2, dev3 = key("dev2"), key("dev3")
    ca = test_device_ca()

    def propose(att: dict[str, Any], dev: SigningKey = dev2) -> Any:
        return w.h.run(dev, "cp.propose", {"owner": w.owner.pub, "device": att})

    good = device_attestation(dev2.pub)
    refused(propose(good, dev3), "device_mismatch")
    forged = {**good, "issuer_sig": device_attestation(dev3.pub)["issuer_sig"]}
    refused(propose(forged), "bad_issuer_sig")
    renamed = {**good, "statement": {**good["statement"], "model": "ADS-SIM-99"}}
    refused(propose(renamed), "bad_issuer_sig")
    future = issue_device_attestation(ca, dev2.pub, issued_at=w.h.time + DAY)
    refused(propose(future), "attestation_expired")
    # a manufacturer not anchored, an eID broker posing as one (eid anchors do not count)
    stranger = issue_device_attestation(make_device_ca(), dev2.pub, issued_at=T0)
    refused(propose(stranger), "untrusted_chain")
    broker = {**good, "issuer_certs": w.tl.chain_der()}
    refused(propose(broker), "untrusted_chain")
    at = ms_to_datetime(T0)
    expired_ca = make_device_ca(not_before=at - dt.timedelta(days=30), not_after=at + dt.timedelta(days=30),
                                leaf_not_after=at - dt.timedelta(days=1))  # fmt: skip
    assert w.gov("anchors.add", {"cert": expired_ca.anchors_der()[0], "purpose": "device"}).ok
    refused(propose(issue_device_attestation(expired_ca, dev2.pub, issued_at=T0 - 2 * DAY)), "cert_expired")
    refused(propose({**good, "issuer_certs": good["issuer_certs"] * 5}), "chain_too_large")
    refused(propose({**good, "issuer_certs": [b"\x30" * 17_000]}), "chain_too_large")
    refused(propose({**good, "statement": {**good["statement"], "model": "x" * 65}}), "malformed")
    assert w.h.cp(dev2.pub) is None and w.h.acct(dev2.pub) is None


def test_revoked_manufacturer_cannot_add_devices(w: World) -> None:
    ca = test_device_ca()
    assert w.propose(key("dev2"), w.owner).ok
    refused(w.gov("issuers.revoke", {"issuer": b"short"}), "bad_gov_args")
    assert w.gov("issuers.revoke", {"issuer": ca.issuer()}).ok
    assert w.h.get(b"gov/revoked") == [ca.issuer()]
    refused(w.gov("issuers.revoke", {"issuer": ca.issuer()}), "bad_gov_args")
    refused(w.propose(key("dev3"), w.owner), "issuer_revoked")
    refused(w.claim(w.owner, key("dev3")), "issuer_revoked")
    # existing records stay: a device already on the ledger keeps working
    assert w.propose(key("dev2"), w.other, attested=False).ok
    # removing the manufacturer's anchor also stops it
    other = make_device_ca()
    assert w.gov("anchors.add", {"cert": other.anchors_der()[0], "purpose": "device"}).ok
    assert w.h.run(key("dev4"), "cp.propose", {"owner": w.owner.pub, "device": issue_device_attestation(
        other, key("dev4").pub, issued_at=T0)}).ok  # fmt: skip
    assert w.gov("anchors.remove", {"cert": other.anchors_der()[0], "purpose": "device"}).ok
    refused(w.h.run(key("dev5"), "cp.propose", {"owner": w.owner.pub, "device": issue_device_attestation(
        other, key("dev5").pub, issued_at=T0)}), "untrusted_chain")  # fmt: skip


# ---------------------------------------------------------------- identity validity


def test_identity_expiry_capped_by_the_chain(w: World) -> None:
    """An attestation claiming to last forever lasts as long as the broker's certificate."""
    body = issue_attestation(w.tl, w.h.chain_id, w.other.pub, issued_at=w.h.time, expires_at=2**64 - 1)
    assert w.h.run(w.other, "attest", body).ok
    ident = w.h.acct(w.other.pub)["identity"]
    cap = min(c.not_valid_after_utc for c in (w.tl.broker, w.tl.root))
    assert ident["expires_at"] == datetime_to_ms(cap)
    assert ident["anchor"] == H(w.tl.anchors_der()[0]) and ident["issuer"] == H(w.tl.chain_der()[0])


def test_identity_stops_counting_when_its_anchor_goes(w: World) -> None:
    g = w.grant(w.owner, w.prov)
    assert g.ok
    assert w.gov("anchors.remove", {"cert": w.tl.anchors_der()[0], "purpose": "eid"}).ok
    res = w.grant(w.owner, w.other)
    refused(res, "identity_revoked")
    assert "anchor" in res.log
    # existing grants stay until the owner or governance acts; the owner can still revoke
    assert [x["id"] for x in w.h.cp(w.dev.pub)["grants"]] == [g.txid[:16]]
    assert w.h.run(w.owner, "revoke", {"cp": w.dev.pub, "grant": g.txid[:16]}).ok
    # re-adding the anchor restores the identity
    assert w.gov("anchors.add", {"cert": w.tl.anchors_der()[0], "purpose": "eid"}).ok
    assert w.grant(w.owner, w.other).ok


def test_identity_stops_counting_when_its_issuer_is_revoked(w: World) -> None:
    assert w.gov("issuers.revoke", {"issuer": H(w.tl.chain_der()[0])}).ok
    res = w.grant(w.owner, w.prov)
    refused(res, "identity_revoked")
    refused(w.claim(w.owner, key("dev2")), "identity_revoked")
    refused(w.attest(w.other), "issuer_revoked")  # and it attests nobody new


def test_attest_chain_bounds_before_signatures(w: World) -> None:
    body = issue_attestation(w.tl, w.h.chain_id, w.other.pub, issued_at=w.h.time, expires_at=w.h.time + DAY)
    refused(w.h.run(w.other, "attest", {**body, "issuer_certs": body["issuer_certs"] * 5}), "chain_too_large")
    big = {**body, "issuer_certs": [body["issuer_certs"][0], b"\x30" * 16_000]}
    refused(w.h.run(w.other, "attest", big), "chain_too_large")
