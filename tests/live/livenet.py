"""A running devnet for a module's live tests: validators on loopback (and, if asked, the
simulated charge point's agent), every process stopped when the module is done."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest

from ads_ledger.testing.devnet import Network, create


@contextmanager
def running_devnet(tmp: pytest.TempPathFactory, name: str, *, height: int = 2, validators: int = 4,
                   agent: bool = False, params: dict[str, int] | None = None) -> Iterator[Network]:  # fmt: skip
    d = tmp.mktemp(name) / "net"
    create(d, validators, params=params)
    net = Network(d)
    try:
        net.start_all()
        net.wait_height(height, timeout=60)
        if agent:
            net.start_agent()
        yield net
    finally:
        net.stop_agent()
        for i in list(net.procs):
            net.kill(i)
