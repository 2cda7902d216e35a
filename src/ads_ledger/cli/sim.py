"""`ads sim`: run many seeded consensus simulations and report any invariant violation.

Exit status 0 when every scenario holds every invariant, 1 otherwise (the failing seeds
are printed with the command that replays each one), 2 on bad options.
"""

from __future__ import annotations

import json
import sys

import click

from ads_ledger.sim.mutants import MUTANT_NAMES
from ads_ledger.sim.runner import DEFAULT_SEEDS, Summary, run_seeds

__all__ = ["sim"]


def _human(s: Summary, validators: int, twins: int, byzantine: int) -> str:
    rate = s.scenarios / s.wall_s if s.wall_s > 0 else 0.0
    byz = f", {byzantine} Byzantine" if byzantine else ""
    lines = [
        f"{s.scenarios} scenarios ({validators} validators, {twins} twins{byz}): "
        f"{s.heights} heights decided, {s.rounds} rounds (max round {s.max_round}), "
        f"{s.events} events, {s.violations} violations, {s.wall_s:.1f} s wall "
        f"({rate:.1f} scenarios/s)"
    ]
    for r in s.failures:
        lines.append(f"FAILED seed {r.scenario.seed}:")
        lines.extend(f"  - {v}" for v in r.violations)
        lines.append(f"  replay: {r.scenario.replay_hint()}")
    return "\n".join(lines)


@click.command("sim")
@click.option("--seeds", type=click.IntRange(1, 10_000_000), default=DEFAULT_SEEDS,
              show_default=True, help="How many seeded scenarios to run.")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Run just this one seed (to replay a failure).")
@click.option("--start", type=click.IntRange(0), default=0, show_default=True,
              help="First seed of the range.")
@click.option("--validators", type=click.IntRange(1, 10), default=4, show_default=True)
@click.option("--twins", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Validators run twice (same key, different nodes): Byzantine equivocators.")
@click.option("--byzantine", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Validators whose node signs any message in shape (lies, equivocation, noise).")
@click.option("--heights", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Heights every correct node must decide per scenario.")
@click.option("--mutant", "mutants", multiple=True, type=click.Choice(MUTANT_NAMES),
              help="Plant a known bug in the core (test-only), to see the fuzzer catch it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--keep-going", is_flag=True, help="Do not stop at the first failing seed.")
def sim(seeds: int, seed: int | None, start: int, validators: int, twins: int, byzantine: int,
        heights: int, mutants: tuple[str, ...], as_json: bool, keep_going: bool) -> None:  # fmt: skip
    """Fuzz the consensus core in the deterministic simulator.

    Each seed draws a scenario (partitions per step, one-way links, slow links, drops,
    duplicates, delays, crash-restarts, Twins, Byzantine validators) and checks agreement,
    validity, block time, no double sign, no amnesia after WAL replay and liveness after
    the network turns synchronous."""
    if 3 * (twins + byzantine) >= validators:
        raise click.BadParameter("twins and Byzantine validators must hold less than 1/3 of the "
                                 "validators", param_hint="--twins/--byzantine")  # fmt: skip
    seq = [seed] if seed is not None else range(start, start + seeds)
    s = run_seeds(seq, validators=validators, twins=twins, heights=heights, byzantine=byzantine,
                  mutants=frozenset(mutants), stop_on_failure=not keep_going)  # fmt: skip
    if as_json:
        click.echo(json.dumps({"validators": validators, "twins": twins,
                               "byzantine": byzantine, "heights": heights,
                               "mutants": sorted(mutants), **s.to_json()}, sort_keys=True))  # fmt: skip
    else:
        click.echo(_human(s, validators, twins, byzantine))
    sys.exit(1 if s.violations else 0)


if __name__ == "__main__":  # pragma: no cover
    sim()
