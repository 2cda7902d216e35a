"""The TEST-ONLY Byzantine kit is refused outside test chains (`ads node start --byzantine`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ads_ledger.byzantine import BEHAVIOURS, Byzantine, ByzantineRefused, byzantine_allowed
from ads_ledger.cli import init_testnet, main


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
