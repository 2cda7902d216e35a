"""Hypothesis state machine over random blocks of transactions from a few actors.

Invariants after every block:
- a charge point record changes only in a block where its owner, its pending acceptor, a
  delegate holding one of its grants, or (while unowned) the device or a claimant signed an ok tx;
- every grant's parent is in the record (revocation and pruning cascade), root grants were
  issued by the owner, sub-grants by their parent's grantee and are attenuated (§4): scopes,
  window, every parent limit present and ≤, priority ≤ the parent's, exclusive only under an
  exclusive parent, redelegate below the parent's;
- at most one live exclusive hold (a root exclusive grant and its exclusive sub-grants) per
  charge point and scope at any instant;
- a charge point record exists only with the device attestation it was created with;
- grants are sorted by id and all writes are canonical;
- nonces rise by exactly one per consumed tx and a (signer, nonce) is never consumed twice; a
  refused tx of a key with no account consumes nothing (fresh keys cannot grow the state);
- a block whose txs all fail changes nothing but nonces;
- execute_block is deterministic (twice, and over a view built in another dict order);
- regulator levers: every key's live_w (and a registered provider's prov/ live_w) equals the sum
  recomputed from all cp records' unexpired control grants naming it; a suspended provider whose
  revocation has finished holds no live grant; a cp record changes without an entitled signer
  only in a block that starts with suspension work.

Budget: 100 examples × 25 steps by default (~10 s on a loaded 2-core box); set
ADS_FUZZ_EXAMPLES to run longer. Each planted bug (revoke without cascade, and each dropped
attenuation check, and the levers' forgotten expiry and forgotten sub-grants) must be caught.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from ads_ledger.core import codec
from ads_ledger.state import delegation, levers
from ads_ledger.state.context import DictView
from ads_ledger.state.envelope import make_envelope, parse_envelope
from ads_ledger.state.identity import ms_to_datetime
from ads_ledger.state.machine import BlockResult, execute_block
from ads_ledger.state.ownership import owner_sig_body
from ads_ledger.state.records import (
    LEV_SUSPENDING,
    SCOPES,
    acct_key,
    control_watts,
    cp_key,
    lev_grantee_key,
    prov_key,
)
from ads_ledger.testing import device_attestation, key, make_test_genesis, test_device_ca
from ads_ledger.testing.trustlist import issue_attestation, make_trust_list

T0 = 1_800_000_000_000
CHAIN = "ads-test"
OWNERS = [key(f"owner{i}") for i in range(3)]
DEVICES = [key(f"device{i}") for i in range(3)]
PROVIDERS = [key(f"provider{i}") for i in range(3)]
MEMBERS = [key(f"member{j}") for j in range(3)]
PEOPLE = OWNERS + PROVIDERS
ALL = PEOPLE + DEVICES + MEMBERS
SCOPE_LIST = sorted(SCOPES)
NO_NONCE = {"malformed", "bad_signature", "bad_nonce", "unknown_type", "scope_unknown", "too_large"}
EXAMPLES = int(os.environ.get("ADS_FUZZ_EXAMPLES", "100"))

_AT = ms_to_datetime(T0)
TRUST = make_trust_list(not_before=_AT - dt.timedelta(days=1), not_after=_AT + dt.timedelta(days=3650))
# attestations are made once (ECDSA signing is randomised); owner2's is held back for a tx
ATTEST = {
    k.pub: issue_attestation(TRUST, CHAIN, k.pub, issued_at=T0, expires_at=T0 + 1000 * 86_400_000)
    for k in OWNERS + PROVIDERS[:1]
}


def decode(raw: bytes | None) -> Any:
    return None if raw is None else codec.decode(raw)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.view = DictView()
        self.height = 0
        self.time = T0
        self.consumed: set[tuple[bytes, int]] = set()

    @initialize()
    def genesis(self) -> None:
        g = make_test_genesis(TRUST.anchors_der(), chain_id=CHAIN, genesis_time=T0)
        self.view = DictView(dict(g.state_writes()))
        txs = [make_envelope(CHAIN, "attest", k, 1, ATTEST[k.pub]) for k in OWNERS[:2] + PROVIDERS[:1]]
        for dev, owner in zip(DEVICES[:2], OWNERS[:2]):  # device0/1 start owned; device2 unowned
            sig = dev.sign_tagged("ads/own/1", CHAIN, owner_sig_body(dev.pub, owner.pub, 0))
            body = {"cp": dev.pub, "device": device_attestation(dev.pub), "device_sig": sig}
            txs.append(make_envelope(CHAIN, "cp.claim", owner, 2, body))
        # provider0 an aggregator capped at 30 kW, provider1 a DSO without cap; provider2 and
        # the owners are unregistered (refused flex)
        for n, (p, roles, cap) in enumerate([(PROVIDERS[0], ["aggregator"], 30_000), (PROVIDERS[1], ["dso"], None)]):
            args = {"cap_w": cap, "name": f"provider{n}", "pub": p.pub, "roles": roles}
            txs.append(make_envelope(CHAIN, "gov", MEMBERS[0], n + 1, {"action": "providers.set", "args": args},
                                     [MEMBERS[1]]))  # fmt: skip
        res = self._execute(txs)
        assert all(r.ok for r in res.results)

    # ------------------------------------------------------------ helpers

    def rec(self, cp: bytes) -> Any:
        return decode(self.view.get(cp_key(cp)))

    def nonce(self, pub: bytes) -> int:
        acct = decode(self.view.get(acct_key(pub)))
        return 0 if acct is None else int(acct["nonce"])

    def _execute(self, txs: list[bytes]) -> BlockResult:
        self.height += 1
        self.time += 1000
        pre = dict(self.view.data)
        res = execute_block(self.view, CHAIN, self.height, self.time, txs)
        again = execute_block(DictView(dict(reversed(list(pre.items())))), CHAIN, self.height, self.time, txs)
        assert again.writes == res.writes and again.results == res.results, "execute_block is not deterministic"
        assert list(res.writes) == sorted(res.writes)
        for v in res.writes.values():  # the strict codec refuses non-canonical bytes
            assert v is None or codec.encode(codec.decode(v)) == v
        self.view.apply(res.writes)
        self._check_block(pre, txs, res)
        return res

    def _check_block(self, pre: dict[bytes, bytes], txs: list[bytes], res: BlockResult) -> None:
        envs = [parse_envelope(t) for t in txs]
        ok_signers: dict[bytes, set[bytes]] = {}
        consumed_by: dict[bytes, list[int]] = {}
        for env, r in zip(envs, res.results):
            had_account = pre.get(acct_key(env.signer)) is not None or env.signer in consumed_by
            if r.code not in NO_NONCE and (r.ok or had_account):
                consumed_by.setdefault(env.signer, []).append(env.nonce)
                assert (env.signer, env.nonce) not in self.consumed, "a nonce was consumed twice"
                self.consumed.add((env.signer, env.nonce))
            if r.ok:
                cp = env.body.get("cp", env.signer if env.type == "cp.propose" else None)
                if cp is not None:
                    ok_signers.setdefault(cp, set()).add(env.signer)
        # nonces: +1 per consumed tx, in order
        for signer, nonces in consumed_by.items():
            before = decode(pre.get(acct_key(signer)))
            n0 = 0 if before is None else before["nonce"]
            assert nonces == list(range(n0 + 1, n0 + 1 + len(nonces)))
            assert self.nonce(signer) == n0 + len(nonces)
        sweeping = bool(decode(pre.get(LEV_SUSPENDING)))  # the block starts with suspension work
        REACHED["suspension_sweeps"] += sweeping and any(k.startswith(b"cp/") for k in res.writes)
        if not any(r.ok for r in res.results):
            for k in res.writes:
                if k.startswith((b"lev/", b"prov/")) or (sweeping and k.startswith(b"cp/")):
                    continue  # the block-start sweeps (expiry, suspension)
                assert k.startswith(b"acct/"), f"a failed block changed {k!r}"
                old, new = decode(pre.get(k)), decode(res.writes[k])
                assert (old or {"identity": None})["identity"] == new["identity"]
        # who may change a charge point record
        for k, v in res.writes.items():
            if not k.startswith(b"cp/") or sweeping:
                continue
            cp, old = k[3:], decode(pre.get(k))
            signers = ok_signers.get(cp, set())
            if old is None or old["owner"] is None:
                allowed = {cp} | ({old["pending"]} if old and old["pending"] else set())
                claimed = decode(v)["owner"]
                allowed |= {claimed} if claimed else set()
            else:
                allowed = {old["owner"]} | {g["grantee"] for g in old["grants"]} | {g["issuer"] for g in old["grants"]}
                if old["pending"] is not None:
                    allowed.add(old["pending"])
            assert signers & allowed, f"charge point {cp.hex()[:8]} changed without an entitled signature"

    # ------------------------------------------------------------ tx generation

    def _tx(self, data: st.DataObject, pending: dict[bytes, int]) -> bytes:
        kind = data.draw(st.sampled_from(
            ["grant"] * 5 + ["subgrant"] * 6 + ["revoke"] * 4 + ["propose", "accept", "claim", "transfer", "transfer",
             "attest", "gov"]))  # fmt: skip
        cp = data.draw(st.sampled_from(DEVICES)).pub
        busy = [d.pub for d in DEVICES if (self.rec(d.pub) or {"grants": []})["grants"]]
        if kind in ("subgrant", "revoke") and busy and data.draw(st.integers(0, 4)) > 0:
            cp = data.draw(st.sampled_from(busy))
        rec = self.rec(cp)
        grants = rec["grants"] if rec else []
        if kind == "grant":
            signer = data.draw(st.sampled_from(PEOPLE))
            if rec and rec["owner"] and data.draw(st.booleans()):
                signer = next(k for k in PEOPLE if k.pub == rec["owner"])
            ttype, body = "grant", self._grant_body(data, cp, None)
        elif kind == "subgrant" and grants:
            fit = [g for g in grants if g["redelegate"] > 0 and g["not_after"] > self.time + 2000]
            deeper = [g for g in fit if g["parent"] is not None]
            if deeper and data.draw(st.booleans()):  # go deeper: depth limits get exercised
                fit = deeper
            parent = data.draw(st.sampled_from(fit if fit and data.draw(st.integers(0, 4)) else grants))
            signer = next((k for k in ALL if k.pub == parent["grantee"]), OWNERS[0])
            ttype, body = "grant", self._grant_body(data, cp, parent)
        elif kind in ("revoke", "subgrant"):
            known = grants and data.draw(st.integers(0, 4)) > 0
            gid = data.draw(st.sampled_from([g["id"] for g in grants])) if known else bytes(16)
            signer = data.draw(st.sampled_from(PEOPLE))
            if grants and data.draw(st.booleans()):
                g = next(g for g in grants if g["id"] == gid) if gid != bytes(16) else grants[0]
                signer = next((k for k in ALL if k.pub in (g["grantee"], g["issuer"])), signer)
            ttype, body = "revoke", {"cp": cp, "grant": gid}
        elif kind == "propose":
            signer = next(k for k in DEVICES if k.pub == cp)
            body = {"owner": data.draw(st.sampled_from(PEOPLE)).pub}
            if data.draw(st.integers(0, 3)) > 0:
                body["device"] = device_attestation(cp)
            ttype = "cp.propose"
        elif kind == "accept":
            signer = data.draw(st.sampled_from(PEOPLE))
            if rec and rec["pending"] and data.draw(st.booleans()):
                signer = next((k for k in PEOPLE if k.pub == rec["pending"]), signer)
            ttype, body = "cp.accept", {"cp": cp}
        elif kind == "claim":
            signer = data.draw(st.sampled_from(PEOPLE))
            epoch = (rec["epoch"] if rec else 0) + data.draw(st.sampled_from([0, 0, 0, 1]))
            dev = next(k for k in DEVICES if k.pub == cp)
            sig = dev.sign_tagged("ads/own/1", CHAIN, owner_sig_body(cp, signer.pub, epoch))
            ttype, body = "cp.claim", {"cp": cp, "device_sig": sig}
            if data.draw(st.integers(0, 3)) > 0:
                body["device"] = device_attestation(cp)
        elif kind == "transfer":
            signer = data.draw(st.sampled_from(PEOPLE))
            if rec and rec["owner"] and data.draw(st.booleans()):
                signer = next(k for k in PEOPLE if k.pub == rec["owner"])
            ttype, body = "cp.transfer", {"cp": cp, "to": data.draw(st.sampled_from(PEOPLE)).pub}
        elif kind == "attest":
            signer = data.draw(st.sampled_from(OWNERS))
            ttype, body = "attest", ATTEST[signer.pub]
        else:
            signer = MEMBERS[0]
            ttype = "gov"
            action = data.draw(st.sampled_from(["params.set", "providers.suspend", "providers.set"]))
            p = data.draw(st.sampled_from(PROVIDERS)).pub
            if action == "params.set":
                args: dict[str, Any] = {"max_grants_per_cp": data.draw(st.integers(2, 6))}
            elif action == "providers.suspend":
                prov = decode(self.view.get(prov_key(p)))
                args = {"pub": p, "suspended": not prov["suspended"] if prov else True}
            else:
                args = {"cap_w": data.draw(st.sampled_from([None, 0, 14_000, 30_000])), "name": "p", "pub": p,
                        "roles": data.draw(st.sampled_from([["aggregator"], ["cpo"], ["dso", "tso"]]))}  # fmt: skip
            body = {"action": action, "args": args}
        cosigners = MEMBERS[1 : data.draw(st.integers(1, 3))] if ttype == "gov" else []
        nonce = self.nonce(signer.pub) + pending.get(signer.pub, 0) + 1
        wrong_nonce = data.draw(st.integers(0, 19)) == 0
        if wrong_nonce:
            nonce += data.draw(st.sampled_from([-1, 1, 2]))
        forged = data.draw(st.integers(0, 29)) == 0
        if not (wrong_nonce or forged):
            pending[signer.pub] = pending.get(signer.pub, 0) + 1
        raw = make_envelope(CHAIN, ttype, signer, max(nonce, 0), body, cosigners)
        if forged:
            env = codec.decode(raw)
            env["auth"][0][1] = bytes(64)
            raw = codec.encode(env)
        return raw

    def _grant_body(self, data: st.DataObject, cp: bytes, parent: dict[str, Any] | None) -> dict[str, Any]:
        if parent is not None and data.draw(st.integers(0, 3)) > 0:  # mostly well attenuated
            # the parent's scopes, a window that ends with the parent or up to 1 ms past it,
            # alive past the next block
            scopes = data.draw(st.lists(st.sampled_from(parent["scopes"]), min_size=1, unique=True))
            nb = parent["not_before"] + data.draw(st.integers(0, 2000))
            end = data.draw(st.sampled_from(["parent"] * 3 + ["inside"] * 2 + ["over"]))
            na = {"parent": parent["not_after"], "over": parent["not_after"] + 1,
                  "inside": max(self.time + 2000, parent["not_after"] - 1000)}[end]  # fmt: skip
            limits = {k: max(0, v - data.draw(st.integers(0, 1000))) for k, v in parent["limits"].items()}
            redelegate = max(0, parent["redelegate"] - data.draw(st.sampled_from([1] * 7 + [0])))
            priority = parent["priority"] - data.draw(st.integers(0, 5))
            exclusive = "flex" in scopes or (parent["exclusive"] and data.draw(st.booleans()))
            # one in three breaks exactly one attenuation rule: each must be refused
            flaw = data.draw(st.sampled_from([None] * 6 + ["priority", "exclusive", "limit"]))
            if flaw == "priority":
                priority = parent["priority"] + data.draw(st.integers(1, 3))
            elif flaw == "exclusive" and not parent["exclusive"]:
                exclusive = True
            elif flaw == "limit":
                limits = {}
            return {
                "cp": cp, "grantee": data.draw(st.sampled_from(PEOPLE)).pub, "scopes": scopes,
                "not_before": nb, "not_after": max(na, nb + 1), "limits": limits,
                "exclusive": exclusive, "priority": min(99, max(0, priority)),
                "redelegate": redelegate, "parent": parent["id"],
            }  # fmt: skip
        scopes = data.draw(st.lists(st.sampled_from(SCOPE_LIST), min_size=1, max_size=3, unique=True))
        nb = self.time + data.draw(st.integers(-3, 5)) * 1000
        limits = data.draw(st.sampled_from([{}, {"max_power_w": 11_000}, {"max_power_w": 3_000}]))
        return {
            "cp": cp, "grantee": data.draw(st.sampled_from(PEOPLE)).pub, "scopes": scopes,
            "not_before": nb, "not_after": nb + data.draw(st.integers(1, 30)) * 1000, "limits": limits,
            "exclusive": data.draw(st.booleans()) or ("flex" in scopes and data.draw(st.integers(0, 9)) > 0),
            "priority": data.draw(st.integers(0, 99)), "redelegate": data.draw(st.integers(0, 3)),
            "parent": parent["id"] if parent is not None else None,
        }  # fmt: skip

    # ------------------------------------------------------------ rules and invariants

    @rule(data=st.data())
    def block(self, data: st.DataObject) -> None:
        pending: dict[bytes, int] = {}
        n = data.draw(st.integers(1, 3))
        self._execute([self._tx(data, pending) for _ in range(n)])

    @rule()
    def empty_block(self) -> None:
        sweeping = bool(decode(self.view.get(LEV_SUSPENDING)))
        for k in self._execute([]).writes:  # only the block-start sweeps write
            assert k.startswith((b"lev/", b"prov/")) or (sweeping and k.startswith(b"cp/")), k

    @invariant()
    def live_w_matches_the_records(self) -> None:
        live: dict[bytes, int] = {}
        for d in DEVICES:
            for g in (self.rec(d.pub) or {"grants": []})["grants"]:
                if g["not_after"] > self.time:
                    live[g["grantee"]] = live.get(g["grantee"], 0) + control_watts(g)
                    REACHED["live_w"] = max(REACHED["live_w"], control_watts(g))
        queue = decode(self.view.get(LEV_SUSPENDING)) or []
        for k in ALL:
            counted = decode(self.view.get(lev_grantee_key(k.pub)))
            w = 0 if counted is None else counted["w"]
            assert w == live.get(k.pub, 0), f"live_w of {k.pub.hex()[:8]} is {w}, the records say {live.get(k.pub, 0)}"
            prov = decode(self.view.get(prov_key(k.pub)))
            if prov is not None:
                assert prov["live_w"] == w, "prov/ live_w differs from the grantee's count"
                if prov["suspended"] and k.pub not in queue:
                    assert k.pub not in live, "a suspended provider kept a live grant"

    @invariant()
    def records_are_consistent(self) -> None:
        for d in DEVICES:
            rec = self.rec(d.pub)
            if rec is None:
                continue
            assert rec["device"] == {"issuer": test_device_ca().issuer(), "model": "ADS-SIM-22"}
            grants = rec["grants"]
            assert [g["id"] for g in grants] == sorted(g["id"] for g in grants), "grants not sorted by id"
            by_id = {g["id"]: g for g in grants}
            if grants:
                assert rec["owner"] is not None
            for g in grants:
                depth, q = 0, g
                while q["parent"] is not None and q["parent"] in by_id:
                    depth, q = depth + 1, by_id[q["parent"]]
                REACHED["depth"] = max(REACHED["depth"], depth)
                if g["parent"] is None:
                    assert g["issuer"] == rec["owner"], "a root grant not issued by the owner"
                    continue
                p = by_id.get(g["parent"])
                assert p is not None, "a sub-grant outlived its parent (revoke/prune did not cascade)"
                REACHED["sub_grants"] += 1
                REACHED["ends_with_parent"] += g["not_after"] == p["not_after"]
                assert g["issuer"] == p["grantee"] and p["redelegate"] > g["redelegate"]
                assert set(g["scopes"]) <= set(p["scopes"])
                assert p["not_before"] <= g["not_before"] and g["not_after"] <= p["not_after"]
                assert all(k in g["limits"] for k in p["limits"]), "a sub-grant dropped its parent's limit"
                assert all(g["limits"][k] <= v for k, v in p["limits"].items())
                assert g["priority"] <= p["priority"], "a sub-grant outranks its parent"
                assert p["exclusive"] or not g["exclusive"], "an exclusive sub-grant under a shared parent"
                REACHED["exclusive_sub"] += g["exclusive"]

            def hold(g: dict[str, Any]) -> bytes:
                while g["parent"] is not None and by_id[g["parent"]]["exclusive"]:
                    g = by_id[g["parent"]]
                return bytes(g["id"])

            live_excl = [g for g in grants if g["exclusive"] and g["not_after"] > self.time]
            for i, a in enumerate(live_excl):
                for b in live_excl[i + 1 :]:
                    overlap = a["not_before"] < b["not_after"] and b["not_before"] < a["not_after"]
                    shared = overlap and set(a["scopes"]) & set(b["scopes"])
                    assert not shared or hold(a) == hold(b), "two live exclusive holders"


REACHED = {"depth": 0, "sub_grants": 0, "ends_with_parent": 0, "exclusive_sub": 0, "live_w": 0,
           "suspension_sweeps": 0}  # what the draws exercised

TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize(
    "module,mutant,symptom",
    [
        (delegation, "MUTANT_REVOKE_NO_CASCADE", "outlived its parent"),
        (delegation, "MUTANT_NO_PRIORITY_CAP", "outranks its parent"),
        (delegation, "MUTANT_NO_EXCLUSIVE_CAP", "exclusive sub-grant under a shared parent"),
        (delegation, "MUTANT_NO_LIMIT_PRESENCE", "dropped its parent's limit"),
        (levers, "MUTANT_NO_EXPIRY_SWEEP", "live_w of"),
        (levers, "MUTANT_FORGET_SUB_GRANTS", "live_w of"),
    ],
)
def test_planted_bug_is_caught(monkeypatch: pytest.MonkeyPatch, module: Any, mutant: str, symptom: str) -> None:
    """Each planted bug (a test-only switch that drops one rule) must break its invariant. Keys
    and attestations are fresh per process, so what one fixed sequence reaches varies: up to
    four rounds (the fixed sequence, then fresh draws) until the invariant breaks."""
    monkeypatch.setattr(module, mutant, True)
    for derandomize in (True, False, False, False):
        try:
            run_state_machine_as_test(
                LedgerMachine,
                settings=settings(
                    max_examples=300,
                    stateful_step_count=30,
                    deadline=None,
                    derandomize=derandomize,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False,
                ),
            )
        except AssertionError as e:
            assert re.search(symptom, str(e)), f"{mutant} broke another invariant: {e}"
            return
    pytest.fail(f"{mutant} was not caught in four rounds of 300 examples")


def test_machine_reaches_deep_and_boundary_sub_grants() -> None:
    """The draws must exercise what the invariants guard: accepted sub-grants two levels deep,
    sub-grants ending exactly with their parent (not only refusals), counted control power and
    suspension sweeps that revoke grants. The keys and
    attestations are fresh per process, so grant ids (and what the draws reach) vary: up to
    ten rounds of 40 examples until everything was reached (most runs need one or two)."""
    REACHED.update(depth=0, sub_grants=0, ends_with_parent=0, exclusive_sub=0, live_w=0, suspension_sweeps=0)
    for derandomize in (True, *[False] * 9):  # the fixed sequence first, then fresh draws
        run_state_machine_as_test(LedgerMachine, settings=settings(
            max_examples=40, stateful_step_count=25, deadline=None, derandomize=derandomize, database=None,
            suppress_health_check=list(HealthCheck)))  # fmt: skip
        if all(REACHED[k] > 0 for k in ("ends_with_parent", "exclusive_sub", "live_w", "suspension_sweeps")) \
                and REACHED["depth"] >= 2:
            break
    assert REACHED["depth"] >= 2 and all(REACHED[k] > 0 for k in REACHED), REACHED
