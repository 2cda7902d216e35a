"""Transaction intake (node/intake.py): the verify-and-admit core, called without trio."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, Commit, Vote
from ads_ledger.node.api.backend import Refusal
from ads_ledger.node.intake import Intake, TxIntake
from ads_ledger.node.ledger import Ledger
from ads_ledger.node.mempool import Mempool
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.genesis import Genesis
from ads_ledger.testing import device_attestation

CHAIN = "intake-test"
T0 = int(time.time() * 1000) - 60_000
VALS = [SigningKey(bytes([0x61 + i]) * 32) for i in range(4)]
GOV = [SigningKey(bytes([0x71 + i]) * 32) for i in range(3)]


def _gov(nonce: int, *cosigners: SigningKey, signer: SigningKey = GOV[0]) -> bytes:
    body = {"action": "members.set", "args": {"members": [k.pub for k in GOV], "threshold": 2}}
    return make_envelope(CHAIN, "gov", signer, nonce, body, cosigners)


class _Host:
    """The node's side: the ledger proposes from and commits under the intake."""

    def __init__(self) -> None:
        self.commit_guard = threading.RLock()
        self.intake: TxIntake | None = None

    def reap(self, max_bytes: int, max_txs: int) -> list[bytes]:
        assert self.intake is not None
        return self.intake.reap(max_bytes, max_txs)

    def has_pending_txs(self) -> bool:
        assert self.intake is not None
        return self.intake.has_pending_txs()

    def after_commit(self, block: Any, txids: list[bytes]) -> None:
        assert self.intake is not None
        self.intake.after_commit(block, txids)


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[TxIntake]:
    g = Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS],
                members=[k.pub for k in GOV], threshold=2, anchors=[])  # fmt: skip
    host = _Host()
    ledger = Ledger.open(tmp_path / "db", g, host=host)
    counters = {"txs_received": 0, "txs_rejected": 0}
    host.intake = TxIntake(CHAIN, ledger, Mempool(max_txs=100, max_bytes=1 << 20), lock=host.commit_guard,
                           counters=counters, now=lambda: int(time.time() * 1000))  # fmt: skip
    yield host.intake
    ledger.close()


def admit(intake: TxIntake, *raws: bytes) -> tuple[list[Intake], bool]:
    items = [intake.parse(r) for r in raws]
    return items, intake.verify_and_admit(items)


def test_a_valid_tx_is_admitted_once_and_signals_an_empty_mempool(intake: TxIntake) -> None:
    raw = _gov(1, GOV[1])
    (it,), signal = admit(intake, raw)
    assert it.result is True and signal and intake.has_pending_txs()
    assert intake.counters["txs_received"] == 1
    (again,), signal = admit(intake, raw)
    assert again.result is False and not signal  # already known; the mempool was not empty
    (dup1, dup2), _ = admit(intake, _gov(2, GOV[1]), _gov(2, GOV[1]))
    assert dup1.result is True and dup2.result is False  # the same tx twice in one batch
    assert intake.reap(1 << 20, 10) == [raw, _gov(2, GOV[1])]


def test_refusals_carry_their_codes(intake: TxIntake) -> None:
    with pytest.raises(Refusal) as e:
        intake.parse(b"\x01not an envelope")
    assert e.value.code == "malformed"
    obj = codec.decode(_gov(1, GOV[1]))
    obj["auth"][1][1] = bytes(64)
    outsider = SigningKey(b"\x09" * 32)
    items, signal = admit(intake, codec.encode(obj), _gov(1), _gov(1, outsider), _gov(3, GOV[1]))
    codes = [it.result.code if isinstance(it.result, Refusal) else it.result for it in items]
    assert codes == ["bad_signature", "quorum", "not_member", "bad_nonce"]
    assert not signal and not intake.has_pending_txs()
    assert intake.counters["txs_rejected"] == 4 and intake.counters["txs_received"] == 0


