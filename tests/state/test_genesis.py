"""The genesis document: load/save, validation, initial state (genesis.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ads_ledger.core import codec
from ads_ledger.core.crypto import H
from ads_ledger.state.genesis import Genesis, GenesisError
from ads_ledger.state.records import DEFAULT_PARAMS
from ads_ledger.testing import key, make_test_genesis, test_device_ca
from ads_ledger.testing.trustlist import make_trust_list

EXAMPLE = Path(__file__).resolve().parents[2] / "genesis" / "devnet.example.json"


def test_round_trip_and_state(tmp_path: Path) -> None:
    tl = make_trust_list()
    g = make_test_genesis(tl.anchors_der(), n_validators=3)
    path = tmp_path / "genesis.json"
    g.save(path)
    loaded = Genesis.load(path)
    assert loaded == g and loaded.hash() == g.hash()
    w = loaded.state_writes()
    assert set(w) == {b"gov/members", b"gov/validators", b"gov/anchors", b"gov/params"}
    assert codec.decode(w[b"gov/anchors"]) == {"device": test_device_ca().anchors_der(), "eid": tl.anchors_der()}
    assert codec.decode(w[b"gov/params"]) == DEFAULT_PARAMS
    members = codec.decode(w[b"gov/members"])
    assert members == {"members": sorted(key(f"member{j}").pub for j in range(3)), "threshold": 2}
    vals = codec.decode(w[b"gov/validators"])
    assert vals == sorted(([p, 10] for p in (key(f"validator{i}").pub for i in range(3))), key=lambda v: (-v[1], v[0]))
    assert H(w[b"gov/validators"]) == loaded.validator_set().hash()


def test_example_is_marked_and_loads() -> None:
    g = Genesis.load(EXAMPLE)
    assert "NOT FOR PRODUCTION" in g.note
    assert len(g.anchors) == 1 and len(g.device_anchors) == 1 and g.threshold == 2
    assert g.validators[0][0] in {key(f"validator{i}").pub for i in range(4)}


def _doc(**kw: Any) -> dict[str, Any]:
    d = json.loads(EXAMPLE.read_text())
    d.update(kw)
    return d


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "Bad Chain"},
        {"genesis_time": -1},
        {"validators": []},
        {"validators": [["00" * 31, 10]]},
        {"validators": [["11" * 32, 0]]},
        {"governance": {"members": ["11" * 32], "threshold": 2}},
        {"governance": {"members": [], "threshold": 0}},
        {"trust_anchors": {"eid": ["not a cert"], "device": []}},
        {"trust_anchors": {"eid": [], "device": ["not a cert"]}},
        {"trust_anchors": []},  # the old list form: anchors now say what they are for
        {"trust_anchors": {"eid": []}},
        {"params": {"heartbeat_ms": 60_001}},
        {"params": {"unknown": 5}},
        {"extra": 1},
    ],
)
def test_bad_documents_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    p = tmp_path / "g.json"
    p.write_text(json.dumps(_doc(**change)))
    with pytest.raises(GenesisError):
        Genesis.load(p)


def test_leaf_certificate_is_not_an_anchor(tmp_path: Path) -> None:
    leaf_hex = make_trust_list().chain_der()[0].hex()
    p = tmp_path / "g.json"
    p.write_text(json.dumps(_doc(trust_anchors={"eid": [leaf_hex], "device": []})))
    with pytest.raises(GenesisError, match="CA"):
        Genesis.load(p)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text("{not json")
    with pytest.raises(GenesisError):
        Genesis.load(tmp_path / "g.json")
    with pytest.raises(GenesisError):
        Genesis.load(tmp_path / "missing.json")
