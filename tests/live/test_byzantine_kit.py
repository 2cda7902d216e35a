"""The TEST-ONLY Byzantine kit is refused outside test chains (`ads node start --byzantine`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ads_ledger.cli.main import main
from ads_ledger.testing.byzantine import BEHAVIOURS, Byzantine, ByzantineRefused, byzantine_allowed
from ads_ledger.testing.testnet import init_testnet


def test_only_test_and_devnet_chains_allow_it() -> None:
    assert byzantine_allowed("ads-devnet") and byzantine_allowed("ads-test-7")
    assert not byzantine_allowed("ads-main") and not byzantine_allowed("ads")


def test_make_refuses_unknown_names_and_production_chains() -> None:
    honest = Byzantine.make(None, SimpleNamespace(chain_id="ads-main"))  # type: ignore[arg-type]
    assert type(honest) is Byzantine and honest.on_send(None) is False  # type: ignore[arg-type]
    with pytest.raises(ByzantineRefused, match="TEST-ONLY"):
        Byzantine.make("withhold", SimpleNamespace(chain_id="ads-main"))  # type: ignore[arg-type]
    with pytest.raises(ByzantineRefused, match="unknown"):
        Byzantine.make("nope", SimpleNamespace(chain_id="ads-devnet"))  # type: ignore[arg-type]
    assert set(BEHAVIOURS) == {"forge_auth", "invalid_txs", "old_evidence", "proposal_flood",
                               "equivocate", "lying_sync", "withhold"}  # fmt: skip


@pytest.mark.parametrize("chain_id, name, says", [
    ("ads-main", "withhold", "not a test chain"),
    ("ads-devnet", "nope", "unknown Byzantine behaviour"),
])  # fmt: skip
def test_node_start_refuses_with_a_clear_error(tmp_path: Path, chain_id: str, name: str, says: str) -> None:
    init_testnet(tmp_path / "net", 1, chain_id, None)
    r = CliRunner().invoke(main, ["node", "start", "--home", str(tmp_path / "net" / "node0"), "--byzantine", name])
    assert r.exit_code == 1, r.output
    assert says in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------- one proposal per round


def test_a_proposal_with_another_block_does_not_shadow_the_real_one(tmp_path: Path) -> None:
    """Any peer can copy a proposer's signed proposal and attach another block. That copy
    must be dropped without hiding the real proposal, which may arrive after it (relayed, or
    re-sent once a link is back)."""
    from dataclasses import replace

    from ads_ledger.consensus.messages import ProposalMessage
    from ads_ledger.core.types import ZERO32, Block, Header, Proposal
    from ads_ledger.node.config import load_config, load_key
    from ads_ledger.node.daemon import Node

    info = init_testnet(tmp_path / "net", 2, "ads-devnet", None, fast=True)
    node = Node(load_config(Path(info["nodes"][0]["home"])))
    try:
        key = load_key(Path(info["nodes"][1]["home"]) / "validator_key.json")
        vs = node.ledger.validators_at(1).hash()
        hdr = Header(chain_id="ads-devnet", height=1, time=node.genesis.genesis_time + 1, prev=ZERO32,
                     txs_root=ZERO32, evidence_root=ZERO32, state_root=ZERO32, validators=vs,
                     next_validators=vs, proposer=key.pub, last_commit=ZERO32)  # fmt: skip
        real = Block(hdr, (), (), None)
        signed = Proposal(1, 0, real.block_id(), -1, key.pub).signed("ads-devnet", key)
        forged = ProposalMessage(signed, Block(replace(hdr, time=hdr.time + 1), (), (), None))
        assert not node._first_proposal(forged), "a copy beside another block was kept and relayed"
        assert node._first_proposal(ProposalMessage(signed, real)), "the real proposal after the copy was dropped"
        assert not node._first_proposal(ProposalMessage(signed, real)), "the same proposal twice"
    finally:
        node.close()
