"""The planted bugs of `consensus.core.MUTANTS` (test-only), each with what it breaks.

`kind` is "safety" (a schedule exists where correct nodes disagree, decide an invalid block
or one from the future, double-sign or go back in (height, round, step); the default budget
must catch it),
"liveness" (only progress can suffer) or "equivalent" (no behaviour a correct node could
tell apart under the invariants: `why` says why). docs/simulator.md has the measured table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Mutant", "MUTANT_TABLE", "MUTANT_NAMES"]


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    rule: str
    kind: str  # "safety" | "liveness" | "equivalent"
    what: str
    why: str = ""


MUTANT_TABLE: tuple[Mutant, ...] = (
    Mutant("two_thirds_not_more", "quorum", "safety", "quorum is ⌊2/3·total⌋, not > 2/3"),
    Mutant("vote_before_wal", "WAL", "safety", "own votes leave before they are durable"),
    Mutant("skip_lock_check", "L22/L28", "safety", "prevote any valid proposal, locked or not"),
    Mutant("unlock_on_nil", "L44", "safety",
           "a 2f+1 nil polka releases the lock (the older Tendermint rule)"),
    Mutant("l22_ignore_lock", "L22", "safety", "fresh proposal: the lock is not checked"),
    Mutant("l22_trust_pol_round", "L22", "safety",
           "a proposal with pol_round ≠ −1 is taken as fresh, the lock checked against its "
           "claimed pol_round (no polka)"),
    Mutant("l22_ignore_valid", "L22", "equivalent", "fresh proposal: valid(v) not checked",
           "L36 and L49 check valid(v) again: an invalid value is never locked or decided"),
    Mutant("l22_ignore_timely", "L22", "safety",
           "fresh proposal: timeliness not checked (a block from the future is decided)"),
    Mutant("l28_skip_polka", "L28", "safety", "re-proposal: no 2f+1 prevotes for vr needed"),
    Mutant("l28_ignore_lock", "L28", "safety", "re-proposal: the lock is not checked"),
    Mutant("l28_vr_not_below_round", "L28", "equivalent", "re-proposal: vr ≥ round accepted",
           "a real polka for v in a round ≥ round_p > lockedRound already lets L28 pass at the "
           "next round; once v is decided at r no polka for another value forms at r' > r"),
    Mutant("l34_any_prevote", "L34", "liveness", "timeoutPrevote scheduled on one prevote"),
    Mutant("l36_lock_on_f_plus_1", "L36", "safety", "lock and precommit on f+1 prevotes"),
    Mutant("l36_ignore_valid", "L36", "equivalent", "lock without valid(v)",
           "2f+1 prevotes for v hold f+1 correct ones, each checked valid(v) (deterministic)"),
    Mutant("l44_nil_on_any", "L44", "liveness", "precommit nil on one nil prevote"),
    Mutant("l47_any_precommit", "L47", "liveness", "timeoutPrecommit scheduled on one precommit"),
    Mutant("l49_decide_on_f_plus_1", "L49", "safety", "decide on f+1 precommits"),
    Mutant("l49_ignore_valid", "L49", "equivalent", "decide without valid(v)",
           "2f+1 precommits for v hold f+1 correct ones, each locked after checking valid(v)"),
    Mutant("l55_skip_on_one", "L55", "liveness", "skip to a round on one message from it"),
    Mutant("l57_ignore_step", "L57", "safety",
           "timeoutPropose prevotes nil after the node prevoted (double sign)"),
    Mutant("l57_ignore_round", "L57", "liveness", "an old round's timeoutPropose acts now"),
    Mutant("l61_ignore_step", "L61", "safety",
           "timeoutPrevote precommits nil after the node precommitted (double sign)"),
    Mutant("l65_ignore_round", "L65", "safety",
           "an old round's timeoutPrecommit starts round r+1 (round goes back)"),
)

MUTANT_NAMES: tuple[str, ...] = tuple(m.name for m in MUTANT_TABLE)
