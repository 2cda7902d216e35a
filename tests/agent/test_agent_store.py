"""The agent's durable state: replay seqs written before acting survive kill -9; the audit log
is append-only, ordered, filterable and bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chargepoint_agent.store import AgentStore

ISSUER = b"\x07" * 32


def entry(seq: int, issuer: bytes = ISSUER) -> dict[str, object]:
    return {"acl_height": 3, "at": 1000 + seq, "cmd": b"\x00" * 32, "code": "ok", "issuer": issuer, "receipt": None}


def test_accept_then_complete_and_read_back(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "s") as s:
        assert s.last_seq(ISSUER) is None
        n = s.accept(ISSUER, 5, entry(5))
        s.complete(n, {"receipt": {"code": "ok"}, "sig": b"\x01" * 64}, "ok")
        s.log(entry(0, b"\x08" * 32) | {"code": "scope"})
        with pytest.raises(ValueError):
            s.accept(ISSUER, 5, entry(5))  # the caller checked replay; the store refuses anyway
        assert s.last_seq(ISSUER) == 5
    with AgentStore(tmp_path / "s") as s:  # reopened: everything is there, numbering continues
        es, nxt = s.read(since=0, limit=100, issuer=None)
        assert nxt == 2 and s.count() == 2
        assert [e["n"] for e in es] == [0, 1] and es[0]["receipt"]["receipt"] == {"code": "ok"}
        assert [e["code"] for e in s.read(since=0, limit=100, issuer=b"\x08" * 32)[0]] == ["scope"]
        assert s.log(entry(1)) == 2


def test_audit_log_is_bounded(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "s", max_audit=1000) as s:
        for i in range(3100):
            s.log(entry(i))
        kept = [e["n"] for e in s.read(since=0, limit=10_000, issuer=None)[0]]
        assert kept[-1] == 3099 and 1000 <= len(kept) <= 1000 + 1024
        assert kept == sorted(kept)


CHILD = """
import sys
from chargepoint_agent.store import AgentStore
s = AgentStore(sys.argv[1])
seq = (s.last_seq(b"\\x07" * 32) or 0) + 1
while True:
    s.accept(b"\\x07" * 32, seq, {"acl_height": 1, "at": seq, "cmd": b"", "code": "ok", "issuer": b"\\x07" * 32, "receipt": None})
    print(seq, flush=True)  # only after the write transaction committed (fsynced)
    seq += 1
"""


def test_accepted_seq_survives_kill_9(tmp_path: Path) -> None:
    """A seq the store said it accepted is never lost: kill -9 at random instants, 5 times."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    for round_ in range(5):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "s")], stdout=subprocess.PIPE, env=env)
        try:
            assert p.stdout is not None
            first = p.stdout.readline()  # started and accepting (however loaded the machine is)
            time.sleep(0.02 + 0.05 * round_)  # then kill at some instant of the write loop
            os.kill(p.pid, signal.SIGKILL)
            out, _ = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
        seen = [int(x) for x in (first + out).split()]
        assert seen, "the child accepted nothing before it was killed"
        with AgentStore(tmp_path / "s") as s:
            assert (s.last_seq(ISSUER) or 0) >= seen[-1]
            ns = [e["n"] for e in s.read(since=0, limit=10**6, issuer=None, max_scan=10**6)[0]]
            assert ns == list(range(len(ns)))  # no hole, no duplicate in the log
