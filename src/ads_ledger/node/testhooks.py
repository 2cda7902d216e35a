"""TEST-ONLY: partitions for live fault tests, loaded by the daemon only when the environment
sets ADS_TEST_HOOKS=1 (never in production)."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from ads_ledger.node.p2p.peers import PeerManager

__all__ = ["links_loop"]


async def links_loop(home: Path, p2p: PeerManager) -> None:
    """HOME/test_links.json {"down": [node_id, ...]} severs links (partitions)."""
    path = home / "test_links.json"
    down: set[str] = set()
    while True:
        await trio.sleep(0.2)
        try:
            want = set(json.loads(path.read_text()).get("down", [])) if path.exists() else set()
        except (ValueError, OSError):
            continue
        for pid in want - down:
            p2p.set_link(pid, False)
        for pid in down - want:
            p2p.set_link(pid, True)
        down = want
