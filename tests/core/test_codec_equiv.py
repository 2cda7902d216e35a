"""The fast canonical codec accepts, rejects and returns exactly what the simple one did.

`_decode_reference` / `_encode_reference` below are the first implementation of DESIGN §3
(decode with msgpack, re-encode the whole value through a recursive walk, compare bytes). The
inputs are hypothesis values, encoded canonically or with deliberately loose choices (wider int
or length headers, signed forms, shuffled or duplicated map entries, floats, ext types, non-str
keys) and then mutated byte-wise (flip, truncate, insert, delete, append).
"""

from __future__ import annotations

import collections
import enum
import random
import struct
import types
from typing import Any, Callable, Mapping, Sequence

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ads_ledger.core import codec
from ads_ledger.core.codec import MAX_DEPTH, DecodeError

# ------------------------------------------------------------------ the reference (as first written)

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1


def _ref_canon(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is int:
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer {value} outside -2^63..2^64-1")
        return value
    if t is bytes or t is str:
        return value
    if t is bytearray or t is memoryview:
        return bytes(value)
    if t is list or t is tuple:
        return [_ref_canon(v, depth + 1) for v in value]
    if t is dict:
        for k in value:
            if type(k) is not str:
                raise DecodeError(f"map key {k!r} is not a str")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: _ref_canon(value[k], depth + 1) for k in keys}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _ref_canon(int(value), depth)
    if isinstance(value, Mapping):
        return _ref_canon(dict(value), depth)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return _ref_canon(list(value), depth)
    raise DecodeError(f"type {t.__name__} is not allowed in canonical msgpack")


def _encode_reference(value: Any) -> bytes:
    try:
        raw: bytes = msgpack.packb(_ref_canon(value, 0), use_bin_type=True, strict_types=True)
        return raw
    except (UnicodeEncodeError, ValueError, OverflowError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"cannot encode: {e}") from e


def _ref_no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"ext type {code} is not allowed")


def _ref_check_types(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    t = type(value)
    if value is None or t is bool or t is int or t is bytes or t is str:
        return
    if t is list:
        for v in value:
            _ref_check_types(v, depth + 1)
        return
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise DecodeError(f"map key {k!r} is not a str")
            _ref_check_types(v, depth + 1)
        return
    raise DecodeError(f"type {t.__name__} is not allowed in canonical msgpack")


def _ref_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise DecodeError("duplicate map key")
    return d


def _decode_reference(data: Any, *, max_size: int = codec.DEFAULT_MAX_SIZE) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,
            object_pairs_hook=_ref_pairs,
            ext_hook=_ref_no_ext,
        )
    except DecodeError:
        raise
    except (msgpack.ExtraData,) as e:
        raise DecodeError("trailing bytes after the value") from e
    except Exception as e:
        raise DecodeError(f"malformed msgpack: {type(e).__name__}: {e}") from e
    _ref_check_types(value, 0)
    if _encode_reference(value) != data:
        raise DecodeError("not in canonical form (key order, integer width or string type)")
    return value


# ------------------------------------------------------------------ comparing outcomes


def outcome(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, str]:
    """("ok", repr) or ("err", ""); repr tells True from 1, b"" from "" and shows key order."""
    try:
        return "ok", repr(fn(*args, **kw))
    except DecodeError:
        return "err", ""


def same_decode(data: Any, **kw: Any) -> tuple[str, str]:
    new = outcome(codec.decode, data, **kw)
    ref = outcome(_decode_reference, data, **kw)
    assert new == ref, (bytes(data).hex() if isinstance(data, (bytes, bytearray)) else data, new, ref)
    return new


def same_encode(value: Any) -> tuple[str, str]:
    before = repr(value)
    new = outcome(codec.encode, value)
    ref = outcome(_encode_reference, value)
    assert new == ref, (before, new, ref)
    assert repr(value) == before, "encode changed its argument"
    return new


# ------------------------------------------------------------------ values and a loose encoder

