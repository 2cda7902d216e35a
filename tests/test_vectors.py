"""Conformance: every vector file in $ADS_VECTORS_DIR (default ../shared/vectors).

Each file kind has one checker; a directory with other seeds or more cases runs unchanged.
An unknown *.json file fails the suite, so a new kind of vector is never skipped silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey, sign_bytes, verify
from ads_ledger.core.merkle import PLACEHOLDER, SparseProof, list_root, verify_proof
from ads_ledger.core.types import Header, ValidatorSet
from ads_ledger.state.envelope import parse_envelope
from conftest import vectors_dir


def from_json(v: Any) -> Any:
    """JSON vector notation -> msgpack value ({"$bin": hex} is bytes)."""
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            return bytes.fromhex(v["$bin"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def check_codec(d: dict[str, Any]) -> int:
    n = 0
    for case in d["valid"]:
        value = from_json(case["value"])
        raw = bytes.fromhex(case["hex"])
        assert codec.encode(value) == raw, case.get("name")
        assert codec.decode(raw) == value, case.get("name")
        n += 1
    for case in d["invalid"]:
        with pytest.raises(codec.DecodeError):
            codec.decode(bytes.fromhex(case["hex"]))
        n += 1
    return n


def check_signing(d: dict[str, Any]) -> int:
    n = 0
    for case in d["signatures"]:
        sb = sign_bytes(case["tag"], case["chain_id"], from_json(case["body"]))
        assert sb.hex() == case["sign_bytes"]
        key = SigningKey(bytes.fromhex(case["seed"]))
        assert key.pub.hex() == case["pub"]
        assert key.sign(sb).hex() == case["sig"]
        assert verify(key.pub, bytes.fromhex(case["sig"]), sb)
        n += 1
    for case in d["transactions"]:
        sb = sign_bytes("ads/tx/1", case["chain_id"], from_json(case["unsigned"]))
        assert sb.hex() == case["sign_bytes"]
        assert H(sb).hex() == case["txid"]
        env = parse_envelope(bytes.fromhex(case["envelope_hex"]))
        assert env.unsigned() == from_json(case["unsigned"])
        assert env.txid(case["chain_id"]).hex() == case["txid"]
        env.verify_signatures(case["chain_id"])
        n += 1
    return n


def check_smt(d: dict[str, Any]) -> int:
    from ads_ledger.node.storage.jmt import MemoryTree

    assert bytes.fromhex(d["placeholder"]) == PLACEHOLDER
    n = 0
    for case in d["cases"]:
        root = bytes.fromhex(case["root"])
        tree = MemoryTree()
        tree.update({bytes.fromhex(k): bytes.fromhex(v) for k, v in case["items"]})
        assert tree.root() == root, f"tree of {len(case['items'])} items"
        for p in case["proofs"]:
            key = bytes.fromhex(p["key"])
            value = None if p["value"] is None else bytes.fromhex(p["value"])
            try:
                proof = SparseProof.from_obj(from_json(p["proof"]))
            except codec.DecodeError:
                assert not p["valid"]
                continue
            assert verify_proof(root, key, value, proof) == p["valid"], p
            if p["valid"]:
                assert tree.prove(key) == proof  # we build the very proof the vector holds
            n += 1
    return n


def check_list_root(d: dict[str, Any]) -> int:
    for case in d["cases"]:
        leaves = [bytes.fromhex(x) for x in case["leaves"]]
        assert list_root(leaves).hex() == case["root"]
    return len(d["cases"])


def check_header(d: dict[str, Any]) -> int:
    vs = ValidatorSet.from_obj(from_json(d["validators"]))
    assert vs.to_obj() == from_json(d["validators"]), "vector lists validators in set order"
    assert vs.hash().hex() == d["validators_hash"]
    header = Header.from_obj(from_json(d["header"]))
    assert header.encode().hex() == d["header_hex"]
    assert header.block_id().hex() == d["block_id"]
    assert Header.from_obj(codec.decode(bytes.fromhex(d["header_hex"]))) == header
    return 3


def check_wycheproof(d: dict[str, Any]) -> int:
    for case in d["cases"]:
        ok = verify(bytes.fromhex(case["pub"]), bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]))
        assert ok == case["valid"], f"wycheproof case {case['id']} {case.get('comment')}"
    return len(d["cases"])


CHECKERS: dict[str, Callable[[dict[str, Any]], int]] = {
    "codec": check_codec,
    "signing": check_signing,
    "smt": check_smt,
    "list_root": check_list_root,
    "header": check_header,
    "ed25519_wycheproof": check_wycheproof,
}


def kind_of(path: Path) -> str:
    for kind in sorted(CHECKERS, key=len, reverse=True):
        if path.stem == kind or path.stem.startswith(kind + "_") or path.stem.startswith(kind + "-"):
            return kind
    return path.stem


def vector_files() -> list[Path]:
    files = sorted(vectors_dir().glob("*.json"))
    assert files, f"no vector files in {vectors_dir()} (set ADS_VECTORS_DIR)"
    return files


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.name)
def test_vector_file(path: Path) -> None:
    kind = kind_of(path)
    assert kind in CHECKERS, f"no checker for vector file {path.name}"
    n = CHECKERS[kind](json.loads(path.read_text()))
    assert n > 0, f"{path.name} held no cases"
