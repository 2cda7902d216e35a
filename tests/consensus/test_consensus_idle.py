"""The idle proposer (heartbeat pacing, not part of Algorithm 1): with nothing to propose, the
round-0 proposer waits until `idle_interval` after the last block, or until transactions come."""

from __future__ import annotations

import dataclasses

from consensus_harness import KEYS, PARAMS, T0, Bench

from ads_ledger.consensus.core import Core

IDLE = 1000


def idle_proposer(pending: list[bool]) -> Bench:
    b = Bench()
    idx = [k.pub for k in KEYS].index(b.proposers[0])
    b = Bench(me=idx)
    b.app.has_pending_txs = lambda: pending[0]  # type: ignore[attr-defined]
    params = dataclasses.replace(PARAMS, idle_interval_ms=IDLE)
    b.core = Core(chain_id=b.core.chain_id, signer=b.signer, app=b.app, wal=b.wal, height=1,
                  params=params, verify=b.core._verify)  # fmt: skip
    return b


def test_idle_proposer_waits_for_the_heartbeat() -> None:
    b = idle_proposer([False])
    last = b.app.last_block_time()
    b.core.start(last + 100)
    assert b.core.outbox() == []  # nothing yet
    due = last + IDLE
    assert b.core.next_deadline() == due
    b.core.on_timeout(due)
    out = b.core.outbox()
    assert out and out[0].proposal.round == 0  # type: ignore[union-attr]
    assert out[0].block.header.time == due  # type: ignore[union-attr]


def test_transactions_end_the_wait() -> None:
    pending = [False]
    b = idle_proposer(pending)
    t = b.app.last_block_time() + 100
    b.core.start(t)
    assert b.core.outbox() == []
    pending[0] = True
    b.core.txs_available(t + 10)
    out = b.core.outbox()
    assert out and out[0].block.header.time == t + 10  # type: ignore[union-attr]
    b.core.txs_available(t + 20)  # a second signal proposes nothing more
    assert not [m for m in b.core.outbox() if hasattr(m, "proposal")]


def test_others_allow_for_the_wait_in_round_0_only() -> None:
    b = Bench()
    params = dataclasses.replace(PARAMS, idle_interval_ms=IDLE)
    b.core = Core(chain_id=b.core.chain_id, signer=b.signer, app=b.app, wal=b.wal, height=1,
                  params=params, verify=b.core._verify)  # fmt: skip
    b.core.start(T0)
    assert b.core.next_deadline() == T0 + PARAMS.timeout_propose(0) + IDLE


def test_no_wait_without_the_setting_or_with_pending_txs() -> None:
    b = idle_proposer([True])
    b.core.start(b.app.last_block_time() + 100)
    assert b.core.outbox()  # pending txs: propose at once
