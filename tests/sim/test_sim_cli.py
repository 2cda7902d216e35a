"""`ads sim` as a command: summary, JSON, exit status and replay hint."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ads_ledger.cli.sim import sim


def test_clean_run_exits_zero_with_summary() -> None:
    r = CliRunner().invoke(sim, ["--seeds", "15", "--twins", "1"])
    assert r.exit_code == 0, r.output
    assert "15 scenarios" in r.output and "0 violations" in r.output


def test_json_and_failure_exit_with_replay() -> None:
    r = CliRunner().invoke(sim, ["--seeds", "5", "--twins", "1", "--mutant", "two_thirds_not_more", "--json"])
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["violations"] > 0 and out["failures"][0]["seed"] == 0
    replay = out["failures"][0]["replay"]
    assert replay.startswith("ads sim --seed 0 ") and "--mutant two_thirds_not_more" in replay


def test_single_seed_replay_and_bad_options() -> None:
    r = CliRunner().invoke(sim, ["--seed", "7", "--validators", "5", "--twins", "1"])
    assert r.exit_code == 0 and "1 scenarios" in r.output
    r = CliRunner().invoke(sim, ["--validators", "4", "--twins", "2"])
    assert r.exit_code == 2


def test_byzantine_option_and_a_caught_mutant() -> None:
    r = CliRunner().invoke(sim, ["--seeds", "3", "--byzantine", "1"])
    assert r.exit_code == 0 and "1 Byzantine" in r.output, r.output
    r = CliRunner().invoke(sim, ["--seed", "2", "--byzantine", "1", "--mutant", "l28_ignore_lock"])
    assert r.exit_code == 1 and "agreement" in r.output
    assert "--byzantine 1 --mutant l28_ignore_lock" in r.output
    r = CliRunner().invoke(sim, ["--validators", "4", "--twins", "1", "--byzantine", "1"])
    assert r.exit_code == 2
