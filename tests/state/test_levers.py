"""Regulator levers (DESIGN §4): the provider register, scope roles, capacity caps, live_w,
expiry and suspension sweeps (state/levers.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.identity import ms_to_datetime
from ads_ledger.state.records import control_watts, lev_grantee_key, prov_key
from ads_ledger.testing import LedgerHarness, key, make_test_genesis
from ads_ledger.testing.trustlist import TestTrustList, issue_attestation, make_trust_list

T0 = 1_800_000_000_000
DAY = 86_400_000
MEMBERS = [key(f"member{j}") for j in range(3)]
OWNER, OWNER2 = key("lev-owner"), key("lev-owner2")
AGG, CPO, NOBODY = key("lev-agg"), key("lev-cpo"), key("lev-nobody")


@pytest.fixture(scope="module")
def trust() -> TestTrustList:
    at = ms_to_datetime(T0)
    return make_trust_list(not_before=at - dt.timedelta(days=1), not_after=at + dt.timedelta(days=365))


def devices(n: int) -> list[SigningKey]:
    return [key(f"lev-dev{i}") for i in range(n)]


class Chain:
    """A harness with attested owners and owned charge points, and lever helpers."""

    def __init__(self, trust: TestTrustList, n_cps: int = 1) -> None:
        self.h = h = LedgerHarness(make_test_genesis(trust.anchors_der(), genesis_time=T0))
        atts = [issue_attestation(trust, h.chain_id, k.pub, issued_at=T0, expires_at=T0 + 100 * DAY) for k in (OWNER, OWNER2)]
        self.cps = devices(n_cps)
        txs = [h.tx(OWNER, "attest", atts[0]), h.tx(OWNER2, "attest", atts[1])]
        txs += [h.propose(d, OWNER.pub) for d in self.cps]
        txs += [h.tx(OWNER, "cp.accept", {"cp": d.pub}) for d in self.cps]
        assert all(r.ok for r in h.block(*txs).results)
        self.cp = self.cps[0].pub

    def gov(self, action: str, args: dict[str, Any]) -> Any:
        return self.h.run(MEMBERS[0], "gov", {"action": action, "args": args}, [MEMBERS[1]])

    def register(self, k: SigningKey, roles: list[str], cap_w: int | None = None) -> None:
        res = self.gov("providers.set", {"pub": k.pub, "name": "provider " + k.pub[:2].hex(), "roles": roles, "cap_w": cap_w})
        assert res.ok, res

    def body(self, grantee: SigningKey, cp: bytes | None = None, **kw: Any) -> dict[str, Any]:
        b = {
            "cp": cp or self.cp, "grantee": grantee.pub, "scopes": ["charging.control"],
            "not_before": T0, "not_after": T0 + 30 * DAY, "limits": {"max_power_w": 11_000},
            "exclusive": False, "priority": 10, "redelegate": 0, "parent": None,
        }  # fmt: skip
        b.update(kw)
        return b

    def grant(self, grantee: SigningKey, signer: SigningKey = OWNER, **kw: Any) -> Any:
        return self.h.run(signer, "grant", self.body(grantee, **kw))

    def prov(self, k: SigningKey) -> Any:
        return self.h.get(prov_key(k.pub))

    def recomputed(self, k: SigningKey) -> int:
        """live_w from first principles: every cp record's unexpired control grants to `k`."""
        total = 0
        for d in self.cps:
            rec = self.h.cp(d.pub)
            total += sum(control_watts(g) for g in rec["grants"] if g["grantee"] == k.pub and g["not_after"] > self.h.time)
        return total


def refused(res: Any, code: str) -> None:
    assert not res.ok and res.code == code, (res.code, res.log)


@pytest.fixture
def c(trust: TestTrustList) -> Chain:
    return Chain(trust)


def test_unregistered_key_is_refused_flex(c: Chain) -> None:
    flex = {"scopes": ["flex"], "exclusive": True}
    res = c.grant(NOBODY, **flex)
    refused(res, "role_required")
    assert "not a registered provider" in res.log and "aggregator or dso or tso" in res.log
    c.register(CPO, ["cpo"])
    refused(c.grant(CPO, **flex), "role_required")
    # scopes not in scope_roles need no role and no registration
    assert c.grant(NOBODY, scopes=["meter.read"], limits={}).ok
    assert c.grant(NOBODY).ok


def test_registered_aggregator_is_accepted_flex(c: Chain) -> None:
    c.register(AGG, ["aggregator"])
    assert c.grant(AGG, scopes=["flex"], exclusive=True).ok
    assert c.prov(AGG)["live_w"] == 11_000 == c.recomputed(AGG)