EDGE_INTS = [
    0, 1, 31, 32, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
    2**32, 2**63 - 1, 2**63, 2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2**31),
    -(2**31) - 1, -(2**63),
]  # fmt: skip

ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(MIN_INT, MAX_INT), st.integers(-300, 300))
texts = st.one_of(
    st.text(max_size=8),
    st.text(alphabet="ab\u00e9\u4e2d\U0001f600", max_size=40),
    st.sampled_from(["", "a" * 31, "a" * 32, "é" * 16, "x" * 255, "x" * 256]),
)
leaves = st.one_of(st.none(), st.booleans(), ints, st.binary(max_size=40), texts)
values = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=6),
        st.dictionaries(texts, kids, max_size=6),
        st.lists(st.none(), min_size=15, max_size=17),  # fixarray/array16 boundary
        st.lists(leaves, min_size=17, max_size=19),
        st.dictionaries(st.text("abcdefghijklmnopq", min_size=1, max_size=2), st.just(0), min_size=15, max_size=17),
    ),
    max_leaves=25,
)


def _int_forms(v: int) -> list[bytes]:
    """Every msgpack encoding of an integer, canonical first."""
    forms = []
    if 0 <= v <= 127 or -32 <= v <= -1:
        forms.append(struct.pack(">b", v) if v < 0 else bytes([v]))
    for fmt, tag, lo, hi in (
        (">B", 0xCC, 0, 2**8 - 1), (">H", 0xCD, 0, 2**16 - 1), (">I", 0xCE, 0, 2**32 - 1),
        (">Q", 0xCF, 0, 2**64 - 1), (">b", 0xD0, -(2**7), 2**7 - 1), (">h", 0xD1, -(2**15), 2**15 - 1),
        (">i", 0xD2, -(2**31), 2**31 - 1), (">q", 0xD3, -(2**63), 2**63 - 1),
    ):  # fmt: skip
        if lo <= v <= hi:
            forms.append(bytes([tag]) + struct.pack(fmt, v))
    forms.sort(key=len)
    canon = msgpack.packb(v)
    forms.remove(canon)
    return [canon, *forms]


def _len_forms(n: int, fix: int | None, fixmax: int, tags: tuple[int, ...], skip8: bool) -> list[bytes]:
    """Headers for a length n: fix form if it fits, then 8/16/32-bit forms (8 absent for array/map)."""
    forms = []
    if fix is not None and n <= fixmax:
        forms.append(bytes([fix | n]))
    widths = ((">H", 2**16), (">I", 2**32)) if skip8 else ((">B", 2**8), (">H", 2**16), (">I", 2**32))
    for tag, (fmt, lim) in zip(tags, widths):
        if n < lim:
            forms.append(bytes([tag]) + struct.pack(fmt, n))
    return forms


class Loose:
    """Encodes a value choosing, with probability p at each node, a non-canonical form."""

    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p, self.deviated = rng, p, False

    def pick(self, forms: list[bytes]) -> bytes:
        if len(forms) > 1 and self.rng.random() < self.p:
            self.deviated = True
            return self.rng.choice(forms[1:])
        return forms[0]

    def enc(self, v: Any) -> bytes:
        r = self.rng
        if r.random() < self.p / 10:  # a forbidden leaf in place of this one
            self.deviated = True
            return r.choice([b"\xca\x00\x00\x00\x00", b"\xcb" + struct.pack(">d", 1.5),
                             b"\xd4\x01\x00", b"\xd6\xff\x00\x00\x00\x01", b"\xc7\x00\x05", b"\xc1"])  # fmt: skip
        if v is None:
            return b"\xc0"
        if v is True or v is False:
            return b"\xc3" if v else b"\xc2"
        if type(v) is int:
            return self.pick(_int_forms(v))
        if type(v) is str:
            b = v.encode("utf-8")
            return self.pick(_len_forms(len(b), 0xA0, 31, (0xD9, 0xDA, 0xDB), False)) + b
        if type(v) is bytes:
            return self.pick(_len_forms(len(v), None, 0, (0xC4, 0xC5, 0xC6), False)) + v
        if type(v) is list:
            head = self.pick(_len_forms(len(v), 0x90, 15, (0xDC, 0xDD), True))
            return head + b"".join(self.enc(x) for x in v)
        assert type(v) is dict
        entries = [(self.enc(k), k, x) for k, x in sorted(v.items())]
        if entries and r.random() < self.p:
            self.deviated = True
            entries.append(r.choice(entries))  # a duplicate key
        if len(entries) > 1 and r.random() < self.p:
            self.deviated = True
            i = r.randrange(len(entries) - 1)
            entries[i], entries[i + 1] = entries[i + 1], entries[i]  # two entries out of order
        if entries and r.random() < self.p / 2:
            self.deviated = True
            entries[0] = (r.choice([b"\x01", b"\xc4\x01k", b"\xc0", b"\x90"]), None, entries[0][2])
        head = self.pick(_len_forms(len(entries), 0x80, 15, (0xDE, 0xDF), True))
        return head + b"".join(ke + self.enc(x) for ke, _, x in entries)


