"""The agent's endpoint under hostile input (a real `chargepoint-agent run` process): garbage,
oversized and slow requests get a typed 4xx or a signed `malformed` receipt, never a crash, and
slow clients do not stall the others. The agent runs with no reachable node (nothing on the
command path needs one)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.testing.testnet import free_port
from ads_ledger.wallet.commands import check_receipt, sign_command
from chargepoint_agent.config import AgentConfig, write_config, write_device_key

CHAIN = "ads-hostile"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, bytes]]:
    home = tmp_path_factory.mktemp("agent")
    key = SigningKey.generate()
    write_device_key(home, key)
    port = free_port()
    write_config(AgentConfig(home=home, api_listen=f"127.0.0.1:{port}", nodes=[f"http://127.0.0.1:{free_port()}"],
                             chain_id=CHAIN, trust_height=1, trust_hash="00" * 32))  # fmt: skip
    log = open(home / "agent.log", "ab")
    p = subprocess.Popen([sys.executable, "-m", "chargepoint_agent.cli", "run", "--home", str(home)], stdout=log,
                         stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield port, key.pub
        assert p.poll() is None, "the agent died"
        assert "Traceback" not in (home / "agent.log").read_text()
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def post(port: int, body: bytes, ctype: str = "application/msgpack") -> bytes:
    head = (f"POST /commands HTTP/1.1\r\nhost: x\r\ncontent-type: {ctype}\r\naccept: application/msgpack\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    return raw_request(port, head + body)


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else 0


def test_garbage_oversized_and_malformed(agent: tuple[int, bytes]) -> None:
    port, cp = agent
    assert status_of(raw_request(port, b"HELLO\r\n\r\n")) == 400
    assert status_of(raw_request(port, b"GET /status HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20_000 + b"\r\n\r\n")) == 431
    assert status_of(post(port, b"\x00" * 100_000)) == 413
    assert status_of(post(port, b"{}", "text/plain")) == 415
    resp = post(port, b"\x81\xa1x\x01")
    assert status_of(resp) == 400
    receipt = codec.decode(resp.split(b"\r\n\r\n", 1)[1])
    assert receipt["receipt"]["code"] == "malformed"  # type: ignore[index]
    # a well-signed command while the agent has no access list: a signed refusal
    k = SigningKey.generate()
    now = int(time.time() * 1000)
    env = sign_command(k, CHAIN, cp=cp, action="meter.read", params={}, seq=1, issued_at=now, expires_at=now + 60_000)
    resp = post(port, env)
    assert status_of(resp) == 200
    assert check_receipt(cp, CHAIN, env, codec.decode(resp.split(b"\r\n\r\n", 1)[1]))["code"] == "stale_acl"
    # JSON form
    body = json.dumps({"envelope": env.hex()}).encode()
    head = (f"POST /commands HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    resp = raw_request(port, head + body)
    answer = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert status_of(resp) == 200 and answer["receipt"]["code"] == "stale_acl"  # bytes as hex in JSON
    assert answer["receipt"]["cmd"] == check_receipt(cp, CHAIN, env, codec.decode(post(port, env).split(b"\r\n\r\n", 1)[1]))["cmd"].hex()


def test_random_bodies_never_crash_and_never_pass(agent: tuple[int, bytes]) -> None:
    port, _ = agent
    rng = random.Random(7)
    for _ in range(200):
        body = rng.randbytes(rng.randrange(0, 400))
        resp = post(port, body)
        assert status_of(resp) in (200, 400), resp[:200]
        rec = codec.decode(resp.split(b"\r\n\r\n", 1)[1])
        assert rec["receipt"]["code"] != "ok"  # type: ignore[index]


def test_slow_clients_do_not_stall_others(agent: tuple[int, bytes]) -> None:
    port, _ = agent
    slow = []
    for _ in range(20):  # half-sent requests, held open
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /commands HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        slow.append(s)
    try:
        t0 = time.monotonic()
        resp = raw_request(port, b"GET /status HTTP/1.1\r\nhost: x\r\n\r\n")
        assert status_of(resp) == 200 and time.monotonic() - t0 < 2
    finally:
        for s in slow:
            s.close()
