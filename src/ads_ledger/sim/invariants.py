"""What must hold in every run, checked as the run goes (violations are collected).

- agreement: no two correct nodes decide different blocks at a height;
- validity: every decided block passes `validate_block` of a reference application that
  follows the decided chain, and its commit carries >2/3 of the height's power;
- time (PBTS): no decided block is from the future: its time is at most the fastest
  correct clock plus the timeliness precision (a polka needs f+1 correct, timely prevotes);
- no double sign: no correct validator key signs two different proposals or votes for
  the same (height, round, type) — every released message is collected;
- no amnesia: after a crash and WAL replay, a node's state holds every message it had
  released at its current height; its double-sign guard never has to refuse it;
- no regression: a node's (height, round, step) never goes back while it is up (world.py);
- liveness (checked by the runner at the end): every correct node reaches the target.
Twinned and Byzantine validators (sim/byzantine.py) are faulty: their keys are exempt
from all of this, and only correct nodes' decisions count.
"""

from __future__ import annotations

from ads_ledger.consensus.messages import Message, ProposalMessage, VoteMessage
from ads_ledger.core.types import Block, Commit
from ads_ledger.sim.app import ToyApp

__all__ = ["Checker"]


class Checker:
    def __init__(self, reference: ToyApp, byzantine_keys: set[bytes]) -> None:
        self.reference = reference
        self.byzantine = byzantine_keys
        self.violations: list[str] = []
        self.decided: dict[int, bytes] = {}
        self._signed: dict[tuple[bytes, int, int, int], bytes] = {}
        self.released: dict[int, list[tuple[int, bytes]]] = {}  # node -> (height, bytes)

    def fail(self, what: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(what)

    def on_release(self, node: int, key: bytes, msgs: list[Message]) -> None:
        """Messages a node put on the wire (its outbox)."""
        if key in self.byzantine:
            return
        rel = self.released.setdefault(node, [])
        for m in msgs:
            if isinstance(m, VoteMessage):
                v = m.vote
                k = (v.validator, v.type, v.height, v.round)
                body = m.vote.block or b"nil"
            elif isinstance(m, ProposalMessage):
                p = m.proposal
                k = (p.proposer, 0, p.height, p.round)
                body = p.block + p.pol_round.to_bytes(8, "big", signed=True)
            else:
                continue
            if k[0] in self.byzantine:
                continue  # a correct node may forward a Byzantine validator's votes
            if k[0] == key:  # forwarded votes of others are not ours to remember
                rel.append((m.height, m.encoded))
            prev = self._signed.setdefault(k, body)
            if prev != body:
                self.fail(f"double sign: node {node} signed two messages for (h, r, type) = "
                          f"{k[2]}, {k[3]}, {k[1]}")  # fmt: skip

    def on_decision(self, node: int, key: bytes, block: Block, commit: Commit,
                    latest_time: int | None = None) -> None:  # fmt: skip
        """`latest_time`: the latest header time a correct proposer's clock, plus the
        timeliness precision, allows at this moment (None: not checked)."""
        if key in self.byzantine:
            return
        h = block.header.height
        if latest_time is not None and block.header.time > latest_time:
            self.fail(f"time: node {node} decided a block at height {h} whose time is "
                      f"{block.header.time - latest_time} ms beyond any correct clock")  # fmt: skip
        bid = block.block_id()
        first = self.decided.setdefault(h, bid)
        if first != bid:
            self.fail(f"agreement: node {node} decided {bid.hex()[:12]} at height {h}, "
                      f"another correct node {first.hex()[:12]}")  # fmt: skip
            return
        ref = self.reference
        if ref.height == h - 1:
            if not ref.validate_block(block):
                self.fail(f"validity: the block decided at height {h} is not valid")
                return
            ref.commit_block(block, commit)
            if not ref.commit_ok(commit, h + 1):
                self.fail(f"validity: the commit for height {h} does not carry >2/3 power")

    def on_recovered(self, node: int, key: bytes, height: int, own: tuple[Message, ...]) -> None:
        if key in self.byzantine:
            return
        have = {m.encoded for m in own}
        for h, enc in self.released.get(node, []):
            if h == height and enc not in have:
                self.fail(f"amnesia: node {node} released a message at height {height} "
                          "that its recovered state does not hold")  # fmt: skip
                return

    def on_stats(self, node: int, key: bytes, stats: dict[str, int]) -> None:
        if key in self.byzantine:
            return
        for bad in ("sign_refused", "replay_divergence"):
            if stats.get(bad):
                self.fail(f"{bad}: correct node {node} ({stats[bad]} times)")
