"""JSON rendering of ledger values and its inverses: round trips, and refusal of bad shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.client import jsonenc
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Commit, Header, ValidatorSet

b32 = st.binary(min_size=32, max_size=32)
uint = st.integers(0, 2**63 - 1)

headers = st.builds(
    Header, chain_id=st.text(min_size=1, max_size=64), height=st.integers(1, 2**63 - 1), time=uint,
    prev=b32, txs_root=b32, evidence_root=b32, state_root=b32, validators=b32,
    next_validators=b32, proposer=b32, last_commit=b32,
)  # fmt: skip
commits = st.builds(
    Commit, height=uint, round=uint, block=b32,
    sigs=st.sets(st.integers(0, 255), max_size=8).map(
        lambda idx: tuple((i, bytes([i]) * 64) for i in sorted(idx))),
)  # fmt: skip
proofs = st.builds(SparseProof, leaf=st.none() | st.tuples(b32, b32),
                   siblings=st.lists(b32, max_size=20).map(tuple))  # fmt: skip
valsets = st.dictionaries(b32, st.integers(1, 2**40), min_size=1, max_size=10).map(
    lambda d: ValidatorSet(tuple(d.items())))


def wire(value: Any) -> Any:
    """What a client sees: rendered, serialised and parsed again."""
    return json.loads(jsonenc.dumps(value))


@settings(max_examples=60, deadline=None)
@given(headers, commits, proofs, valsets)
def test_round_trips(h: Header, c: Commit, p: SparseProof, vs: ValidatorSet) -> None:
    assert jsonenc.header_from_json(wire(h.to_obj())) == h
    assert jsonenc.commit_from_json(wire(c.to_obj())) == c
    assert jsonenc.proof_from_json(wire(p.to_obj())) == p
    rendered = wire([{"pub": k, "power": w} for k, w in vs.validators])
    assert jsonenc.validators_from_json(rendered) == vs


def test_bytes_render_lowercase_hex_recursively() -> None:
    assert wire({"a": [b"\xab\x01", (b"",)], "b": {"c": None, "d": True, "e": -1}}) == {
        "a": ["ab01", [""]], "b": {"c": None, "d": True, "e": -1}}  # fmt: skip
    with pytest.raises(TypeError):
        jsonenc.to_json({"x": 1.5})


@pytest.mark.parametrize("text, length, fault", [
    ("AB", None, "lowercase"), ("abc", None, "odd"), ("zz", None, "lowercase"), (5, None, "hex"),
    ("ab", 2, "must be 2 bytes"), ("ab" * 5000, None, "longer"),
])  # fmt: skip
def test_parse_hex_refusals(text: Any, length: int | None, fault: str) -> None:
    with pytest.raises(DecodeError, match=fault):
        jsonenc.parse_hex(text, "thing", length=length)


def test_inverse_parsers_refuse_bad_shapes() -> None:
    z = bytes(32)
    good = wire(Header("c", 1, 0, z, z, z, z, z, z, z, z).to_obj())
    bad: Any
    for bad in (None, [], {**good, "prev": "00"}, {k: v for k, v in good.items() if k != "time"},
                {**good, "height": 0}, {**good, "state_root": "0" * 63 + "G"}):  # fmt: skip
        with pytest.raises(DecodeError):
            jsonenc.header_from_json(bad)
    base = {"height": 1, "round": 0, "block": "00" * 32}
    for bad_c in ({**base, "sigs": [[0]]}, {**base, "sigs": [[1, "00" * 64], [0, "00" * 64]]},
                  {**base, "sigs": "x"}, {**base, "block": "00", "sigs": []}):  # fmt: skip
        with pytest.raises(DecodeError):
            jsonenc.commit_from_json(bad_c)
    for bad_p in ({"leaf": ["00" * 32], "siblings": []}, {"leaf": None, "siblings": ["00"]},
                  {"leaf": None, "siblings": ["00" * 32] * 257}, {"leaf": None}):  # fmt: skip
        with pytest.raises(DecodeError):
            jsonenc.proof_from_json(bad_p)
    for bad_v in ([], [{"pub": "00" * 32, "power": 0}], [{"pub": "00" * 32}], "x"):
        with pytest.raises(DecodeError):
            jsonenc.validators_from_json(bad_v)
