"""Hypothesis strategies for simulation scenarios (shrink towards fewer faults).

A failing scenario shrinks to fewer partitions, crashes and drops and a smaller seed;
hypothesis prints it as a `Scenario(...)` that `run_scenario` replays exactly.
Imports hypothesis: for tests only.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ads_ledger.sim.byzantine import MODES
from ads_ledger.sim.scenario import Crash, Scenario

__all__ = ["scenarios"]


@st.composite
def scenarios(draw: st.DrawFn, *, validators: int = 4, twins: int = 1, byzantine: int = 0,
              heights: tuple[int, int] = (2, 3)) -> Scenario:  # fmt: skip
    """`byzantine` validators (after the twinned ones) get an adversary mode drawn from
    `byzantine.MODES` ("mixed" first: it shrinks towards the busiest adversary)."""
    n = validators + twins
    gst = draw(st.sampled_from((0, 8000, 12000, 20000)))
    group = st.integers(0, 2)
    partitions = draw(st.lists(st.tuples(*[group] * n), max_size=12)) if gst else []
    crashes = draw(st.lists(st.builds(Crash, st.integers(0, n - 1), st.integers(0, gst + 3000),
                                      st.integers(10, 3000)), max_size=2))  # fmt: skip
    return Scenario(
        seed=draw(st.integers(0, 2**32 - 1)),
        validators=validators, twins=twins, byzantine=byzantine,
        adversary=draw(st.sampled_from(MODES[::-1])) if byzantine else "mixed",
        heights=draw(st.integers(*heights)),
        drop_pm=draw(st.sampled_from((0, 20, 100, 300))) if gst else 0,
        dup_pm=draw(st.sampled_from((0, 100))) if gst else 0,
        delay_ms=draw(st.sampled_from((50, 300, 1500))),
        gst_ms=gst, partitions=tuple(partitions), crashes=tuple(crashes),
        skews_ms=tuple(draw(st.lists(st.integers(-150, 150), min_size=n, max_size=n))),
    )  # fmt: skip
