"""Simulation scenarios: who runs, which faults, until when. Plain data, replayable.

`Scenario.from_seed(seed, ...)` draws one from a seed (the CLI's way); the hypothesis
strategy in `strategies.py` draws the same fields so that a failure shrinks. Either way
the run itself is a pure function of the Scenario (its `seed` drives the network).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

__all__ = ["Scenario", "Crash", "ADVERSARY_DRAW"]

# How `from_seed` draws a Byzantine validator's mode (sim/byzantine.py MODES), weighted.
ADVERSARY_DRAW = ("silent", "equivocate", "equivocate", "noisy", "mixed", "mixed", "mixed")


@dataclass(frozen=True, slots=True)
class Crash:
    """Node `node` loses power at `at_ms` (unsynced WAL records are lost) and restarts
    `down_ms` later, replaying its WAL."""

    node: int
    at_ms: int
    down_ms: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated run.

    Nodes 0..validators−1 hold validator keys 0..validators−1; nodes validators+j (j <
    twins) are Twins of validator j: the same key and the same unmodified code, another
    node. Before `gst_ms`, messages are dropped (‰ `drop_pm`), duplicated (‰ `dup_pm`),
    delayed up to `delay_ms` (so reordered), and a message of round r and phase k (0
    proposal, 1 prevote, 2 precommit) only crosses between nodes in the same group of
    `partitions[3r + k]` (one group id per node; Twins' per-round partitions, per step),
    except that members of group 0 are heard by everyone (while hearing only group 0):
    one-way links, the asymmetry a node needs to lock on a value others decide. A message of
    phase k from node s to node d also waits `ms` more for the first `(k, s, d, ms)` in
    `slow_links` that matches (−1 matches any node): a step's messages that reach a node
    only after it moved on. From `gst_ms` on the network is synchronous:
    every message arrives within `sync_delay_ms`.

    Validators twins..twins+byzantine−1 are Byzantine (`sim/byzantine.py`): their nodes sign
    whatever the `adversary` mode ("silent", "equivocate", "noisy", "mixed") draws.
    """

    seed: int
    validators: int = 4
    twins: int = 0
    heights: int = 3
    byzantine: int = 0
    adversary: str = "mixed"
    # Distinct votes per (type, round) a Byzantine validator signs (0: any number). The core
    # keeps the first MAX_VOTES_PER_VALIDATOR (4) of each validator: past that, different
    # correct nodes keep different votes and a polka one saw stays unprovable to the others
    # (a liveness stall, docs/simulator.md); the default stays within the cap.
    byzantine_votes_cap: int = 4
    powers: tuple[int, ...] = ()  # empty: power 1 each
    drop_pm: int = 0
    dup_pm: int = 0
    delay_ms: int = 200
    sync_delay_ms: int = 100
    gst_ms: int = 0
    partitions: tuple[tuple[int, ...], ...] = ()
    slow_links: tuple[tuple[int, int, int, int], ...] = ()  # (phase, src, dst, extra ms)
    crashes: tuple[Crash, ...] = ()
    skews_ms: tuple[int, ...] = ()  # per node clock offset; empty: all 0
    valset_change: tuple[int, tuple[int, ...]] | None = None  # (height k, new powers) at k+2
    mutants: frozenset[str] = field(default_factory=frozenset)

    @property
    def nodes(self) -> int:
        return self.validators + self.twins

    def power_list(self) -> list[int]:
        return list(self.powers) if self.powers else [1] * self.validators

    def faulty_power_ok(self) -> bool:
        """Twinned and Byzantine validators hold less than 1/3 of every set."""
        sets = [self.power_list()]
        if self.valset_change is not None:
            sets.append(list(self.valset_change[1]))
        faulty = self.twins + self.byzantine
        return all(3 * sum(p[:faulty]) < sum(p) for p in sets)

    def replay_hint(self) -> str:
        hint = (f"ads sim --seed {self.seed} --validators {self.validators} "
                f"--twins {self.twins} --heights {self.heights}")  # fmt: skip
        if self.byzantine:
            hint += f" --byzantine {self.byzantine}"
        return hint + "".join(f" --mutant {m}" for m in sorted(self.mutants))

    @classmethod
    def from_seed(cls, seed: int, *, validators: int = 4, twins: int = 0, heights: int = 3,
                  byzantine: int = 0, mutants: frozenset[str] = frozenset()) -> "Scenario":  # fmt: skip
        """A scenario drawn from `seed` alone (biased towards Twins-style partitions).

        With `byzantine` validators, their adversary mode is drawn from another stream, and
        some seeds replace the network by a lock-attack split (`_lock_split`, 40%) or a
        re-lock split (`_relock_split`, 20%)."""
        rng = random.Random(f"scenario/{seed}")
        n = validators + twins
        faulty = twins + byzantine
        family = rng.choice(("fault-free", "twins", "twins", "mixed", "mixed", "mixed", "mixed"))
        powers: tuple[int, ...] = ()
        if family != "twins" and rng.random() < 0.3:
            powers = tuple(rng.randint(1, 5) for _ in range(validators))
            if not 3 * sum(powers[:faulty]) < sum(powers):
                powers = ()
        # Two families: "twins" (partitions only, the shape that exposes lock bugs) and
        # "mixed" (partitions plus drops, duplicates, long delays and crash-restarts).
        adversarial = family != "fault-free"  # (not `faulty`: that counts faulty validators)
        mixed = family == "mixed"
        gst = (rng.choice((8000, 12000, 12000, 25000)) if mixed
               else rng.choice((8000, 12000)) if adversarial else 0)  # fmt: skip
        # Tuned so that the planted lock bug is found (tests/test_sim_mutants.py): a few
        # partitioned rounds, often fully connected steps, one-way links (group 0) common.
        n_part = 3 * rng.randint(3, 4) if adversarial and rng.random() < 0.9 else 0
        partitions: list[tuple[int, ...]] = []
        for _ in range(n_part):
            if partitions and rng.random() < 0.2:
                partitions.append(partitions[-1])  # the same split for the next step
                continue
            groups = rng.choice((1, 1, 2, 3, 3))
            assign = [rng.randrange(groups) for _ in range(n)]
            for j in range(twins):  # Twins: the two copies of a key usually sit apart
                if groups > 1 and rng.random() < 0.8:
                    assign[validators + j] = (assign[j] + 1 + rng.randrange(groups - 1)) % groups
            partitions.append(tuple(assign))
        crashes = []
        if mixed and rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                crashes.append(Crash(rng.randrange(n), rng.randint(0, gst + 3000), rng.randint(10, 3000)))
        change = None
        if heights >= 2 and family != "twins" and rng.random() < 0.2:
            new = tuple(rng.randint(1, 4) for _ in range(validators))
            if 3 * sum(new[:faulty]) < sum(new):
                change = (rng.randint(1, heights - 1), new)
        sc = cls(
            seed=seed, validators=validators, twins=twins, heights=heights, powers=powers,
            drop_pm=rng.choice((0, 20, 100, 300)) if mixed else 0,
            dup_pm=rng.choice((0, 50, 200)) if mixed else 0,
            delay_ms=rng.choice((50, 300, 1500)) if mixed else rng.choice((50, 100, 300)),
            gst_ms=gst, partitions=tuple(partitions), crashes=tuple(crashes),
            skews_ms=tuple(rng.randint(-150, 150) for _ in range(n)) if mixed else (),
            valset_change=change, mutants=mutants, byzantine=byzantine,
        )  # fmt: skip
        if not byzantine:
            return sc
        arng = random.Random(f"adversary/{seed}")
        sc = replace(sc, adversary=arng.choice(ADVERSARY_DRAW))
        split = arng.random()
        if split < 0.4:
            sc = replace(sc, partitions=_lock_split(arng, sc), drop_pm=0, crashes=(),
                         gst_ms=arng.choice((20000, 30000)))  # fmt: skip
        elif split < 0.6:
            partitions, slow = _relock_split(arng, sc)
            mode = "echo" if arng.random() < 0.7 else sc.adversary
            sc = replace(sc, partitions=partitions, slow_links=slow, drop_pm=0, crashes=(),
                         adversary=mode,
                         gst_ms=arng.choice((30000, 40000)), delay_ms=arng.choice((50, 300)))  # fmt: skip
        return sc


