"""The sans-IO Tendermint core: Algorithm 1 of "The latest gossip on BFT consensus".

Buchman, Kwon, Milosevic (arXiv 1807.04938), rule by rule; line numbers (L22, L36, …)
follow the paper's Algorithm 1. Not CometBFT's variant: a node locks only at L36, never
unlocks, prevotes a re-proposed value under L28 with its valid round, skips rounds on f+1
messages (L55), and has no commit wait.

Inputs: `start(now)`, `on_message(msg, now)`, `on_timeout(now)`; outputs are pulled:
`outbox()` (messages to broadcast), `next_deadline()`, `decisions()` ((block, commit)
pairs), `evidence()`. The core calls the Application (valid/getValue/commit), the Signer
and the WAL; it never reads a clock, opens a socket or raises on a peer's input: bad
messages are dropped and counted in `stats`.

Durability (DESIGN §6): every accepted input is appended to the WAL before it changes
state; our own proposals and votes are appended with sync=True before they reach the
outbox; `end_height(h)` follows `commit_block`. `recover(records)` replays the records
of the height in progress to the very same state; our own messages come back from the log.

Messages for height h+1 that arrive while still at h are kept (up to
`params.next_height_buffer`) and processed on entering h+1; other heights are dropped
(a node behind catches up through a `CommitMessage`, which decides its height directly).

Why one module of ~670 lines: Algorithm 1's rules read and write one round state (step,
locks, valid value, timers); split across files they would share it by reference. The
message log and tallies (height_log, votes), proposer selection and timeouts are apart.
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import Callable, Sequence

from ads_ledger.consensus.height_log import ACCEPTED, HeightLog, Proposed
from ads_ledger.consensus.messages import (
    CommitMessage,
    Message,
    ProposalMessage,
    VoteMessage,
    decode_record,
    encode_record,
)
from ads_ledger.consensus.ports import WAL, Application, Signer
from ads_ledger.consensus.proposer import ProposerPriorities, priorities_for_height
from ads_ledger.consensus.timeouts import ConsensusParams
from ads_ledger.core.crypto import verify as crypto_verify
from ads_ledger.core.errors import AdsError
from ads_ledger.core.types import (
    PRECOMMIT,
    PREVOTE,
    Block,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
)

__all__ = ["Core", "MUTANTS", "STEP_PROPOSE", "STEP_PREVOTE", "STEP_PRECOMMIT", "RecoveryError"]

# Test-only planted bugs, to prove the simulator catches them. Empty in production.
#   "skip_lock_check"      L22/L28 ignore the lock (prevote any valid proposal)
#   "two_thirds_not_more"  quorum is power ≥ ⌊2/3·total⌋ instead of > 2/3
#   "vote_before_wal"      own votes are released before they are durable in the WAL
#   "unlock_on_nil"        a +2/3 nil prevote quorum releases the lock (CometBFT's old rule)
# and one weakened guard per `upon` rule, named after its line (sim/mutants.py lists them all
# with their class: safety, liveness-only or equivalent).
MUTANTS: set[str] = set()

STEP_PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT = 0, 1, 2
_TIMEOUT_PROPOSE, _TIMEOUT_PREVOTE, _TIMEOUT_PRECOMMIT = 0, 1, 2
_TIMEOUT_IDLE = 3  # not in Alg.1: an idle round-0 proposer's wait for transactions (heartbeat)

Verify = Callable[[bytes, bytes, bytes], bool]


class RecoveryError(AdsError):
    """The WAL records cannot be replayed (damaged, or not from this height): ours to fix."""


class Core:
    """One validator's (or observer's) consensus state machine for a chain.

    `height` is the first undecided height (stored height + 1). `priorities` are the
    proposer priorities at the start of `height` (computed from height 1 if None: O(height)).
    `last_commit` is the commit of height−1 (None at height 1), put into our proposals.
    `verify(pub, sig, msg)` checks signatures (defaults to strict Ed25519).
    """

    def __init__(
        self,
        *,
        chain_id: str,
        signer: Signer,
        app: Application,
        wal: WAL,
        height: int,
        params: ConsensusParams | None = None,
        priorities: ProposerPriorities | None = None,
        last_commit: Commit | None = None,
        verify: Verify = crypto_verify,
    ) -> None:
        if height < 1:
            raise ValueError("heights start at 1")
        self.chain_id = chain_id
        self.signer = signer
        self.app = app
        self.wal = wal
        self._base_params = self.params = params or ConsensusParams()
        self.me = signer.pub
        self.last_commit = last_commit
        self._verify = verify
        self.priorities = priorities or priorities_for_height(app.validators_at, height)
        self.stats: dict[str, int] = {}
        self.started = False
        self._replaying = False
        self._own_log: dict[tuple[int, int, int], Message] = {}
        self._outbox: list[Message] = []
        self._decisions: list[tuple[Block, Commit]] = []
        self._evidence: list[DuplicateVoteEvidence] = []
        self._next_buffer: list[Message] = []
        self._pending: list[Message] = []
        self._timer_seq = 0
        self._idle_round = -1
        self._reset_height(height)

    # ------------------------------------------------------------------ per-height state

    def _reset_height(self, height: int) -> None:
        """Alg.1 L1–9 and L54: fresh round state, message log and timers for `height`."""
        self.height = height
        self.valset = self.app.validators_at(height)
        on_chain = getattr(self.app, "consensus_params_at", None)
        if on_chain is not None:  # timing in force at this height (gov/params after h−2)
            b = self._base_params
            self.params = replace(on_chain(height), next_height_buffer=b.next_height_buffer,
                                  max_rounds_ahead=b.max_rounds_ahead)  # fmt: skip
        self._valset_hash = self.valset.hash()
        self.round = 0
        self.step = STEP_PROPOSE
        self.locked_value: Block | None = None
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self.decided = False
        self.log = HeightLog(self.chain_id, self.valset, self._verify)
        self._fired: set[tuple[int, int]] = set()  # ("first time" rules, round)
        self._timers: list[tuple[int, int, int, int, int]] = []  # deadline, seq, kind, h, r
        self._valid_cache: dict[bytes, bool] = {}
        self._proposer_cache: dict[int, bytes] = {}
        self._own: list[Message] = []

    # ------------------------------------------------------------------ pulled outputs

    def outbox(self) -> list[Message]:
        """Messages to broadcast to every peer, in order (drained)."""
        out, self._outbox = self._outbox, []
        return out

    def decisions(self) -> list[tuple[Block, Commit]]:
        """Decided (block, commit) pairs since the last call, in height order (drained)."""
        out, self._decisions = self._decisions, []
        return out

    def evidence(self) -> list[DuplicateVoteEvidence]:
        """Equivocations seen since the last call (drained)."""
        out, self._evidence = self._evidence + self.log.evidence, []
        self.log.evidence = []
        return out

    def next_deadline(self) -> int | None:
        """The earliest pending timeout (ms, our clock), or None."""
        return self._timers[0][0] if self._timers else None

    def own_messages(self) -> tuple[Message, ...]:
        """Our signed proposals and votes at the current height, in signing order."""
        return tuple(self._own)

    def retransmit(self) -> list[Message]:
        """What to gossip again: our messages of this and the previous round, and the
        proposal and prevotes behind our valid value (peers need them for L28)."""
        out: list[Message] = [m for m in self._own if m.round >= self.round - 1]
        if self.valid_value is not None:
            vid = self.valid_value.block_id()
            for p in self.log.proposals.get(self.valid_round, []):
                if p.block_id == vid:
                    out.append(p.msg)
                    break
            tally = self.log.prevotes.get(self.valid_round)
            if tally is not None:
                # ours too, unless it is among our messages of this and the previous round
                mine = self.valid_round < self.round - 1
                out.extend(VoteMessage(v) for v in tally.for_block(vid)
                           if mine or v.validator != self.me)  # fmt: skip
        return out

    def proposer(self, round: int) -> bytes:
        """proposer(h_p, round): weighted round-robin (see `proposer.py`)."""
        p = self._proposer_cache.get(round)
        if p is None:
            p = self._proposer_cache[round] = self.priorities.proposer_at(round)
        return p

    # ------------------------------------------------------------------ inputs

    def start(self, now: int) -> None:
        """Begin the height: StartRound(0) (Alg.1 L10). A second call does nothing."""
        if self.started:
            return
        self.started = True
        self._log(encode_record("start", now))
        self._start_round(0, now)
        self._run(now)

    def on_message(self, msg: Message, now: int) -> None:
        """A message from the network. Never raises on bad input: drops and counts it."""
        if not self.started:
            self._buffer(msg, self._pending)  # kept until start()
            return
        self._handle(msg, now)
        self._run(now)

    def on_timeout(self, now: int) -> None:
        """Fire every timeout due at `now` (Alg.1 L57, L61, L65)."""
        due = []
        while self._timers and self._timers[0][0] <= now:
            due.append(heapq.heappop(self._timers))
        if not due:
            return
        self._log(encode_record("tick", now))
        for _, _, kind, h, r in due:
            if h != self.height:
                continue
            if kind == _TIMEOUT_IDLE:
                self._end_idle_wait(r, now)
            elif kind == _TIMEOUT_PROPOSE:
                self._l57_on_timeout_propose(r, now)
            elif kind == _TIMEOUT_PREVOTE:
                self._l61_on_timeout_prevote(r, now)
            else:
                self._l65_on_timeout_precommit(r, now)
        self._run(now)

    def recover(self, records: Sequence[bytes]) -> None:
        """Replay the WAL records of the height in progress (as `WAL.replay()` returns them)
        into a fresh core; it ends in the state it had when the last record was written.

        Our own signed messages are taken from the log, never re-signed differently.
        Afterwards the outbox holds our messages to gossip again. Raises RecoveryError if a
        record is damaged or belongs to another height."""
        if self.started:
            raise RecoveryError("recover() must run on a fresh core")
        try:
            decoded = [decode_record(r) for r in records]
        except AdsError as e:
            raise RecoveryError(f"unreadable WAL record: {e}") from e
        for rec in decoded:
            if rec.kind == "own" and rec.message is not None:
                m = rec.message
                if m.height != self.height:
                    raise RecoveryError(f"WAL holds an own message of height {m.height}")
                self._own_log[_own_key(m)] = m
        self._replaying = True
        try:
            for rec in decoded:
                if rec.kind == "start":
                    self.start(rec.now)
                elif rec.kind == "in" and rec.message is not None:
                    self.on_message(rec.message, rec.now)
                elif rec.kind == "tick":
                    self.on_timeout(rec.now)
        finally:
            self._replaying = False
            self._own_log.clear()
        self._outbox = self.retransmit() if self.started else []

    # ------------------------------------------------------------------ message intake

    def _count(self, what: str) -> None:
        if what != "ok":
            self.stats[what] = self.stats.get(what, 0) + 1

    def _buffer(self, msg: Message, into: list[Message] | None = None) -> None:
        buf = self._next_buffer if into is None else into
        if len(buf) >= self.params.next_height_buffer:
            self._count("dropped_buffer_full")
        else:
            buf.append(msg)
            self._count("buffered")

    def _log(self, record: bytes, *, sync: bool = False) -> None:
        if not self._replaying:
            self.wal.append(record, sync=sync)

    def _handle(self, msg: Message, now: int) -> None:
        h = msg.height
        if h != self.height:
            if h == self.height + 1:
                self._buffer(msg)
            else:
                self._count("old_height" if h < self.height else "future_height")
            return
        if msg.round > self.round + self.params.max_rounds_ahead:
            self._count("round_too_far")
            return
        if isinstance(msg, VoteMessage):
            self._handle_vote(msg, now)
        elif isinstance(msg, ProposalMessage):
            self._handle_proposal(msg, now)
        elif isinstance(msg, CommitMessage):
            self._handle_commit(msg, now)
        else:
            self._count("unknown_message")

    def _handle_vote(self, msg: VoteMessage, now: int) -> None:
        code = self.log.admit_vote(msg.vote)
        self._count(code)
        if code in ACCEPTED:
            self._log(encode_record("in", now, msg))
            self.log.add_vote(msg.vote)

    def _handle_proposal(self, msg: ProposalMessage, now: int) -> None:
        code = self.log.admit_proposal(msg, self.proposer(msg.round))
        self._count(code)
        if code in ACCEPTED:
            self._log(encode_record("in", now, msg))
            self.log.add_proposal(msg, now)

    def _handle_commit(self, msg: CommitMessage, now: int) -> None:
        c = msg.commit
        if self.decided:
            self._count("old_height")
            return
        if c.block != msg.block_id:
            self._count("bad_block")
            return
        power = self.log.commit_power(c)
        if power is None or power < self._quorum():
            self._count("bad_commit")
            return
        if not self._valid(msg.block):  # counted as invalid_block by _valid
            return
        self._log(encode_record("in", now, msg))
        # Alg.1 L49 on any round: a valid block with +2/3 precommits is decided
        self._decide(msg.block, c, now)

    # ------------------------------------------------------------------ predicates

    def _quorum(self) -> int:
        """2f+1: power strictly above 2/3 of the total."""
        if "two_thirds_not_more" in MUTANTS:
            return self.valset.total_power * 2 // 3
        return self.valset.quorum()

    def _valid(self, block: Block) -> bool:
        """valid(v): right height, chain and validator set, time after the last block, and
        the Application's own checks (parent, roots, re-execution). Cached per block id."""
        bid = block.block_id()
        ok = self._valid_cache.get(bid)
        if ok is None:
            hd = block.header
            ok = (hd.height == self.height and hd.chain_id == self.chain_id
                  and hd.validators == self._valset_hash
                  and hd.time > self.app.last_block_time()
                  and self.app.validate_block(block))  # fmt: skip
            self._valid_cache[bid] = ok
            if not ok:  # once per block id: a Byzantine proposer or peer is visible in /metrics
                self._count("invalid_block")
        return ok

    def _timely(self, prop: Proposed) -> bool:
        """The proposal's time is within `precision` of our clock when it arrived, allowing
        `message_delay` for building and carrying it (PBTS's timely window)."""
        late = prop.received - prop.msg.block.header.time
        p = self.params
        return -p.precision_ms <= late <= p.message_delay_ms + p.precision_ms

    def _lock_allows(self, block_id: bytes, pol_round: int) -> bool:
        """L23 (pol_round −1) and L29: lockedRound = −1 (≤ vr) or lockedValue = v."""
        if "skip_lock_check" in MUTANTS:
            return True
        if self.locked_value is not None and self.locked_value.block_id() == block_id:
            return True
        return self.locked_round <= pol_round

    # ------------------------------------------------------------------ Algorithm 1

    def _run(self, now: int) -> None:
        """Apply `upon` rules until none fires; then feed buffered next-height messages."""
        while True:
            while self.started and self._upon_rules(now):
                pass
            if not self._pending:
                return
            self._handle(self._pending.pop(0), now)

    def _upon_rules(self, now: int) -> bool:
        return (self._l49_decide(now) or self._l55_round_skip(now)
                or self._l22_fresh_proposal(now) or self._l28_proposal_with_pol(now)
                or self._l36_polka_for_value(now) or self._l44_polka_for_nil(now)
                or self._l34_any_polka(now) or self._l47_any_precommits(now))  # fmt: skip

    def _start_round(self, round: int, now: int) -> None:
        """Alg.1 L11–21 StartRound: the proposer proposes validValue or a new value."""
        self.round = round
        self.step = STEP_PROPOSE
        self._idle_round = -1
        if self.proposer(round) == self.me:
            due = self._idle_until(round, now)
            if due is None:
                self._propose(now)
            else:  # nothing to propose yet: wait for transactions or the heartbeat
                self._idle_round = round
                self._schedule(due, _TIMEOUT_IDLE, round)
        # L21 (for everyone: a proposer whose own proposal was refused must not stall);
        # round 0 also allows for an idle proposer's heartbeat wait
        extra = self.params.idle_interval_ms if round == 0 else 0
        self._schedule(now + self.params.timeout_propose(round) + extra, _TIMEOUT_PROPOSE, round)

    def _idle_until(self, round: int, now: int) -> int | None:
        """When an idle round-0 proposer should propose (None: now). Empty blocks still come
        at least every `idle_interval_ms`, so headers carry fresh time (DESIGN §6 heartbeat)."""
        p = self.params
        if round != 0 or p.idle_interval_ms <= 0 or self.valid_value is not None:
            return None
        if self._replaying and (0, self.height, round) in self._own_log:
            return None  # we had proposed before the crash: the WAL holds it
        pending = getattr(self.app, "has_pending_txs", None)
        if pending is None or pending():
            return None
        due = self.app.last_block_time() + p.idle_interval_ms
        return due if due > now else None

    def txs_available(self, now: int) -> None:
        """Input: the application has transactions to propose (ends an idle wait)."""
        if self.started and self._idle_round == self.round:
            self._end_idle_wait(self.round, now)
            self._run(now)

    def _end_idle_wait(self, round: int, now: int) -> None:
        if self._idle_round == round == self.round and self.step == STEP_PROPOSE:
            self._idle_round = -1
            self._propose(now)

    def _propose(self, now: int) -> None:
        """L14–19: re-propose validValue with validRound, else getValue() with −1."""
        own = self._own_log.get((0, self.height, self.round)) if self._replaying else None
        if isinstance(own, ProposalMessage):
            msg = own
        else:
            if self.valid_value is not None:
                block, pol = self.valid_value, self.valid_round
            else:
                time = max(now, self.app.last_block_time() + 1)  # strictly after the parent
                block = self.app.propose_block(self.height, self.round, time, self.me,
                                               self.last_commit)  # fmt: skip
                pol = -1
            unsigned = Proposal(self.height, self.round, block.block_id(), pol, self.me)
            try:
                signed = self.signer.sign_proposal(self.chain_id, unsigned)
            except AdsError:  # the double-sign guard said no: stay silent this round
                self._count("sign_refused")
                return
            msg = ProposalMessage(signed, block)
            # not muted during replay: a message re-derived there was never logged
            self.wal.append(encode_record("own", now, msg), sync=True)
            self._outbox.append(msg)
        self._own.append(msg)
        self.log.add_proposal(msg, now)

    def _send_vote(self, vtype: int, block_id: bytes | None, now: int) -> None:
        """Broadcast our vote: signed, durable in the WAL, then out (and counted by us)."""
        key = (vtype, self.height, self.round)
        own = self._own_log.get(key) if self._replaying else None
        if isinstance(own, VoteMessage):
            if own.vote.block != block_id:
                self._count("replay_divergence")
            msg = own
        else:
            unsigned = Vote(vtype, self.height, self.round, block_id, self.me)
            try:
                signed = self.signer.sign_vote(self.chain_id, unsigned)
            except AdsError:
                self._count("sign_refused")
                return
            msg = VoteMessage(signed)
            if "vote_before_wal" in MUTANTS:
                self._outbox.append(msg)
                self.wal.append(encode_record("own", now, msg), sync=False)
            else:
                self.wal.append(encode_record("own", now, msg), sync=True)  # even in replay
                self._outbox.append(msg)
        self._own.append(msg)
        self.log.add_vote(msg.vote)

    def _schedule(self, deadline: int, kind: int, round: int) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, kind, self.height, round))

    def _l22_fresh_proposal(self, now: int) -> bool:
        """L22: PROPOSAL(h, round, v, −1) from the proposer while step = propose: prevote
        id(v) if valid(v), timely, and (lockedRound = −1 or lockedValue = v); else nil."""
        if self.step != STEP_PROPOSE:
            return False
        for prop in self.log.proposals.get(self.round, ()):
            if prop.msg.proposal.pol_round != -1 and "l22_trust_pol_round" not in MUTANTS:
                continue
            ok = (self._valid(prop.msg.block) and self._timely(prop)
                  and self._lock_allows(prop.block_id, -1))  # fmt: skip
            if MUTANTS:
                ok = self._mutant_l22(prop)
            self._send_vote(PREVOTE, prop.block_id if ok else None, now)
            self.step = STEP_PREVOTE
            return True
        return False

    def _l28_proposal_with_pol(self, now: int) -> bool:
        """L28: PROPOSAL(h, round, v, vr) and 2f+1 PREVOTE(h, vr, id(v)), step = propose,
        0 ≤ vr < round: prevote id(v) if valid(v) and (lockedRound ≤ vr or lockedValue = v)."""
        if self.step != STEP_PROPOSE:
            return False
        quorum = self._quorum()
        for prop in self.log.proposals.get(self.round, ()):
            vr = prop.msg.proposal.pol_round
            if not 0 <= vr < self.round and not (vr >= 0 and "l28_vr_not_below_round" in MUTANTS):
                continue
            tally = self.log.prevotes.get(vr)
            if tally is None or tally.power_for(prop.block_id) < quorum:
                if "l28_skip_polka" not in MUTANTS:
                    continue
            ok = self._valid(prop.msg.block) and self._lock_allows(prop.block_id, vr)
            if "l28_ignore_lock" in MUTANTS:
                ok = self._valid(prop.msg.block)
            self._send_vote(PREVOTE, prop.block_id if ok else None, now)
            self.step = STEP_PREVOTE
            return True
        return False

    def _l34_any_polka(self, now: int) -> bool:
        """L34: 2f+1 PREVOTE(h, round, *) with step = prevote, the first time: schedule
        OnTimeoutPrevote."""
        tally = self.log.prevotes.get(self.round)
        flag = (34, self.round)
        need = 1 if "l34_any_prevote" in MUTANTS else self._quorum()
        if (self.step != STEP_PREVOTE or flag in self._fired or tally is None
                or tally.total < need):  # fmt: skip
            return False
        self._fired.add(flag)
        self._schedule(now + self.params.timeout_prevote(self.round), _TIMEOUT_PREVOTE, self.round)
        return True

    def _l36_polka_for_value(self, now: int) -> bool:
        """L36: PROPOSAL(h, round, v, *) and 2f+1 PREVOTE(h, round, id(v)), valid(v),
        step ≥ prevote, the first time: if step = prevote, lock v and precommit id(v);
        in any case validValue, validRound = v, round."""
        flag = (36, self.round)
        tally = self.log.prevotes.get(self.round)
        if self.step < STEP_PREVOTE or flag in self._fired or tally is None:
            return False
        quorum = self._quorum()
        if "l36_lock_on_f_plus_1" in MUTANTS:
            quorum = self.valset.one_third_plus()
        for prop in self.log.proposals.get(self.round, ()):
            if tally.power_for(prop.block_id) < quorum:
                continue
            if not self._valid(prop.msg.block) and "l36_ignore_valid" not in MUTANTS:
                continue
            self._fired.add(flag)
            if self.step == STEP_PREVOTE:
                # Alg.1 L38–41: the only place a lock is taken
                self.locked_value, self.locked_round = prop.msg.block, self.round
                self._send_vote(PRECOMMIT, prop.block_id, now)
                self.step = STEP_PRECOMMIT
            self.valid_value, self.valid_round = prop.msg.block, self.round  # L42–43
            return True
        return False

    def _l44_polka_for_nil(self, now: int) -> bool:
        """L44: 2f+1 PREVOTE(h, round, nil) with step = prevote: precommit nil."""
        tally = self.log.prevotes.get(self.round)
        need = 1 if "l44_nil_on_any" in MUTANTS else self._quorum()
        if self.step != STEP_PREVOTE or tally is None or tally.power_for(None) < need:
            return False
        if "unlock_on_nil" in MUTANTS:
            self.locked_value, self.locked_round = None, -1
        self._send_vote(PRECOMMIT, None, now)
        self.step = STEP_PRECOMMIT
        return True

    def _l47_any_precommits(self, now: int) -> bool:
        """L47: 2f+1 PRECOMMIT(h, round, *), the first time: schedule OnTimeoutPrecommit."""
        tally = self.log.precommits.get(self.round)
        flag = (47, self.round)
        need = 1 if "l47_any_precommit" in MUTANTS else self._quorum()
        if flag in self._fired or tally is None or tally.total < need:
            return False
        self._fired.add(flag)
        self._schedule(now + self.params.timeout_precommit(self.round), _TIMEOUT_PRECOMMIT,
                       self.round)  # fmt: skip
        return True

    def _l49_decide(self, now: int) -> bool:
        """L49: PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) for any round r, not
        yet decided, valid(v): decide v. (The block may come from any proposal at this
        height with id(v): the id binds its content.)"""
        if self.decided:
            return False
        quorum = self._quorum()
        if "l49_decide_on_f_plus_1" in MUTANTS:
            quorum = self.valset.one_third_plus()
        for r, tally in self.log.precommits.items():
            for bid in tally.blocks_with(quorum):
                block = self.log.blocks.get(bid)
                if block is None:
                    continue
                if not self._valid(block) and "l49_ignore_valid" not in MUTANTS:
                    continue
                commit = Commit.from_votes(self.valset, tally.for_block(bid))
                self._decide(block, commit, now)
                return True
        return False

    def _decide(self, block: Block, commit: Commit, now: int) -> None:
        """L50–54: decision[h] = v; store it; h+1; reset; StartRound(0)."""
        self.decided = True
        self.app.commit_block(block, commit)
        self.wal.end_height(self.height)
        self._decisions.append((block, commit))
        self.last_commit = commit
        nxt = self.height + 1
        self.priorities = self.priorities.next_height(self.app.validators_at(nxt))
        self._reset_height(nxt)
        self._pending, self._next_buffer = self._next_buffer, []
        self._log(encode_record("start", now))
        self._start_round(0, now)

    def _l55_round_skip(self, now: int) -> bool:
        """L55: f+1 messages ⟨*, h, round, *, *⟩ with round > round_p: StartRound(round)."""
        need = 1 if "l55_skip_on_one" in MUTANTS else self.valset.one_third_plus()
        best = self.log.highest_round_with(self.round, need)
        if best < 0:
            return False
        self._start_round(best, now)
        return True

    def _l57_on_timeout_propose(self, round: int, now: int) -> None:
        """L57: OnTimeoutPropose(h, r), still at (h, r, propose): prevote nil."""
        if MUTANTS and round != self.round and "l57_ignore_round" in MUTANTS:
            round = self.round  # an old round's timeout acts in this one
        if round == self.round and (self.step == STEP_PROPOSE or "l57_ignore_step" in MUTANTS):
            self._send_vote(PREVOTE, None, now)
            self.step = STEP_PREVOTE

    def _l61_on_timeout_prevote(self, round: int, now: int) -> None:
        """L61: OnTimeoutPrevote(h, r), still at (h, r, prevote): precommit nil."""
        if round == self.round and (self.step == STEP_PREVOTE or "l61_ignore_step" in MUTANTS):
            self._send_vote(PRECOMMIT, None, now)
            self.step = STEP_PRECOMMIT

    def _l65_on_timeout_precommit(self, round: int, now: int) -> None:
        """L65: OnTimeoutPrecommit(h, r), still in round r: StartRound(r + 1)."""
        if round == self.round or "l65_ignore_round" in MUTANTS:
            self._start_round(round + 1, now)

    def _mutant_l22(self, prop: Proposed) -> bool:
        """L22's guard with its planted bugs (test-only; the same as the rule without them)."""
        valid = self._valid(prop.msg.block) or "l22_ignore_valid" in MUTANTS
        timely = self._timely(prop) or "l22_ignore_timely" in MUTANTS
        lock = (self._lock_allows(prop.block_id, prop.msg.proposal.pol_round)
                or "l22_ignore_lock" in MUTANTS)  # fmt: skip
        return valid and timely and lock


def _own_key(m: Message) -> tuple[int, int, int]:
    if isinstance(m, VoteMessage):
        return (m.vote.type, m.vote.height, m.vote.round)
    return (0, m.height, m.round)