def mutate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    op = rng.randrange(6)
    if op == 0:
        return data[:i] + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1 :]
    if op == 1:
        return data[:i]
    if op == 2:
        return data[:i] + bytes([rng.randrange(256)]) + data[i:]
    if op == 3:
        return data[:i] + data[i + 1 :]
    if op == 4:
        return data + bytes([rng.randrange(256)])
    return data[:i] + bytes([rng.choice([0xC0, 0xCC, 0xD9, 0xDC, 0xDE, 0xCA, 0xD4, 0xC4])]) + data[i + 1 :]


# ------------------------------------------------------------------ properties

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@SETTINGS
@given(values)
def test_canonical_round_trip_matches_reference(v: Any) -> None:
    raw = codec.encode(v)
    assert raw == _encode_reference(v)
    assert same_decode(raw) == ("ok", repr(_decode_reference(raw)))
    assert codec.decode(raw) == v


seeds = st.integers(0, 2**32)  # a plain Random: hypothesis' own randoms() stay near "simple" draws


@SETTINGS
@given(values, st.sampled_from([0.0, 0.05, 0.3]), seeds)
def test_loose_encodings_decide_like_reference(v: Any, p: float, seed: int) -> None:
    rng = random.Random(seed)
    loose = Loose(rng, p)
    raw = loose.enc(v)
    result = same_decode(raw)
    if not loose.deviated:
        assert raw == codec.encode(v), "the test encoder's canonical choices drifted"
        assert result[0] == "ok"
    for _ in range(4):
        same_decode(mutate(raw, rng))


@SETTINGS
@given(values, seeds)
def test_mutated_canonical_bytes_decide_like_reference(v: Any, seed: int) -> None:
    rng = random.Random(seed)
    raw = codec.encode(v)
    for _ in range(8):
        raw2 = mutate(raw, rng)
        same_decode(raw2)
        raw = raw2 if rng.random() < 0.3 else raw  # sometimes stack mutations


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decide_like_reference(data: bytes) -> None:
    same_decode(data)


class Colour(enum.IntEnum):
    RED = 3


class Name(str):
    pass


odd_leaves = st.one_of(
    leaves,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(lambda b: memoryview(b)),
    st.just(Colour.RED),
    st.just(Name("n")),
    st.sampled_from(["\ud800", "a\udfffb"]),  # lone surrogates: not encodable as UTF-8
    st.just(object()),
)
odd_keys = st.one_of(texts, st.integers(0, 3), st.binary(max_size=2), st.just(Name("k")), st.just("\ud800"))
odd_values = st.recursive(
    odd_leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.lists(kids, max_size=5).map(tuple),
        st.dictionaries(texts, kids, max_size=5),
        st.dictionaries(odd_keys, kids, max_size=4),
        st.dictionaries(texts, kids, max_size=4).map(lambda d: collections.OrderedDict(reversed(d.items()))),
        st.dictionaries(texts, kids, max_size=4).map(types.MappingProxyType),
        st.integers(0, 3).map(range),
    ),
    max_leaves=20,
)


@SETTINGS
@given(odd_values)
def test_encode_matches_reference_on_any_python_value(v: Any) -> None:
    same_encode(v)


# ------------------------------------------------------------------ each rejection, by example


def nest_lists(d: int, inner: Any) -> Any:
    for _ in range(d):
        inner = [inner]
    return inner


def nest_maps(d: int, inner: Any) -> Any:
    for _ in range(d):
        inner = {"k": inner}
    return inner


