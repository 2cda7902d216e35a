"""One Byzantine validator among four, live (DESIGN §2 "A Byzantine proposer or peer is
ordinary input", §6 block validity): each test starts 3 honest validators and one running a
behaviour of the TEST-ONLY kit (`ads node start --byzantine NAME`, src/ads_ledger/testing/byzantine.py)
and checks that the honest nodes stay safe (same block ids; governance unchanged) and live
(they keep committing), that a fresh full node syncs the whole chain from them, and that the
fault shows in an honest node's /metrics or log. Every process is killed by the fixture.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from byzantine_harness import BYZ, HONEST, ByzNet

from ads_ledger.client.http import ApiResponseError
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import Block
from ads_ledger.node.config import load_key
from ads_ledger.state.bodies import TX_TYPES
from ads_ledger.state.envelope import MAX_TX_BYTES, make_envelope, parse_envelope
from ads_ledger.state.records import GOV_MEMBERS
from ads_ledger.testing import propose_tx
from ads_ledger.testing.trustlist import load_device_ca

pytestmark = pytest.mark.slow

Make = Callable[..., ByzNet]


@pytest.fixture
def byznet(tmp_path: Path) -> Iterator[Make]:
    made: list[ByzNet] = []

    def make(behaviour: str, **kw: object) -> ByzNet:
        b = ByzNet(tmp_path, behaviour, **kw)  # type: ignore[arg-type]
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            b.close()


class Load:
    """Ordinary transactions (`cp.propose` from fresh keys) posted to the honest nodes."""

    def __init__(self, b: ByzNet, interval: float = 0.1) -> None:
        self.b, self.interval = b, interval
        self.ca = load_device_ca(Path(b.info["device_ca"]))
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        clients = [self.b.client(i, timeout_s=5.0) for i in HONEST]
        try:
            n = 0
            while not self.stop.is_set() and n < 2000:
                k = SigningKey.generate()
                raw = propose_tx(self.b.chain_id, k, SigningKey.generate().pub, ca=self.ca)
                try:
                    clients[n % len(clients)].submit_tx(raw)
                    self.sent += 1
                except Exception:
                    pass
                n += 1
                self.stop.wait(self.interval)
        finally:
            for c in clients:
                c.close()

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def byz_lines(b: ByzNet, what: str) -> int:
    """How many times the Byzantine node logged `what` (proof that the attack ran)."""
    return b.log(BYZ).count(what)


def common_checks(b: ByzNet, blocks: int = 4) -> int:
    """Live, then safe, then a fresh full node syncs; returns the height checked."""
    b.wait_live(blocks, timeout=40)
    top = b.assert_safe()
    b.assert_fresh_syncs()
    b.assert_no_traceback()
    return top


def committed_blocks(b: ByzNet, upto: int) -> list[Block]:
    return b.blocks(HONEST[0], upto)


# ---------------------------------------------------------------- forged signatures


def test_forge_auth_cannot_pass_a_gov_tx_or_a_forged_signature(byznet: Make) -> None:
    b = byznet("forge_auth")
    b.net.wait_height(2, nodes=list(HONEST), timeout=60)
    members = [load_key(Path(p)) for p in b.info["gov"]]
    with b.client(HONEST[0]) as c:
        _, before, _ = c.state(GOV_MEMBERS)
    # member 0 alone asks for sole control; the threshold is 2 of 3
    body = {"action": "members.set", "args": {"members": [members[0].pub], "threshold": 1}}
    one = make_envelope(b.chain_id, "gov", members[0], 1, body)
    with b.client(BYZ) as c, pytest.raises(ApiResponseError) as e:
        c.submit_tx(one)
    assert e.value.code == "quorum", e.value
    with Load(b, 0.1):
        b.wait_until("the Byzantine proposer to forge gov quorums and tx signatures",
                     lambda: byz_lines(b, "forged member signatures") >= 2
                     and byz_lines(b, "txs with garbage signatures") >= 2, timeout=60)  # fmt: skip
    top = common_checks(b)
    gov_txid = parse_envelope(one).txid(b.chain_id)
    for i in HONEST:
        with b.client(i) as c:
            assert c.state(GOV_MEMBERS)[1] == before, f"node{i}: gov/members changed"
    for blk in committed_blocks(b, top):
        for raw in blk.txs:
            env = parse_envelope(raw)
            env.verify_signatures(b.chain_id)  # a committed tx with a forged auth raises here
            assert env.txid(b.chain_id) != gov_txid, f"block {blk.header.height} carries the 1-of-3 gov tx"
    assert b.honest_sum("invalid_block") > 0, "no honest node counted an invalid proposal"


# ---------------------------------------------------------------- invalid transactions


def test_invalid_txs_never_enter_a_block(byznet: Make) -> None:
    limits = {"max_block_txs": 20, "max_block_bytes": 64 * 1024}
    b = byznet("invalid_txs", params=limits)
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    kinds = ("wrong_nonce", "unknown_type", "replay", "too_large_tx", "too_many_txs", "too_many_bytes")
    with Load(b, 0.2):
        b.wait_until("the Byzantine proposer to try every kind of invalid block",
                     lambda: all(byz_lines(b, f"kind={k}") for k in kinds), timeout=80)  # fmt: skip
    top = common_checks(b)
    seen: set[bytes] = set()
    with b.client(HONEST[0]) as c:
        for blk in committed_blocks(b, top):
            assert len(blk.txs) <= limits["max_block_txs"], f"block {blk.header.height}: {len(blk.txs)} txs"
            assert sum(map(len, blk.txs)) <= limits["max_block_bytes"], f"block {blk.header.height} too large"
            for raw in blk.txs:
                assert len(raw) <= MAX_TX_BYTES
                env = parse_envelope(raw)
                assert env.type in TX_TYPES, f"block {blk.header.height} carries type {env.type!r}"
                txid = env.txid(b.chain_id)
                assert txid not in seen, f"block {blk.header.height} replays tx {txid.hex()}"
                seen.add(txid)
                code = c.tx(txid)["code"]
                assert code != "bad_nonce", f"block {blk.header.height} carries a tx with a wrong nonce"
    assert b.honest_sum("invalid_block") >= len(kinds), "the honest nodes did not count the invalid proposals"


# ---------------------------------------------------------------- evidence


def test_old_duplicate_or_forged_evidence_is_refused(byznet: Make) -> None:
    max_age = 5
    b = byznet("old_evidence", params={"evidence_max_age": max_age})
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    b.wait_until("the Byzantine validator to propose and gossip each kind of bad evidence",
                 lambda: all(byz_lines(b, f"kind={k}") for k in ("too_old", "duplicate", "bad_signature"))
                 and byz_lines(b, "gossiping too-old evidence") >= 2, timeout=80)  # fmt: skip
    top = common_checks(b)
    offences: set[tuple[bytes, int, int, int]] = set()
    with b.client(HONEST[0]) as c:
        for blk in committed_blocks(b, top):
            for ev in blk.evidence:
                h = ev.vote_a.height
                assert blk.header.height - h <= max_age, f"block {blk.header.height} carries evidence of {h}"
                key = (ev.vote_a.validator, h, ev.vote_a.round, ev.vote_a.type)
                assert key not in offences, f"block {blk.header.height} repeats an offence"
                offences.add(key)
                ev.check(b.chain_id, c.validators(h))
    assert b.honest_sum("invalid_block") > 0, "no honest node counted an invalid proposal"
    assert b.honest_sum("evidence_rejected", event=False) > 0, "no honest node counted the gossiped old evidence"


def test_equivocation_is_committed_as_evidence(byznet: Make) -> None:
    b = byznet("equivocate")
    byz = bytes.fromhex(b.info["nodes"][BYZ]["validator"])
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    found: list[int] = []

    def evidence_committed() -> bool:
        top = min(b.honest_heights())
        with b.client(HONEST[0]) as c:
            for h in range(max(found or [0]) + 1, top + 1):
                for ev in c.block(h)["evidence"]:
                    if bytes.fromhex(ev["vote_a"]["validator"]) == byz:
                        found.append(h)
        return bool(found)

    b.wait_until("evidence of the equivocation in a committed block", evidence_committed, timeout=60)
    common_checks(b)
    assert any("equivocation detected" in b.log(i) for i in HONEST)


# ---------------------------------------------------------------- proposals


def test_proposal_flood_is_dropped(byznet: Make) -> None:
    b = byznet("proposal_flood")
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    b.wait_until("the Byzantine proposer to flood two rounds",
                 lambda: byz_lines(b, "flooding proposals") >= 2, timeout=60)  # fmt: skip
    top = common_checks(b)
    assert top > 0
    # the node drops a second proposal before the core sees it; the core drops any that get by
    dropped = b.honest_sum("proposals_dropped", event=False) + b.honest_sum("proposal_dropped")
    assert dropped >= 900, f"the honest nodes dropped {dropped} of the flooded proposals"


def test_withheld_proposal_costs_a_round_only(byznet: Make) -> None:
    b = byznet("withhold")
    byz = bytes.fromhex(b.info["nodes"][BYZ]["validator"])
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    b.wait_until("the Byzantine proposer to withhold and to mismatch its block",
                 lambda: byz_lines(b, "withholding our proposal") >= 1
                 and byz_lines(b, "proposal with another block") >= 1, timeout=60)  # fmt: skip
    top = common_checks(b)
    blocks = committed_blocks(b, top)
    assert all(blk.header.proposer != byz for blk in blocks), "a withheld block was committed"
    # the rounds it should have proposed in were lost: the next block's last_commit is of round ≥ 1
    assert any(blk.last_commit is not None and blk.last_commit.round > 0 for blk in blocks)
    mismatched = b.honest_sum("bad_block") + b.honest_sum("bad_p2p", event=False)
    assert mismatched > 0, "no honest node counted the proposal whose block does not match"


# ---------------------------------------------------------------- block sync


def test_lying_sync_peer_cannot_stop_a_fresh_node(byznet: Make) -> None:
    b = byznet("lying_sync", fresh_peers_byz=True)
    b.net.wait_height(1, nodes=list(HONEST), timeout=60)
    b.wait_until("the honest validators to ask the liar for blocks",
                 lambda: byz_lines(b, "served lying blocks") >= 1, timeout=30)  # fmt: skip
    b.wait_live(8, timeout=40)
    common_checks(b)
    assert byz_lines(b, "served lying blocks") >= 2
    b.wait_until("a node to count a lying block or commit",
                 lambda: sum(b.event(i, e) for i in [*HONEST, "fresh"] for e in ("bad_commit", "bad_block")) > 0,
                 timeout=20)  # fmt: skip


def test_a_lying_status_does_not_make_live_validators_report_catching_up(byznet: Make) -> None:
    b = byznet("lying_sync")
    b.net.wait_height(2, nodes=list(HONEST), timeout=60)
    b.wait_live(3, timeout=30)
    claims: list[bool] = []
    for _ in range(6):  # spread over more than one distrust window of block sync
        for i in HONEST:
            with b.client(i) as c:
                claims.append(bool(c.status()["catching_up"]))
        time.sleep(2.0)
    b.wait_live(2, timeout=30)  # they were live all along
    assert sum(claims) <= 1, f"live honest validators said catching_up in {sum(claims)} of {len(claims)} reads"
    # the liar was found out by block sync (its claim ignored), not believed forever
    assert sum(b.counter(i, "sync_peers_distrusted") for i in HONEST) >= 1
