"""Deterministic simulation of a validator network around the sans-IO consensus core.

`scenario` (plain data), `app` (a toy Application), `invariants` (what must hold),
`world` (virtual clock, faulty network, crash-restart, Twins, Byzantine validators;
`run_scenario`), `byzantine` (the Byzantine adversary), `mutants` (the planted core bugs),
`strategies` (hypothesis strategies; imports hypothesis), `runner` (many seeds).
May import `consensus`, `types`, `crypto`; nothing imports it but tests, bench and the CLI.
"""

from ads_ledger.sim.scenario import Crash, Scenario
from ads_ledger.sim.world import Result, run_scenario

__all__ = ["Crash", "Scenario", "Result", "run_scenario"]
