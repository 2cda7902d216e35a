"""Proof the fuzzer bites: each planted safety bug (sim/mutants.py) is caught within the
default mutant budget, Byzantine-validator seeds 0..DEFAULT_SEEDS−1 of `ads sim
--byzantine 1` (each falls within the first 40 seeds); the real core holds there
(tests/test_sim.py). docs/simulator.md has the table.

"Caught" means a safety invariant fails (agreement, validity, time, double sign, amnesia,
regression); a liveness failure alone does not count, so the search goes on past it.
"""

from __future__ import annotations

import pytest

from ads_ledger.consensus import core
from ads_ledger.sim import Result, Scenario, run_scenario
from ads_ledger.sim.mutants import MUTANT_TABLE
from ads_ledger.sim.runner import DEFAULT_SEEDS

SAFETY_INVARIANTS = ("agreement", "validity", "time", "double sign", "amnesia", "regression",
                     "sign_refused", "replay_divergence")  # fmt: skip

# What each safety mutant trips first (the schedule that catches it may show more).
CAUGHT = {
    "two_thirds_not_more": ("validity", "agreement"),
    "vote_before_wal": ("amnesia", "sign_refused", "double sign"),
    "skip_lock_check": ("agreement",),
    "unlock_on_nil": ("agreement",),
    "l22_ignore_lock": ("agreement",),
    "l22_trust_pol_round": ("agreement",),
    "l22_ignore_timely": ("time",),
    "l28_skip_polka": ("agreement", "time"),
    "l28_ignore_lock": ("agreement",),
    "l36_lock_on_f_plus_1": ("agreement",),
    "l49_decide_on_f_plus_1": ("validity", "agreement"),
    "l57_ignore_step": ("regression", "sign_refused"),
    "l61_ignore_step": ("sign_refused", "regression"),
    "l65_ignore_round": ("regression", "sign_refused"),
}


def first_safety_catch(mutant: str, seeds: range, *, twins: int = 0,
                       byzantine: int = 1) -> Result | None:  # fmt: skip
    for seed in seeds:
        sc = Scenario.from_seed(seed, twins=twins, byzantine=byzantine, mutants=frozenset({mutant}))
        r = run_scenario(sc)
        if any(v.startswith(SAFETY_INVARIANTS) for v in r.violations):
            return r
    return None


def test_every_safety_mutant_is_listed() -> None:
    safety = {m.name for m in MUTANT_TABLE if m.kind == "safety"}
    assert safety == set(CAUGHT)


@pytest.mark.parametrize("mutant", sorted(CAUGHT))
def test_mutant_is_caught_by_default_budget(mutant: str) -> None:
    r = first_safety_catch(mutant, range(DEFAULT_SEEDS))
    assert r is not None, f"{mutant} survived {DEFAULT_SEEDS} Byzantine scenarios"
    assert any(v.startswith(CAUGHT[mutant]) for v in r.violations), r.violations
    assert core.MUTANTS == set()  # switched off again after the run


@pytest.mark.parametrize("mutant", ["skip_lock_check", "two_thirds_not_more", "vote_before_wal"])
def test_twins_alone_catch_the_first_mutants(mutant: str) -> None:
    """Honest code twice under one key (`--twins 1`) still bites where no lie is needed."""
    r = first_safety_catch(mutant, range(DEFAULT_SEEDS), twins=1, byzantine=0)
    assert r is not None and any(v.startswith(CAUGHT[mutant]) for v in r.violations)