@pytest.mark.parametrize("depth", range(MAX_DEPTH - 2, MAX_DEPTH + 3))
@pytest.mark.parametrize("inner", [[], {}, 0, [1], {"a": None}])
@pytest.mark.parametrize("nest", [nest_lists, nest_maps])
def test_depth_limit_same_as_reference(depth: int, inner: Any, nest: Callable[[int, Any], Any]) -> None:
    v = nest(depth, inner)
    enc = same_encode(v)
    raw = msgpack.packb(v, use_bin_type=True)
    dec = same_decode(raw)
    assert enc[0] == dec[0]
    # 33 levels (0..32) are allowed; a value at depth 33 is not
    leaf_depth = depth + (1 if inner in ([1], {"a": None}) else 0)
    assert dec[0] == ("ok" if leaf_depth <= MAX_DEPTH else "err")


@pytest.mark.parametrize(
    "hexraw, ok",
    [
        ("82a161 01a162 02", True),
        ("82a162 02a161 01", False),  # key order
        ("82a161 01a161 02", False),  # duplicate key
        ("81 01 02", False),  # int key
        ("81 c401 61 02", False),  # bin key
        ("cc 7f", False),  # int not in shortest form
        ("cd 00 ff", False),
        ("d1 01 2c", False),  # positive value in a signed form of the same width
        ("cd 01 2c", True),
        ("d0 ff", False),
        ("d0 df", True),
        ("d9 01 61", False),  # str8 where fixstr fits
        ("c5 0001 61", False),  # bin16 where bin8 fits
        ("dc 0001 01", False),  # array16 where fixarray fits
        ("de 0001 a161 01", False),  # map16 where fixmap fits
        ("ca 00000000", False),  # float32
        ("cb 0000000000000000", False),  # float64
        ("d4 01 00", False),  # ext
        ("d6 ff 00000001", False),  # timestamp ext
        ("c0 c0", False),  # trailing bytes
        ("92 01", False),  # truncated
        ("a2 c3 28", False),  # invalid UTF-8
        ("a3 ed a0 80", False),  # UTF-8 encoded surrogate
        ("cf ffffffffffffffff", True),  # 2^64 - 1
        ("d3 8000000000000000", True),  # -2^63
        ("c1", False),  # never used
        ("", False),
    ],
)
def test_examples(hexraw: str, ok: bool) -> None:
    assert same_decode(bytes.fromhex(hexraw.replace(" ", "")))[0] == ("ok" if ok else "err")


def test_size_limit_input_types_and_deep_hostile_input() -> None:
    raw = codec.encode({"a": b"x" * 100})
    assert same_decode(raw, max_size=len(raw))[0] == "ok"
    assert same_decode(raw, max_size=len(raw) - 1)[0] == "err"
    assert same_decode(bytearray(raw))[0] == "ok"
    assert same_decode(memoryview(raw))[0] == "ok"
    for bad in ("c0", 5, None):
        assert same_decode(bad)[0] == "err"
    assert same_decode(b"\x91" * 100_000 + b"\xc0")[0] == "err"
    assert same_decode(b"\x81\xa1k" * 50_000 + b"\xc0")[0] == "err"


def test_long_lists_of_one_leaf_type_and_mixed() -> None:
    for v in (
        [b"tx"] * 2000,
        ["s"] * 40,
        [1] * 40 + [1.5],
        [b"x"] * 40 + [[1.5]],
        [b"x"] * 40 + [{"b": 1, "a": 2}],
        [True] * 20 + [1],
        [None] * 20,
        [1.5] * 20,  # one forbidden type throughout
        [[1.5]] * 20,  # all lists: the inner ones still need checking
        [{"b": 1, "a": 2}] * 20,
        [{"a": [0.5]}] * 20,
        nest_lists(MAX_DEPTH - 1, [[0]] * 20),
        nest_lists(MAX_DEPTH - 2, [[0]] * 20),
    ):
        raw = msgpack.packb(v, use_bin_type=True)
        same_decode(raw)
        same_encode(v)


def test_encode_reuses_nothing_it_should_not() -> None:
    inner = {"b": 1, "a": (1, 2)}
    v = {"z": [inner, inner], "a": bytearray(b"q")}
    assert same_encode(v)[0] == "ok"
    assert v == {"z": [inner, inner], "a": bytearray(b"q")} and list(inner) == ["b", "a"]
