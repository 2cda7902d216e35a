"""The genesis document: a chain's id, start time, validators, governance, trust anchors, params.

A JSON file (bytes as lowercase hex; trust anchors as PEM text or DER hex):

    {"chain_id": str, "genesis_time": ms, "validators": [[pub hex, power], ...],
     "governance": {"members": [pub hex, ...], "threshold": k},
     "trust_anchors": {"eid": [PEM or DER hex, ...], "device": [PEM or DER hex, ...]},
     "params": {name: int, ...}, "note"?: str}

`eid` anchors root the eID brokers' seal certificates (`attest`), `device` anchors the charge
point manufacturers' certificates (device attestations, DESIGN §4).

`Genesis.load(path)` checks everything and raises `GenesisError` for anything off;
`state_writes()` is the initial state (DESIGN §5 keys `gov/*`) the first block builds on.
See genesis/README.md for making a production genesis.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ads_ledger.core import codec
from ads_ledger.core.crypto import H
from ads_ledger.core.errors import RemoteError
from ads_ledger.core.types import ValidatorSet
from ads_ledger.state.envelope import MAX_AUTH
from ads_ledger.state.governance import MAX_ANCHORS
from ads_ledger.state.records import (
    DEFAULT_PARAMS,
    GOV_ANCHORS,
    GOV_MEMBERS,
    GOV_PARAMS,
    GOV_VALIDATORS,
    param_error,
)

__all__ = ["Genesis", "GenesisError"]

_KEYS = {"chain_id", "genesis_time", "validators", "governance", "trust_anchors", "params"}
_CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")


class GenesisError(RemoteError, ValueError):
    """The genesis document is malformed or inconsistent."""


def _hex(s: Any, n: int, what: str) -> bytes:
    if type(s) is not str or len(s) != 2 * n:
        raise GenesisError(f"{what} must be {2 * n} hex characters")
    try:
        return bytes.fromhex(s)
    except ValueError as e:
        raise GenesisError(f"{what} is not hex") from e


def _anchor(s: Any) -> bytes:
    if type(s) is not str:
        raise GenesisError("each trust anchor must be a PEM string or DER hex")
    try:
        if "-----BEGIN CERTIFICATE-----" in s:
            cert = x509.load_pem_x509_certificate(s.encode())
        else:
            cert = x509.load_der_x509_certificate(bytes.fromhex(s))
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound) as e:
        raise GenesisError(f"trust anchor is not a CA certificate: {e}") from e
    if not bc.ca:
        raise GenesisError("a trust anchor must be a CA certificate (basicConstraints cA=true)")
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class Genesis:
    chain_id: str
    genesis_time: int
    validators: list[tuple[bytes, int]]
    members: list[bytes]
    threshold: int
    anchors: list[bytes] = field(default_factory=list)  # eid anchors, DER
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    device_anchors: list[bytes] = field(default_factory=list)  # manufacturer roots, DER

    def __post_init__(self) -> None:
        self.validate()
        # one form per document: validators in set order, every parameter explicit
        self.validators = list(self.validator_set().validators)
        self.params = self.full_params()

    def validate(self) -> None:
        """Raise GenesisError unless the document is consistent."""
        if type(self.chain_id) is not str or not _CHAIN_ID.match(self.chain_id):
            raise GenesisError("chain_id must be 1..48 of [a-z0-9._-], starting alphanumeric")
        if type(self.genesis_time) is not int or not 0 < self.genesis_time < 2**63:
            raise GenesisError("genesis_time must be a positive integer (ms since the Unix epoch)")
        try:
            ValidatorSet(tuple(self.validators))
        except Exception as e:
            raise GenesisError(f"validators: {e}") from e
        m = self.members
        if not 1 <= len(m) <= MAX_AUTH or len(set(m)) != len(m) or any(len(x) != 32 for x in m):
            raise GenesisError(f"governance needs 1..{MAX_AUTH} distinct 32-byte member keys")
        if type(self.threshold) is not int or not 1 <= self.threshold <= len(m):
            raise GenesisError(f"governance threshold must be in 1..{len(m)}")
        for what, anchors in (("eid", self.anchors), ("device", self.device_anchors)):
            if len(set(anchors)) != len(anchors):
                raise GenesisError(f"a {what} trust anchor is listed twice")
            if len(anchors) > MAX_ANCHORS:
                raise GenesisError(f"at most {MAX_ANCHORS} {what} trust anchors")
        for name, value in self.params.items():
            why = param_error(name, value)
            if why is not None:
                raise GenesisError(why)

    def validator_set(self) -> ValidatorSet:
        return ValidatorSet(tuple(self.validators))

    def full_params(self) -> dict[str, Any]:
        merged = {**DEFAULT_PARAMS, **self.params}
        return {k: merged[k] for k in sorted(merged)}

    def state_writes(self) -> dict[bytes, bytes]:
        """The initial state (DESIGN §5): gov/members, gov/validators, gov/anchors, gov/params."""
        return {
            GOV_ANCHORS: codec.encode(
                {"device": sorted(self.device_anchors, key=H), "eid": sorted(self.anchors, key=H)}
            ),
            GOV_MEMBERS: codec.encode({"members": sorted(self.members), "threshold": self.threshold}),
            GOV_PARAMS: codec.encode(self.full_params()),
            GOV_VALIDATORS: codec.encode(self.validator_set().to_obj()),
        }

    def to_json(self) -> dict[str, Any]:
        pem = serialization.Encoding.PEM
        doc: dict[str, Any] = {}
        if self.note:
            doc["note"] = self.note
        doc.update(
            chain_id=self.chain_id,
            genesis_time=self.genesis_time,
            validators=[[pub.hex(), power] for pub, power in self.validator_set().validators],
            governance={"members": [m.hex() for m in self.members], "threshold": self.threshold},
            trust_anchors={
                purpose: [x509.load_der_x509_certificate(d).public_bytes(pem).decode() for d in ders]
                for purpose, ders in (("eid", self.anchors), ("device", self.device_anchors))
            },
            params=self.full_params(),
        )
        return doc

    def hash(self) -> bytes:
        """H of the canonical document: nodes compare it to be sure they share one genesis."""
        return H(
            codec.encode(
                {
                    "chain_id": self.chain_id,
                    "genesis_time": self.genesis_time,
                    "state": [[k, v] for k, v in sorted(self.state_writes().items())],
                }
            )
        )

    @classmethod
    def from_json(cls, doc: Any) -> "Genesis":
        if type(doc) is not dict:
            raise GenesisError("a genesis document is a JSON object")
        extra = set(doc) - _KEYS - {"note"}
        if not _KEYS <= set(doc) or extra:
            raise GenesisError(f"genesis needs exactly {sorted(_KEYS)} (and an optional note); unexpected {sorted(extra)}")
        vals = doc["validators"]
        if type(vals) is not list or any(type(v) is not list or len(v) != 2 for v in vals):
            raise GenesisError("validators must be [[pub hex, power], ...]")
        gov = doc["governance"]
        if type(gov) is not dict or set(gov) != {"members", "threshold"} or type(gov["members"]) is not list:
            raise GenesisError('governance must be {"members": [pub hex, ...], "threshold": k}')
        anchors = doc["trust_anchors"]
        params = doc["params"]
        if type(anchors) is not dict or set(anchors) != {"eid", "device"} or any(
            type(v) is not list for v in anchors.values()
        ):
            raise GenesisError(
                'trust_anchors must be {"eid": [...], "device": [...]}: eID broker roots and '
                "charge point manufacturer roots (either list may be empty)"
            )
        if type(params) is not dict:
            raise GenesisError("params must be an object")
        note = doc.get("note", "")
        if type(note) is not str:
            raise GenesisError("note must be a string")
        return cls(
            chain_id=doc["chain_id"],
            genesis_time=doc["genesis_time"],
            validators=[(_hex(p, 32, "validator key"), w) for p, w in vals],
            members=[_hex(m, 32, "member key") for m in gov["members"]],
            threshold=gov["threshold"],
            anchors=[_anchor(a) for a in anchors["eid"]],
            device_anchors=[_anchor(a) for a in anchors["device"]],
            params=dict(params),
            note=note,
        )

    @classmethod
    def load(cls, path: str | Path) -> "Genesis":
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise GenesisError(f"cannot read genesis {path}: {e}") from e
        return cls.from_json(doc)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
