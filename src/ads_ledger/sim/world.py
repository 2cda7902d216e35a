"""The deterministic simulator: N validators (and their Twins) in one process.

One `random.Random(scenario.seed)` drives the network; time is a virtual millisecond
counter; events run in (time, sequence) order, so a run is a pure function of its
Scenario. Each node drives the same sans-IO `consensus.Core` the trio node drives, with
`consensus.wal.MemoryWAL` (a crash keeps only synced records) and
`consensus.privval.DoubleSignGuard` (its state survives crashes, as a file would).

Around the core, each node does what the runtime's reactors do: gossips its
`retransmit()` set every `GOSSIP_MS`, and answers a message from a lower height with a
`CommitMessage` for that height (block sync in one message).

A Byzantine validator's node runs the same core as a shadow; its `Adversary` decides what
actually goes out, to whom (`byzantine.py`).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from ads_ledger.consensus import core as core_module
from ads_ledger.consensus.core import Core
from ads_ledger.consensus.messages import CommitMessage, Message, ProposalMessage, VoteMessage
from ads_ledger.consensus.privval import DoubleSignGuard, MemorySignerState
from ads_ledger.consensus.timeouts import ConsensusParams
from ads_ledger.consensus.wal import MemoryWAL
from ads_ledger.core.crypto import SigningKey, verify
from ads_ledger.core.types import ValidatorSet
from ads_ledger.sim.app import ToyApp, ValsetSchedule
from ads_ledger.sim.byzantine import Adversary
from ads_ledger.sim.invariants import Checker
from ads_ledger.sim.scenario import Scenario

__all__ = ["run_scenario", "Result", "CachedVerify", "SIM_PARAMS", "GOSSIP_MS"]

CHAIN_ID = "ads-sim"
GENESIS_TIME = 1_700_000_000_000
CLOCK_EPOCH = GENESIS_TIME + 1000
GOSSIP_MS = 1000
CATCHUP_GAP_MS = 1000
LIVENESS_MS_PER_HEIGHT = 60_000  # after GST (and the last restart), per height to go
SIM_PARAMS = ConsensusParams()  # the production defaults: 3 s propose, 1 s votes, +0.5 s/round

_DELIVER, _TIMER, _GOSSIP, _CRASH, _RESTART = range(5)


class CachedVerify:
    """Ed25519 verification with a memo of (pub, sig, msg) results: the simulator hands
    one signed message to many nodes; each core still calls verify on every message."""

    def __init__(self) -> None:
        self.memo: dict[tuple[bytes, bytes, bytes], bool] = {}
        self.calls = 0

    def __call__(self, pub: bytes, sig: bytes, msg: bytes) -> bool:
        self.calls += 1
        k = (pub, sig, msg)
        ok = self.memo.get(k)
        if ok is None:
            ok = self.memo[k] = verify(pub, sig, msg)
        return ok


@dataclass
class Result:
    scenario: Scenario
    violations: list[str]
    min_height: int
    max_round: int
    events: int
    virtual_ms: int
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


class _Node:
    def __init__(self, sim: "_Sim", index: int, key: SigningKey, rng: random.Random) -> None:
        self.sim = sim
        self.index = index
        self.key = key.pub
        # our clock reads virtual time + epoch + skew (the epoch just after genesis)
        self.skew = CLOCK_EPOCH + (sim.sc.skews_ms[index] if sim.sc.skews_ms else 0)
        self.app = ToyApp(CHAIN_ID, sim.schedule, GENESIS_TIME, rng, sim.verify)
        self.wal = MemoryWAL()
        self.signer = DoubleSignGuard(key, MemorySignerState())
        self.core: Core | None = self._new_core()
        self.armed: int | None = None  # deadline (our clock) of the timer event in flight
        self.catchup_sent: dict[tuple[int, int], int] = {}
        self.max_round = 0
        self.hrs = (0, 0, 0)  # (height, round, step) never goes back while the node is up
        self.adversary: Adversary | None = None  # set on a Byzantine validator's node
        self.relayed: set[bytes] = set()  # Byzantine messages we relayed (gossip, once each)
        self.relay_at_gst: list[Message] = []  # ... or got before GST and relay at GST

    def _new_core(self) -> Core:
        app = self.app
        return Core(chain_id=CHAIN_ID, signer=self.signer, app=app, wal=self.wal,
                    height=app.height + 1, params=SIM_PARAMS,
                    last_commit=app.commits[-1] if app.commits else None,
                    verify=self.sim.verify)  # fmt: skip

    def clock(self, now: int) -> int:
        return now + self.skew

    def flush(self, now: int) -> None:
        core = self.core
        assert core is not None
        out = core.outbox()
        if out:
            self.sim.checker.on_release(self.index, self.key, out)
            if self.adversary is None:
                self.sim.broadcast(self.index, out, now)
            else:
                self._route(self.adversary.own(core, out, self.clock(now)), now)
        for block, commit in core.decisions():
            self.sim.on_decision(self, block, commit)
        self.max_round = max(self.max_round, core.round)
        hrs = (core.height, core.round, core.step)
        if hrs < self.hrs and self.key not in self.sim.checker.byzantine:
            self.sim.checker.fail(f"regression: node {self.index} went from (h, r, step) "
                                  f"{self.hrs} back to {hrs}")  # fmt: skip
        self.hrs = hrs
        d = core.next_deadline()
        if d is not None and d != self.armed:
            self.armed = d
            self.sim.push(max(now, d - self.skew), _TIMER, self.index, d)

    def deliver(self, src: int, msg: Message, now: int) -> None:
        core = self.core
        if core is None:
            return
        if msg.height < core.height:
            self._catch_up(src, msg.height, now)
            return
        core.on_message(msg, self.clock(now))
        self.flush(now)
        if self.adversary is not None and self.core is not None:
            self._route(self.adversary.heard(self.core, src, msg, self.clock(now)), now)
        elif _signer(msg) in self.sim.relayed_keys and msg.encoded not in self.relayed:
            # the runtime's peer manager relays every consensus message it accepts; here only
            # the Byzantine validators' (others broadcast their own and retransmit them), and
            # only from GST on (before, a lost relay is just another lost message)
            self.relayed.add(msg.encoded)
            if now >= self.sim.sc.gst_ms:
                self.sim.broadcast(self.index, [msg], now)
            else:
                self.relay_at_gst.append(msg)

    def _route(self, sends: list[tuple[int, Message]], now: int) -> None:
        for dst, m in sends:
            self.sim.send(self.index, dst, m, now)

    def _catch_up(self, src: int, height: int, now: int) -> None:
        if height > self.app.height or height < 1:
            return
        last = self.catchup_sent.get((src, height))
        if last is not None and now - last < CATCHUP_GAP_MS:
            return
        self.catchup_sent[(src, height)] = now
        msg = CommitMessage(self.app.blocks[height - 1], self.app.commits[height - 1])
        self.sim.send(self.index, src, msg, now)

    def timer(self, deadline: int, now: int) -> None:
        if self.core is None or deadline != self.armed:
            return
        self.armed = None
        self.core.on_timeout(self.clock(now))
        self.flush(now)

    def gossip(self, now: int) -> None:
        if self.core is None:
            return
        if self.adversary is None:
            self.sim.broadcast(self.index, self.core.retransmit(), now)
            if self.relay_at_gst and now >= self.sim.sc.gst_ms:
                h = self.core.height
                self.sim.broadcast(self.index, [m for m in self.relay_at_gst if m.height >= h], now)
                self.relay_at_gst = []
        else:
            self._route(self.adversary.gossip(self.core, self.core.retransmit()), now)

    def crash(self) -> None:
        if self.core is None:
            return
        self.sim.checker.on_stats(self.index, self.key, self.core.stats)
        self.core = None
        self.armed = None
        self.hrs = (0, 0, 0)  # a restart may resume from an earlier step of the round
        self.wal = self.wal.crash()

    def restart(self, now: int) -> None:
        if self.core is not None:
            return
        last_ended, records = self.wal.replay()
        if last_ended < self.app.height:
            # the block was stored but its end-of-height marker was not: skip the height
            self.wal.end_height(self.app.height)
            records = []
        self.core = core = self._new_core()
        core.recover(records)
        self.sim.checker.on_recovered(self.index, self.key, core.height, core.own_messages())
        if not core.started:
            core.start(self.clock(now))
        self.flush(now)


class _Sim:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.verify = CachedVerify()
        keys = [SigningKey(self.rng.randbytes(32)) for _ in range(sc.validators)]
        powers = sc.power_list()
        genesis = ValidatorSet(tuple((k.pub, p) for k, p in zip(keys, powers)))
        changes = {}
        if sc.valset_change is not None:
            k, new = sc.valset_change
            changes[k] = ValidatorSet(tuple((key.pub, p) for key, p in zip(keys, new)))
        self.schedule = ValsetSchedule(genesis, changes)
        faulty = sc.twins + sc.byzantine  # Twins' keys first, then the Byzantine validators'
        byz = {keys[j].pub for j in range(faulty)}
        ref = ToyApp(CHAIN_ID, self.schedule, GENESIS_TIME, random.Random(0), self.verify)
        self.checker = Checker(ref, byz)
        self.heap: list[tuple[int, int, int, int, Any]] = []
        self.seq = 0
        self.now = 0
        self.nodes = [_Node(self, i, keys[i if i < sc.validators else i - sc.validators],
                            random.Random(self.rng.getrandbits(64)))
                      for i in range(sc.nodes)]  # fmt: skip
        self.correct = [n for n in self.nodes if n.key not in byz]
        self.fastest_clock = max(n.skew for n in self.correct)
        self.relayed_keys = {keys[j].pub for j in range(sc.twins, faulty)}
        for j in range(sc.twins, faulty):
            peers = [i for i in range(sc.nodes) if i != j]
            self.nodes[j].adversary = Adversary(keys[j], CHAIN_ID, sc.adversary,
                                                random.Random(f"adversary/{sc.seed}/{j}"), peers,
                                                votes_cap=sc.byzantine_votes_cap)  # fmt: skip
        self.done = 0

    def push(self, t: int, kind: int, node: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, node, payload))

    def broadcast(self, src: int, msgs: list[Message], now: int) -> None:
        for dst in range(len(self.nodes)):
            if dst != src:
                for m in msgs:
                    self.send(src, dst, m, now)

    def send(self, src: int, dst: int, msg: Message, now: int) -> None:
        sc, rng = self.sc, self.rng
        if now >= sc.gst_ms:
            self.push(now + rng.randint(1, sc.sync_delay_ms), _DELIVER, dst, (src, msg))
            return
        phase = _phase(msg)
        if phase < len(sc.partitions):
            g = sc.partitions[phase]
            if g[src] != g[dst] and g[src] != 0:  # group 0 is heard by all (one-way links)
                return
        if sc.drop_pm and rng.randrange(1000) < sc.drop_pm:
            return
        for ph, s, d, extra in sc.slow_links:
            if ph == phase and s in (src, -1) and d in (dst, -1):
                now += extra  # a slow link for this step
                break
        self.push(now + rng.randint(1, sc.delay_ms), _DELIVER, dst, (src, msg))
        if sc.dup_pm and rng.randrange(1000) < sc.dup_pm:
            self.push(now + rng.randint(1, sc.delay_ms), _DELIVER, dst, (src, msg))

    def on_decision(self, node: _Node, block: Any, commit: Any) -> None:
        latest = self.now + self.fastest_clock + SIM_PARAMS.precision_ms
        self.checker.on_decision(node.index, node.key, block, commit, latest)
        if node.key not in self.checker.byzantine and block.header.height == self.sc.heights:
            self.done += 1

    def run(self, max_events: int) -> Result:
        sc = self.sc
        for c in sc.crashes:
            self.push(c.at_ms, _CRASH, c.node, None)
            self.push(c.at_ms + c.down_ms, _RESTART, c.node, None)
        for n in self.nodes:
            self.push(self.rng.randrange(GOSSIP_MS), _GOSSIP, n.index, None)
            assert n.core is not None
            n.core.start(n.clock(0))
            n.flush(0)
        settle = max([sc.gst_ms] + [c.at_ms + c.down_ms for c in sc.crashes])
        end = settle + LIVENESS_MS_PER_HEIGHT * sc.heights
        events = 0
        target = len(self.correct)
        checker = self.checker
        while self.heap and self.done < target and events < max_events and not checker.violations:
            t, _, kind, i, payload = heapq.heappop(self.heap)
            if t > end:
                break
            self.now = t
            events += 1
            node = self.nodes[i]
            if kind == _DELIVER:
                node.deliver(payload[0], payload[1], t)
            elif kind == _TIMER:
                node.timer(payload, t)
            elif kind == _GOSSIP:
                node.gossip(t)
                self.push(t + GOSSIP_MS, _GOSSIP, i, None)
            elif kind == _CRASH:
                node.crash()
            else:
                node.restart(t)
        stats: dict[str, int] = {}
        for n in self.nodes:
            if n.core is not None:
                self.checker.on_stats(n.index, n.key, n.core.stats)
                for k, v in n.core.stats.items():
                    stats[k] = stats.get(k, 0) + v
        heights = [n.app.height for n in self.correct]
        if self.done < target and sc.faulty_power_ok() and not checker.violations:
            why = "event budget" if events >= max_events else f"{end} ms"
            self.checker.fail(f"liveness: correct nodes at heights {heights} after {why} "
                              f"(target {sc.heights}, network synchronous from {settle} ms)")  # fmt: skip
        stats["verify_calls"] = self.verify.calls
        stats["verify_unique"] = len(self.verify.memo)
        return Result(sc, list(self.checker.violations), min(heights),
                      max(n.max_round for n in self.nodes), events, self.now, stats)  # fmt: skip


def _signer(msg: Message) -> bytes | None:
    if isinstance(msg, VoteMessage):
        return msg.vote.validator
    if isinstance(msg, ProposalMessage):
        return msg.proposal.proposer
    return None


def _phase(msg: Message) -> int:
    """Which partition map applies: 3 per round (proposal, prevote, precommit)."""
    if isinstance(msg, VoteMessage):
        return 3 * msg.round + msg.vote.type  # PREVOTE 1, PRECOMMIT 2
    if isinstance(msg, CommitMessage):
        return 3 * msg.round + 2  # a bundle of precommits travels as precommits do
    return 3 * msg.round


def run_scenario(sc: Scenario, *, max_events: int = 400_000) -> Result:
    """Run one scenario to its end (target height everywhere, or the liveness deadline).

    `sc.mutants` are switched on in `consensus.core.MUTANTS` for the run (test-only)."""
    saved = set(core_module.MUTANTS)
    core_module.MUTANTS.clear()
    core_module.MUTANTS.update(sc.mutants)
    try:
        return _Sim(sc).run(max_events)
    finally:
        core_module.MUTANTS.clear()
        core_module.MUTANTS.update(saved)
