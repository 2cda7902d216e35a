"""FileSignerState under a real kill -9: every signature the guard released is covered by
the persisted state, which is always readable (old or new, never torn)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ads_ledger.consensus.privval import DoubleSignGuard, DoubleSignRefused, FileSignerState
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Vote

SEED = bytes(range(32))
CHILD = r"""
import sys
from ads_ledger.consensus.privval import DoubleSignGuard, FileSignerState
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, PREVOTE, Vote
g = DoubleSignGuard(SigningKey(bytes(range(32))), FileSignerState(sys.argv[1]))
h = g.last.height + 1 if g.last else 1
while True:
    for t in (PREVOTE, PRECOMMIT):
        v = g.sign_vote("kill-chain", Vote(t, h, 0, bytes([h % 256]) * 32, g.pub))
        print(h, t, v.sig.hex(), flush=True)  # released
    h += 1
"""


def test_released_signatures_are_always_covered_by_the_state(tmp_path: Path) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    path = tmp_path / "guard.state"
    rng = random.Random(7)
    deadline = time.monotonic() + 60
    key = SigningKey(SEED)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        try:
            for _ in range(rng.randrange(3, 40)):
                assert proc.stdout.readline(), "child died before being killed"
                assert time.monotonic() < deadline
            time.sleep(rng.random() * 0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            lines = proc.stdout.read().splitlines()
            proc.stdout.close()
        whole = [ln.split() for ln in lines if len(ln.split()) == 3]  # a kill can tear the last print
        last_line = whole[-1] if whole else None
        g = DoubleSignGuard(key, FileSignerState(path))  # readable: old or new state
        assert g.last is not None
        if last_line is not None:
            h, t, sig = int(last_line[0]), int(last_line[1]), bytes.fromhex(last_line[2])
            step = 2 if t == PREVOTE else 3
            assert (g.last.height, g.last.round, g.last.step) >= (h, 0, step)
            with pytest.raises(DoubleSignRefused):  # a conflicting vote is refused
                g.sign_vote("kill-chain", Vote(t, h, 0, b"\xee" * 32, key.pub))
            if (g.last.height, g.last.step) == (h, step):
                assert g.last.signature == sig
        assert not path.with_name("guard.state.tmp").exists() or path.exists()
    assert g.last is not None
    assert g.sign_vote("kill-chain", Vote(PRECOMMIT, g.last.height + 1, 0, None, key.pub)).sig
