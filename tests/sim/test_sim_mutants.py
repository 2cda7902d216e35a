"""Proof the fuzzer bites: each planted bug is caught within the default budget of
`ads sim --twins 1` (seeds 0..DEFAULT_SEEDS−1), and no seed trips the real core there
(tests/test_sim.py)."""

from __future__ import annotations

import pytest

from ads_ledger.consensus import core
from ads_ledger.sim.runner import DEFAULT_SEEDS, run_seeds

CAUGHT = {
    "two_thirds_not_more": ("validity", "agreement"),
    "vote_before_wal": ("amnesia", "sign_refused", "double sign"),
    "skip_lock_check": ("agreement",),
}


@pytest.mark.parametrize("mutant", sorted(CAUGHT))
def test_mutant_is_caught_by_default_budget(mutant: str) -> None:
    s = run_seeds(range(DEFAULT_SEEDS), twins=1, mutants=frozenset({mutant}), stop_on_failure=True)
    assert s.failures, f"{mutant} survived {DEFAULT_SEEDS} scenarios"
    [r] = s.failures
    assert any(v.startswith(CAUGHT[mutant]) for v in r.violations), r.violations
    assert core.MUTANTS == set()  # switched off again after the run
