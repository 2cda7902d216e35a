"""Run many seeded scenarios and summarise them (the engine behind `ads sim`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ads_ledger.sim.scenario import Scenario
from ads_ledger.sim.world import Result, run_scenario

__all__ = ["Summary", "run_seeds", "DEFAULT_SEEDS", "DEFAULT_BYZANTINE_SEEDS"]

# The default budget: enough to catch every planted mutant (tests/test_sim_mutants.py).
DEFAULT_SEEDS = 2000
# With a Byzantine validator a scenario costs about twice as much; the default suite runs
# this many against the real core (tests/test_sim.py), the fuzz suite more.
DEFAULT_BYZANTINE_SEEDS = 300


@dataclass
class Summary:
    scenarios: int = 0
    heights: int = 0
    rounds: int = 0
    max_round: int = 0
    events: int = 0
    violations: int = 0
    wall_s: float = 0.0
    failures: list[Result] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "scenarios": self.scenarios, "heights": self.heights, "rounds": self.rounds,
            "max_round": self.max_round, "events": self.events, "violations": self.violations,
            "wall_s": round(self.wall_s, 3),
            "failures": [{"seed": r.scenario.seed, "violations": r.violations,
                          "replay": r.scenario.replay_hint()} for r in self.failures],
        }  # fmt: skip


def run_seeds(seeds: Iterable[int], *, validators: int = 4, twins: int = 0, heights: int = 3,
              byzantine: int = 0, mutants: frozenset[str] = frozenset(),
              stop_on_failure: bool = False,
              on_result: Callable[[Result], None] | None = None) -> Summary:  # fmt: skip
    """Run `Scenario.from_seed` for each seed; collect totals and the failing runs."""
    s = Summary()
    t0 = time.perf_counter()
    for seed in seeds:
        sc = Scenario.from_seed(seed, validators=validators, twins=twins, heights=heights,
                                byzantine=byzantine, mutants=mutants)  # fmt: skip
        r = run_scenario(sc)
        s.scenarios += 1
        s.heights += r.min_height
        s.rounds += r.max_round + 1
        s.max_round = max(s.max_round, r.max_round)
        s.events += r.events
        if on_result is not None:
            on_result(r)
        if r.violations:
            s.violations += len(r.violations)
            if len(s.failures) < 10:
                s.failures.append(r)
            if stop_on_failure:
                break
    s.wall_s = time.perf_counter() - t0
    return s