def test_capacity_cap_with_revocation_and_expiry(c: Chain) -> None:
    c.register(AGG, ["aggregator"], cap_w=50_000)
    short_lived = c.grant(AGG, not_after=c.h.time + 12_000)  # ends after 10 more blocks
    assert short_lived.ok
    ids = [short_lived.txid[:16]] + [c.grant(AGG).txid[:16] for _ in range(3)]
    assert c.prov(AGG)["live_w"] == 44_000
    res = c.grant(AGG)
    refused(res, "capacity_cap")
    assert "50000" in res.log and "44000" in res.log and "11000" in res.log
    refused(c.grant(AGG, limits={}), "capacity_cap")  # a capped provider's control grant states its power
    assert c.grant(AGG, scopes=["meter.read"], limits={}).ok  # not a control scope: not capped
    assert c.h.run(OWNER, "revoke", {"cp": c.cp, "grant": ids[1]}).ok
    assert c.prov(AGG)["live_w"] == 33_000
    assert c.grant(AGG).ok
    refused(c.grant(AGG), "capacity_cap")
    # the short-lived grant ends: its watts leave the sum although nobody touches the record
    before = c.h.cp(c.cp)
    c.h.block(dt_ms=5_000)
    assert c.h.cp(c.cp) == before
    assert c.prov(AGG)["live_w"] == 33_000 == c.recomputed(AGG)
    assert c.grant(AGG).ok
    assert c.prov(AGG)["live_w"] == 44_000 == c.recomputed(AGG)


def test_cap_counts_sub_grants_for_their_grantee(c: Chain) -> None:
    c.register(AGG, ["aggregator"])
    c.register(CPO, ["cpo"], cap_w=20_000)
    parent = c.grant(AGG, redelegate=1, limits={"max_power_w": 22_000})
    assert parent.ok
    pid = parent.txid[:16]
    sub = c.grant(CPO, signer=AGG, parent=pid, limits={"max_power_w": 15_000})
    assert sub.ok
    refused(c.grant(CPO, signer=AGG, parent=pid, limits={"max_power_w": 6_000}), "capacity_cap")
    assert (c.prov(AGG)["live_w"], c.prov(CPO)["live_w"]) == (22_000, 15_000)
    assert c.h.run(OWNER, "revoke", {"cp": c.cp, "grant": pid}).ok  # the cascade releases both
    assert (c.prov(AGG)["live_w"], c.prov(CPO)["live_w"]) == (0, 0)


def test_grants_held_before_registration_count(c: Chain) -> None:
    assert c.grant(CPO).ok  # charging.control needs no role
    c.register(CPO, ["cpo"], cap_w=15_000)
    assert c.prov(CPO)["live_w"] == 11_000
    refused(c.grant(CPO), "capacity_cap")


def test_live_w_after_transfer(c: Chain) -> None:
    c.register(AGG, ["aggregator"])
    assert c.grant(AGG).ok and c.grant(AGG, scopes=["flex"], exclusive=True).ok
    assert c.prov(AGG)["live_w"] == 22_000
    assert c.h.run(OWNER, "cp.transfer", {"cp": c.cp, "to": OWNER2.pub}).ok
    assert c.prov(AGG)["live_w"] == 22_000  # not yet accepted: grants stay
    assert c.h.run(OWNER2, "cp.accept", {"cp": c.cp}).ok
    assert c.h.cp(c.cp)["grants"] == [] and c.prov(AGG)["live_w"] == 0
    assert c.h.get(lev_grantee_key(AGG.pub)) is None


def test_indexes_vanish_with_the_grants(c: Chain) -> None:
    c.register(AGG, ["aggregator"])
    r = [c.grant(AGG, not_after=c.h.time + 2_000 + i * 700) for i in range(6)]
    other = c.grant(NOBODY, scopes=["meter.read"], limits={})
    assert all(x.ok for x in r) and other.ok
    assert any(k.startswith(b"lev/") for k in c.h.view.data)
    c.h.block(dt_ms=10_000)  # AGG's grants all ended (still in the untouched record); revoke the other
    assert c.h.run(OWNER, "revoke", {"cp": c.cp, "grant": other.txid[:16]}).ok
    assert not [k for k in c.h.view.data if k.startswith(b"lev/")]
    assert c.prov(AGG)["live_w"] == 0


def test_expiry_sweep_is_bounded_per_block(c: Chain) -> None:
    assert c.gov("params.set", {"expiry_batch": 5}).ok
    c.register(AGG, ["aggregator"])
    end = c.h.time + 10_000
    for _ in range(4):
        c.h.block(*[c.h.tx(OWNER, "grant", c.body(AGG, not_after=end + i)) for i in range(5)])
    assert c.prov(AGG)["live_w"] == 20 * 11_000
    c.h.block(dt_ms=20_000)
    seen = [c.prov(AGG)["live_w"]]
    while seen[-1]:
        c.h.block()
        seen.append(c.prov(AGG)["live_w"])
    steps = [a - b for a, b in zip(seen, seen[1:])]
    assert len(seen) >= 4 and all(0 <= s <= 5 * 11_000 for s in steps), seen


