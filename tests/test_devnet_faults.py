"""Multi-process fault tests: real validator processes on loopback (DESIGN §6, issue 4 item 8).

Every test stops every process it started, pass or fail (the `net` fixture's finalizer).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from ads_ledger.devnet import Network, create



@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    create(tmp_path / "net", 4)
    n = Network(tmp_path / "net")
    try:
        n.start_all()
        yield n
    finally:
        for i in list(n.procs):
            n.kill(i)


def block_ids(net: Network, node: int, upto: int) -> list[str]:
    with net.client(node) as c:
        return [c.commit(h)[0].block_id().hex() for h in range(1, upto + 1)]


def test_kill9_restart_catches_up_and_agrees(net: Network) -> None:
    net.wait_height(3, timeout=60)
    net.kill(3)
    hs = net.wait_height(max(h for h in net.heights() if h) + 5, nodes=[0, 1, 2], timeout=60)
    net.start(3)
    target = max(h for h in hs if h)
    net.wait_height(target + 2, timeout=90)
    ref = block_ids(net, 0, target)
    for i in (1, 2, 3):
        assert block_ids(net, i, target) == ref, f"node{i} disagrees with node0"


def test_two_of_four_down_halts_then_resumes(net: Network) -> None:
    net.wait_height(2, timeout=60)
    net.stop(2)
    net.stop(3)
    time.sleep(1.5)  # let blocks in flight land
    before = net.heights()[:2]
    time.sleep(4)
    after = net.heights()[:2]
    assert after == before, f"progress without a quorum: {before} -> {after}"
    net.start(2)
    net.start(3)
    net.wait_height(max(h for h in after if h) + 3, timeout=90)
    top = min(h for h in net.heights() if h)
    ref = block_ids(net, 0, top)
    for i in (1, 2, 3):
        assert block_ids(net, i, top) == ref
