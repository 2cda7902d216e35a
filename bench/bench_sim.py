"""Simulator speed: simulated heights/s (4 and 10 validators, fault-free and faulty) and
seeded scenarios/minute, against raw Ed25519 verifications/s measured in the same run.

    .venv/bin/python bench/bench_sim.py [--seconds 5]

Fault-free: one long scenario (no faults) per size, heights decided per wall second.
Faulty: seeded scenarios of `ads sim` (partitions, drops, delays, crash-restarts; one
twin for 4 validators, three for 10), heights per wall second over all correct nodes' minimum.
Scenarios/minute: the default `ads sim --twins 1` mix. `verify/height` is the number of
distinct signature checks the simulator really ran per decided height (the cache serves
repeats), so `verify/height × heights/s ÷ ed25519/s` is the share of time in Ed25519.
One JSON line, one human line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.sim import Scenario, run_scenario  # noqa: E402


def _limits(seconds: float) -> dict[str, Any]:
    try:
        from limits import measure_limits  # type: ignore[import-not-found]

        return dict(measure_limits(seconds))
    except ImportError:  # measure inline
        import nacl.bindings
        import nacl.signing

        key = nacl.signing.SigningKey(b"\x01" * 32)
        sm = key.sign(b"m" * 200)
        pub = bytes(key.verify_key)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                nacl.bindings.crypto_sign_open(bytes(sm), pub)
            n += 100
        return {"ed25519_verify_per_s": round(n / (time.perf_counter() - t0))}


def fault_free(validators: int, seconds: float) -> dict[str, float]:
    heights = 0
    verifies = 0
    t0 = time.perf_counter()
    seed = 0
    while time.perf_counter() - t0 < seconds:
        r = run_scenario(Scenario(seed=seed, validators=validators, heights=50))
        assert r.ok, r.violations
        heights += r.min_height
        verifies += r.stats["verify_unique"]
        seed += 1
    dt = time.perf_counter() - t0
    return {"heights_per_s": heights / dt, "verify_per_height": verifies / max(heights, 1)}


def faulty(validators: int, twins: int, seconds: float) -> dict[str, float]:
    heights = scenarios = verifies = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sc = Scenario.from_seed(scenarios, validators=validators, twins=twins, heights=3)
        r = run_scenario(sc)
        assert r.ok, (r.violations, sc.replay_hint())
        heights += r.min_height
        verifies += r.stats["verify_unique"]
        scenarios += 1
    dt = time.perf_counter() - t0
    return {"heights_per_s": heights / dt, "scenarios_per_min": 60 * scenarios / dt,
            "verify_per_height": verifies / max(heights, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0, help="wall time per measurement")
    a = ap.parse_args()
    res: dict[str, Any] = {
        "ff4": fault_free(4, a.seconds),
        "ff10": fault_free(10, a.seconds),
        "faulty4": faulty(4, 1, a.seconds),
        "faulty10": faulty(10, 3, a.seconds),
    }
    res["limits"] = _limits(min(a.seconds, 1.0))
    res = {k: ({kk: round(vv, 1) for kk, vv in v.items()} if k != "limits" else v) for k, v in res.items()}
    print(json.dumps({"bench": "sim", **res}, sort_keys=True))
    ed = res["limits"]["ed25519_verify_per_s"]
    print(
        f"sim: fault-free {res['ff4']['heights_per_s']:.0f} heights/s (4 validators), "
        f"{res['ff10']['heights_per_s']:.0f} (10); faulty {res['faulty4']['heights_per_s']:.0f} "
        f"heights/s, {res['faulty4']['scenarios_per_min']:.0f} scenarios/min (4+1 twin), "
        f"{res['faulty10']['heights_per_s']:.0f} heights/s, "
        f"{res['faulty10']['scenarios_per_min']:.0f} scenarios/min (10+3 twins); "
        f"verify/height {res['ff4']['verify_per_height']:.0f} (4) {res['ff10']['verify_per_height']:.0f} (10) "
        f"| raw Ed25519 verify {ed:,}/s"
    )


if __name__ == "__main__":
    main()