def test_body_shape_and_chain_bounds_are_refused_before_any_signature(intake: TxIntake) -> None:
    """A crafted certificate chain costs no signature check: its body is refused at parse, with a
    forged envelope signature that would otherwise have been the reason."""
    dev = SigningKey(b"\x0a" * 32)
    att = device_attestation(dev.pub)
    big = {**att, "issuer_certs": att["issuer_certs"] * 5}
    obj = codec.decode(make_envelope(CHAIN, "cp.propose", dev, 1, {"owner": dev.pub, "device": big}))
    obj["auth"][0][1] = bytes(64)
    with pytest.raises(Refusal) as e:
        intake.parse(codec.encode(obj))
    assert e.value.code == "chain_too_large"
    with pytest.raises(Refusal) as e:
        intake.parse(make_envelope(CHAIN, "grant", dev, 1, {"cp": dev.pub}))
    assert e.value.code == "malformed"


def test_a_committed_tx_leaves_the_mempool_and_is_not_admitted_again(intake: TxIntake) -> None:
    raw1, raw2 = _gov(1, GOV[1]), _gov(2, GOV[1])
    admit(intake, raw1, raw2)
    ledger = intake.ledger
    block = ledger.propose_block(1, 0, T0 + 1000, VALS[0].pub, None)
    assert block.txs == (raw1, raw2)
    votes = [Vote(PRECOMMIT, 1, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
    ledger.commit_block(block, Commit.from_votes(ledger.validators_at(1), votes))  # → after_commit
    assert not intake.has_pending_txs() and intake.tip == (1, T0 + 1000)
    assert intake.committed_txids[0] == 1 and len(intake.committed_txids[1]) == 2
    (it,), _ = admit(intake, raw1)
    assert it.result is False  # in a block already
    (nxt,), signal = admit(intake, _gov(3, GOV[1]))
    assert nxt.result is True and signal  # the committed nonce moved on


def test_gossip_batches_are_bounded(intake: TxIntake) -> None:
    sent: list[tuple[str, list[bytes]]] = []
    t = TxIntake(CHAIN, intake.ledger, intake.mempool, lock=intake.lock, counters={},
                 now=intake.now, broadcast=lambda mtype, body: sent.append((mtype, body)))  # fmt: skip
    t.gossip([b"x" * 600_000, b"y" * 600_000, b"z"])
    assert [len(b) for _, b in sent] == [1, 2] and {m for m, _ in sent} == {"txs"}
    sent.clear()
    t.gossip([b"t"] * 2500)
    assert [len(b) for _, b in sent] == [1000, 1000, 500]


@pytest.mark.parametrize("deferred", [False, True])
def test_recheck_after_a_commit_drops_what_the_block_made_invalid(intake: TxIntake, deferred: bool) -> None:
    """A pending gov tx of a member the block removed fails its recheck: inside after_commit,
    or (the node's way) left due by the commit and run by `recheck_now` off consensus's path."""
    shrink = make_envelope(CHAIN, "gov", GOV[0], 1, {"action": "members.set", "args": {
        "members": sorted([GOV[0].pub, GOV[1].pub]), "threshold": 2}}, [GOV[1]])  # fmt: skip
    admit(intake, shrink)
    ledger = intake.ledger
    block = ledger.propose_block(1, 0, T0 + 1000, VALS[0].pub, None)
    assert block.txs == (shrink,)
    (late,), _ = admit(intake, _gov(1, GOV[0], signer=GOV[2]))  # valid now: GOV[2] is a member
    assert late.result is True
    intake.defer_recheck = deferred
    votes = [Vote(PRECOMMIT, 1, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
    ledger.commit_block(block, Commit.from_votes(ledger.validators_at(1), votes))
    if deferred:
        assert intake.recheck_due and intake.has_pending_txs()  # the commit did not wait for it
        assert intake.recheck_now() == 1 and not intake.recheck_due
        assert intake.recheck_now() == 0  # one recheck per due
    assert not intake.has_pending_txs()