def test_scope_roles_param(c: Chain) -> None:
    for bad in ({"flex": ["regulator"]}, {"nope": ["dso"]}, {"flex": ["tso", "dso"]}, {"flex": []}, ["flex"]):
        refused(c.gov("params.set", {"scope_roles": bad}), "bad_gov_args")
    assert c.gov("params.set", {"scope_roles": {"charging.profile": ["cpo", "emsp"]}}).ok
    assert c.grant(NOBODY, scopes=["flex"], exclusive=True).ok  # flex no longer listed
    refused(c.grant(NOBODY, scopes=["charging.profile"]), "role_required")


def test_provider_gov_args(c: Chain) -> None:
    ok = {"pub": AGG.pub, "name": "agg", "roles": ["aggregator"], "cap_w": None}
    for bad in ({**ok, "roles": ["king"]}, {**ok, "roles": ["dso", "dso"]}, {**ok, "name": ""},
                {**ok, "cap_w": -1}, {**ok, "pub": b"x"}, {k: v for k, v in ok.items() if k != "cap_w"}):  # fmt: skip
        refused(c.gov("providers.set", bad), "bad_gov_args")
    refused(c.gov("providers.suspend", {"pub": AGG.pub, "suspended": True}), "bad_gov_args")  # unknown
    assert c.gov("providers.set", {**ok, "roles": ["tso", "aggregator"]}).ok
    rec = c.prov(AGG)
    assert rec == {"cap_w": None, "height": c.h.height, "live_w": 0, "name": "agg",
                   "roles": ["aggregator", "tso"], "suspended": False}  # fmt: skip
    refused(c.gov("providers.suspend", {"pub": AGG.pub, "suspended": False}), "bad_gov_args")


def test_suspension_revokes_many_grants_in_batches(trust: TestTrustList) -> None:
    c = Chain(trust, n_cps=20)
    batch = 150
    assert c.gov("params.set", {"suspension_batch": batch}).ok
    c.register(AGG, ["aggregator"])
    c.register(CPO, ["cpo"])
    h = c.h
    for d in c.cps:  # 50 grants per charge point, 1,000 in all
        res = h.block(*[h.tx(OWNER, "grant", c.body(AGG, cp=d.pub, redelegate=1, priority=i)) for i in range(50)])
        assert all(r.ok for r in res.results)
    # a sub-grant the aggregator made goes with its parent; CPO's own grant stays
    pid = h.cp(c.cps[3].pub)["grants"][0]["id"]
    assert c.grant(CPO, signer=AGG, cp=c.cps[3].pub, parent=pid, priority=0).ok
    keep = c.grant(CPO, cp=c.cps[3].pub)
    assert keep.ok and c.prov(AGG)["live_w"] == 1000 * 11_000
    res = h.block(
        h.tx(MEMBERS[0], "gov", {"action": "providers.suspend", "args": {"pub": AGG.pub, "suspended": True}}, [MEMBERS[1]]),
        h.tx(OWNER, "grant", c.body(AGG)),  # refused at once, in the same block
    )
    assert res.results[0].ok
    refused(res.results[1], "suspended")
    refused(c.gov("providers.suspend", {"pub": AGG.pub, "suspended": False}), "bad_gov_args")  # still revoking
    left = [sum(g["grantee"] == AGG.pub for d in c.cps for g in h.cp(d.pub)["grants"])]
    blocks = 0
    while left[-1]:
        h.block()
        blocks += 1
        left.append(sum(g["grantee"] == AGG.pub for d in c.cps for g in h.cp(d.pub)["grants"]))
        assert left[-2] - left[-1] <= batch
        assert c.prov(AGG)["live_w"] == c.recomputed(AGG)
    assert blocks >= 1000 // batch and left[0] >= 1000 - batch
    assert c.prov(AGG)["live_w"] == 0 and c.prov(CPO)["live_w"] == 11_000
    assert [g["id"] for g in h.cp(c.cps[3].pub)["grants"]] == [keep.txid[:16]]
    refused(c.grant(CPO, signer=AGG, cp=c.cps[3].pub, parent=pid), "grant_unknown")
    # lifting restores nothing; owners grant again
    assert c.gov("providers.suspend", {"pub": AGG.pub, "suspended": False}).ok
    assert c.prov(AGG)["live_w"] == 0 and not c.prov(AGG)["suspended"]
    assert c.grant(AGG).ok
