"""Every decoder of outside bytes, fed random and mutated input, raises only DecodeError.

Decoders: the canonical codec, transaction envelopes, consensus messages (proposal with its
block, vote, commit), headers, blocks, evidence and proofs. Valid encodings are mutated by
flipping, truncating, inserting and deleting bytes; whatever comes out must either decode to
something that re-encodes to the same bytes, or be refused with DecodeError — never another
exception (a crash of a node) and never a silent, different value.
"""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.consensus.messages import (
    CommitMessage,
    ProposalMessage,
    VoteMessage,
    decode_message,
)
from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import (
    PRECOMMIT,
    PREVOTE,
    ZERO32,
    Block,
    Commit,
    DuplicateVoteEvidence,
    Header,
    Proposal,
    Vote,
)
from ads_ledger.state.envelope import make_envelope, parse_envelope
from fixtures import KEYS, valset

CHAIN = "fuzz-chain"
VALSET = valset()


def _header(height: int = 2) -> Header:
    return Header(chain_id=CHAIN, height=height, time=1_700_000_000_000, prev=b"\x01" * 32,
                  txs_root=b"\x02" * 32, evidence_root=b"\x03" * 32, state_root=b"\x04" * 32,
                  validators=VALSET.hash(), next_validators=VALSET.hash(), proposer=KEYS[0].pub,
                  last_commit=ZERO32)  # fmt: skip


def _samples() -> list[tuple[str, bytes]]:
    tx = make_envelope(CHAIN, "grant", KEYS[0], 3, {"cp": KEYS[1].pub, "grantee": KEYS[2].pub,
                       "scopes": ["meter.read"], "not_before": 1, "not_after": 2, "limits": {},
                       "exclusive": False, "priority": 1, "redelegate": 0, "parent": None})  # fmt: skip
    h = _header()
    votes = [Vote(PRECOMMIT, 2, 0, h.block_id(), k.pub).signed(CHAIN, k) for k in KEYS[:3]]
    commit = Commit.from_votes(VALSET, votes)
    a = Vote(PREVOTE, 2, 0, b"\x05" * 32, KEYS[3].pub).signed(CHAIN, KEYS[3])
    b = Vote(PREVOTE, 2, 0, None, KEYS[3].pub).signed(CHAIN, KEYS[3])
    ev = DuplicateVoteEvidence(a, b)
    block = Block(h, (tx,), (ev,), commit)
    prop = Proposal(2, 0, h.block_id(), -1, KEYS[0].pub).signed(CHAIN, KEYS[0])
    proof = SparseProof((b"\x06" * 32, b"\x07" * 32), (b"\x08" * 32, b"\x09" * 32))
    return [
        ("tx", tx),
        ("header", h.encode()),
        ("block", block.encode()),
        ("proposal", ProposalMessage(prop, block).encoded),
        ("vote", VoteMessage(votes[0]).encoded),
        ("commit", CommitMessage(block, commit).encoded),
        ("evidence", codec.encode(ev.to_obj())),
        ("proof", codec.encode(proof.to_obj())),
    ]


SAMPLES = _samples()

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "tx": parse_envelope,
    "header": lambda d: Header.from_obj(codec.decode(d)),
    "block": Block.decode,
    "proposal": decode_message,
    "vote": decode_message,
    "commit": decode_message,
    "evidence": lambda d: DuplicateVoteEvidence.from_obj(codec.decode(d)),
    "proof": lambda d: SparseProof.from_obj(codec.decode(d)),
}


def test_samples_decode() -> None:
    for kind, raw in SAMPLES:
        DECODERS[kind](raw)  # the unmutated bytes are valid


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind, raw = draw(st.sampled_from(SAMPLES))
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "set" and data:
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x90, 0xC0, 0xC1, 0xC4, 0xCB, 0xCC, 0xD9, 0xDC, 0xDE, 0xFF]))
    return kind, bytes(data)


ODD_VALUES: list[Any] = [None, True, 0, -1, 2**64 - 1, b"", b"\x00" * 31, b"\x00" * 33, "", "x",
                         [], {}, [b"\x00" * 32], {"a": 1}]  # fmt: skip


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, path + (i,))
    return out


@st.composite
def restructured(draw: st.DrawFn) -> tuple[str, bytes]:
    """Valid msgpack whose shape is wrong: a field replaced, dropped or added."""
    kind, raw = draw(st.sampled_from(SAMPLES))
    obj = codec.decode(raw)
    path = draw(st.sampled_from(_paths(obj)[1:]))
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    op = draw(st.sampled_from(["replace", "drop", "add"]))
    if op == "replace" or (op == "drop" and isinstance(parent, list)):
        parent[path[-1]] = draw(st.sampled_from(ODD_VALUES))
    elif op == "drop":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent["zz_extra"] = 1
    else:
        parent.append(draw(st.sampled_from(ODD_VALUES)))
    return kind, codec.encode(obj)


def _only_decode_error(kind: str, data: bytes) -> None:
    try:
        value = DECODERS[kind](data)
    except DecodeError:
        return
    # accepted: it must be exactly what those bytes mean, with one encoding
    if kind == "tx":
        assert value.raw == data
    elif kind in ("proposal", "vote", "commit"):
        assert value.encoded == data
    elif kind == "block":
        assert value.encode() == data
    elif kind == "header":
        assert value.encode() == data
    else:
        assert codec.encode(value.to_obj()) == data


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_bytes_raise_only_decode_error(case: tuple[str, bytes]) -> None:
    _only_decode_error(*case)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(kind: str, data: bytes) -> None:
    _only_decode_error(kind, data)


def test_deep_nesting_and_huge_lengths_are_refused() -> None:
    deep = b"\x91" * 5000 + b"\xc0"
    huge_bin = b"\xc6\xff\xff\xff\xff" + b"\x00" * 10
    huge_array = b"\xdd\xff\xff\xff\xff"
    for data in (deep, huge_bin, huge_array):
        for kind in DECODERS:
            _only_decode_error(kind, data)


@settings(max_examples=600, deadline=None)
@given(restructured())
def test_wrong_shapes_raise_only_decode_error(case: tuple[str, bytes]) -> None:
    _only_decode_error(*case)
