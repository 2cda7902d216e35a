"""FileWAL under a real kill -9: every record acknowledged after a synced append survives,
and what survives is a gap-free prefix of what was appended."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ads_ledger.consensus.wal import FileWAL

PER_HEIGHT = 50
CHILD = r"""
import sys
from ads_ledger.consensus.wal import FileWAL
w = FileWAL(sys.argv[1], segment_bytes=4096)
h, recs = w.replay()
i = h * {per} + len(recs)
while True:
    sync = i % 3 == 0
    w.append(b"%08d" % i * 4, sync=sync)
    if sync:
        print(i, flush=True)  # acknowledged: it is on disk
    if i % {per} == {per} - 1:
        w.end_height(i // {per} + 1)
    i += 1
""".format(per=PER_HEIGHT)


def child_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def check_log(d: Path) -> tuple[int, int]:
    """Replay: records after the last marker must be the next numbers in order, gap-free.
    Returns (ended height, number of the last record or -1)."""
    w = FileWAL(d)
    h, recs = w.replay()
    w.close()
    nums = [int(r[:8]) for r in recs]
    assert all(r == b"%08d" % n * 4 for r, n in zip(recs, nums))
    assert nums == list(range(h * PER_HEIGHT, h * PER_HEIGHT + len(nums)))
    return h, (nums[-1] if nums else h * PER_HEIGHT - 1)


def test_synced_records_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    d = tmp_path / "wal"
    deadline = time.monotonic() + 60
    acked_total = 0
    for round_no in range(5):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(d)], env=child_env(),
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        target = rng.randrange(5, 150)
        last_acked = -1
        try:
            for _ in range(target):
                line = proc.stdout.readline()
                assert line, "child died before being killed"
                last_acked = int(line)
                assert time.monotonic() < deadline
            time.sleep(rng.random() * 0.01)  # land the kill anywhere in the next appends
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            # the child runs ahead of our reading: every line it printed was acknowledged
            for line in proc.stdout.read().splitlines():
                last_acked = int(line)
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        h, last = check_log(d)
        # everything acknowledged is in the log (either replayed or before an ended height)
        assert last >= last_acked, (round_no, h, last, last_acked)
        acked_total += target
    assert acked_total >= 25
    assert len([p for p in d.iterdir() if p.suffix == ".wal"]) == 1  # rotation kept it small
