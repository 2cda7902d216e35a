"""Governance on a live network: a 2-of-3 `gov validators.set` removes a validator, effective
at H+2 (DESIGN §4, §6); the remaining three then decide alone, without the removed one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ads_ledger.client.http import ApiResponseError
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.testing.devnet import Network, create


def test_validator_removed_by_governance_from_h_plus_2(tmp_path: Path) -> None:
    info = create(tmp_path / "net", 4)
    net = Network(tmp_path / "net")
    try:
        net.start_all()
        net.wait_height(2, timeout=60)
        members = [load_key(Path(p)) for p in info["gov"]]
        gone = bytes.fromhex(info["nodes"][3]["validator"])
        body = {"action": "validators.set", "args": {"updates": [[gone, 0]]}}
        with net.client(0, timeout_s=30.0) as c:
            # one member's signature is below the threshold: refused before inclusion, typed
            one = make_envelope(info["chain_id"], "gov", members[0], 1, body)
            with pytest.raises(ApiResponseError) as e:
                c.submit_tx(one, wait_commit=True)
            assert e.value.status == 400 and e.value.code == "quorum"
            two = make_envelope(info["chain_id"], "gov", members[0], 1, body, cosigners=[members[1]])
            r = c.submit_tx(two, wait_commit=True)
            assert r["ok"] is True, r
            h = r["height"]
            assert len(c.validators(h + 1)) == 4  # unchanged for H+1
            net.wait_height(h + 2, nodes=[0], timeout=60)
            vs = c.validators(h + 2)
            assert len(vs) == 3 and vs.index_of(gone) is None
        # the removed validator's process dies; the other three still hold > 2/3 of the new set
        net.kill(3)
        time.sleep(0.5)
        top = max(x for x in net.heights()[:3] if x)
        net.wait_height(top + 3, nodes=[0, 1, 2], timeout=60)
        with net.client(1) as c:
            hdr, commit = c.commit(top + 2)
            assert all(idx < 3 for idx, _ in commit.sigs)
    finally:
        for i in list(net.procs):
            net.kill(i)
