"""TEST-ONLY: a `chargepoint-agent run` process and a keep-alive HTTP connection to it (the
devnet, the live tests and bench/bench_agent.py drive agents through this one class)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ads_ledger.core import codec

__all__ = ["AgentProcess"]

CLK = os.sysconf("SC_CLK_TCK")


class AgentProcess:
    def __init__(self, home: Path, profile: Path | None = None) -> None:
        self.home, self.profile = home, profile
        self.proc: subprocess.Popen[bytes] | None = None
        cfg = (home / "config.toml").read_text()
        self.port = int(cfg.split('listen = "127.0.0.1:')[1].split('"')[0])
        self.url = f"http://127.0.0.1:{self.port}"
        self.conn: http.client.HTTPConnection | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it answers GET /status; RuntimeError with its log if not."""
        log = open(self.home / "agent.log", "ab")  # noqa: SIM115 — the child keeps it
        prof = [] if self.profile is None else ["-m", "cProfile", "-o", str(self.profile)]
        self.proc = subprocess.Popen([sys.executable, *prof, "-m", "chargepoint_agent.cli", "run", "--home",
                                      str(self.home)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.status()
                return
            except OSError:
                self.conn = None
                time.sleep(0.2)
        raise RuntimeError("the agent did not start: " + (self.home / "agent.log").read_text()[-2000:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """A crash at an arbitrary instant."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.conn = None

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
        for attempt in (0, 1):  # a keep-alive connection the agent closed is retried once
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def status(self) -> dict[str, Any]:
        st, body = self.request("GET", "/status")
        if st != 200:
            raise OSError(f"GET /status answered {st}")
        return json.loads(body)  # type: ignore[no-any-return]

    def send(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """POST /commands (msgpack both ways): (HTTP status, the receipt envelope)."""
        st, body = self.request("POST", "/commands", raw, {"content-type": "application/msgpack",
                                                             "accept": "application/msgpack"})  # fmt: skip
        return st, codec.decode(body)  # type: ignore[return-value]

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent status never matched: {st}")
            time.sleep(0.05)

    def proc_stats(self) -> tuple[int, float]:
        """(VmRSS in kB, utime+stime in seconds) of the agent process, from /proc."""
        assert self.proc is not None
        pid = self.proc.pid
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rss, (int(f[11]) + int(f[12])) / CLK  # fields 14, 15 (utime, stime)