def _lock_split(rng: random.Random, sc: Scenario) -> tuple[tuple[int, ...], ...]:
    """Partitions for rounds 0–3 that set up a lock attack (each step's split sometimes
    replaced by a random one). Round 0: a decider A, some nodes C and the faulty nodes get
    the proposal, the others D do not; all prevotes flow (D sees the polka but has no
    proposal to lock on); all precommits flow except A's. So A decides v, C is locked on v
    without deciding, and from round 1 on C, D and the faulty nodes go on without A (whose
    commit travels as a round-0 precommit: held back until GST)."""
    faulty = set(range(sc.twins, sc.twins + sc.byzantine)) | set(range(sc.validators, sc.nodes))
    honest = [i for i in range(sc.validators) if i not in faulty]
    rng.shuffle(honest)
    f = (sc.validators - 1) // 3
    locked = max(1, sc.validators - f - 1 - len(faulty))  # A + C + faulty = n − f
    a, c = honest[0], set(honest[1 : 1 + locked])

    def split(groups: dict[int, int], default: int) -> tuple[int, ...]:
        if rng.random() < 0.15:
            return tuple(rng.randrange(3) for _ in range(sc.nodes))
        return tuple(groups.get(i, default) for i in range(sc.nodes))

    fixed = [
        split({i: 2 for i in c | faulty | {a}}, 1),  # r0 proposal: D (group 1) misses it
        split({}, 0),  # r0 prevotes: all
        split({a: 1}, 0),  # r0 precommits: no one hears A
    ]
    later = [split({a: 1}, rng.choice((0, 2))) for _ in range(9)]
    return tuple(fixed + later)


def _relock_split(rng: random.Random, sc: Scenario) -> tuple[tuple[tuple[int, ...], ...],
                                                           tuple[tuple[int, int, int, int], ...]]:  # fmt: skip
    """Partitions and slow links for rounds 0–3 where a polka of round 0 reaches a node C
    only after C left round 0: round 0's proposal w misses a node A; its prevotes reach C
    late (C leaves on the round-0 precommits of the others); in round 1 A and C may lock
    on a fresh v and A decide it (if the faulty nodes tell each what it wants to hear),
    while C's prevotes and relays reach the others D late (D keeps w as its valid value);
    then A is cut off, and w may come back with pol_round 0."""
    faulty = set(range(sc.twins, sc.twins + sc.byzantine)) | set(range(sc.validators, sc.nodes))
    honest = [i for i in range(sc.validators) if i not in faulty]
    rng.shuffle(honest)
    a, c = honest[0], honest[1]
    parts = [tuple(1 if i == a else 2 for i in range(sc.nodes))]  # r0 proposal: not A
    parts += [tuple(0 for _ in range(sc.nodes))] * 4  # r0 prevotes .. r1 prevotes: all
    # from round 1's precommits on, A is cut off
    parts += [tuple(1 if i == a else 0 for i in range(sc.nodes))] * 7
    slow = [(1, -1, c, rng.choice((4000, 6000, 8000)))]  # r0 prevotes reach C late
    slow += [(4, c, d, rng.choice((4000, 8000))) for d in honest[2:]]  # r1 prevotes of C
    return tuple(parts), tuple(slow)
