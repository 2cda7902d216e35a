"""The node's API backend (node/backend.py) over a bare ledger: no sockets, no daemon."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import trio

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import PRECOMMIT, Commit, Vote
from ads_ledger.node.api.backend import HeightUnavailable
from ads_ledger.node.backend import NodeApi
from ads_ledger.node.block_sync import BlockSync
from ads_ledger.node.ledger import Ledger
from ads_ledger.state.genesis import Genesis

CHAIN = "api-backend-test"
T0 = int(time.time() * 1000) - 60_000
VALS = [SigningKey(bytes([0x41 + i]) * 32) for i in range(4)]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Any]:
    g = Genesis(chain_id=CHAIN, genesis_time=T0, validators=[(v.pub, 10) for v in VALS],
                members=[VALS[1].pub], threshold=1, anchors=[])  # fmt: skip
    ledger = Ledger.open(tmp_path / "db", g)
    fake = SimpleNamespace(ledger=ledger, chain_id=CHAIN, node_key=VALS[0], sync=BlockSync(),
                           intake=SimpleNamespace(committed_txids=(0, [])))  # fmt: skip
    yield fake
    ledger.close()


def add_block(ledger: Ledger) -> Any:
    h = ledger.height + 1
    block = ledger.propose_block(h, 0, T0 + 1000 * h, VALS[0].pub, ledger.commit_at(h - 1))
    votes = [Vote(PRECOMMIT, h, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
    ledger.commit_block(block, Commit.from_votes(ledger.validators_at(h), votes))
    return block


def test_status_and_reads(node: Any) -> None:
    api = NodeApi(node)
    st = api.status()
    assert st.latest_height == 0 and st.latest_block_id is None and not st.catching_up
    with pytest.raises(HeightUnavailable):
        api.get_state(b"k", None)
    block = add_block(node.ledger)
    st = api.status()
    assert st.latest_height == 1 and st.latest_block_id == block.block_id()
    node.sync.on_status("p", 5, now=0.0)
    assert api.status().catching_up
    assert api.get_block(1) == block and api.get_commit(1) is not None and api.get_commit(2) is None
    assert api.get_validators(3) is not None and api.get_validators(4) is None
    assert api.get_validators(0) is None
    with pytest.raises(HeightUnavailable) as e:
        api.get_state(b"k", 2)
    assert e.value.reason == "future"
    assert api.get_state(b"k", 1).height == 1


def test_a_decided_block_reaches_subscribers(node: Any) -> None:
    api = NodeApi(node)

    async def main() -> None:
        async with api.subscribe_blocks() as stream:
            block = add_block(node.ledger)
            api.on_decided(block)
            note = await stream.__anext__()
            assert note.header == block.header and note.num_txs == 0
        assert not api._subs

    trio.run(main)
