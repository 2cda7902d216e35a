"""Canonical MessagePack (DESIGN §3, normative).

Maps have str keys sorted by their UTF-8 bytes with no duplicates; integers take their
shortest form; bytes are `bin`, text is `str`; only nil, bool, int, bin, str, array and map.
`decode` re-encodes what it read and refuses input whose bytes differ, so every accepted
value has exactly one encoding and hashes/signatures over it are unambiguous.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import msgpack

from .errors import DecodeError

__all__ = ["DecodeError", "encode", "decode", "MAX_DEPTH", "Value"]

# A decoded value: None | bool | int | bytes | str | list[Value] | dict[str, Value].
Value = Any

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
MAX_DEPTH = 32  # deeper nesting than any message of ours; bounds recursion on hostile input
DEFAULT_MAX_SIZE = 4 * 1024 * 1024


def _canon(value: Value, depth: int) -> Value:
    """Return `value` with map keys sorted, after checking every type is allowed."""
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
        return [_canon(v, depth + 1) for v in value]
    if t is dict:
        for k in value:
            if type(k) is not str:
                raise DecodeError(f"map key {k!r} is not a str")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: _canon(value[k], depth + 1) for k in keys}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _canon(int(value), depth)
    if isinstance(value, Mapping):
        return _canon(dict(value), depth)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return _canon(list(value), depth)
    raise DecodeError(f"type {t.__name__} is not allowed in canonical msgpack")


def encode(value: Value) -> bytes:
    """Canonical bytes of `value`. Raises DecodeError for values the spec does not allow."""
    try:
        return msgpack.packb(_canon(value, 0), use_bin_type=True, strict_types=True)
    except (UnicodeEncodeError, ValueError, OverflowError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"cannot encode: {e}") from e


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"ext type {code} is not allowed")


def _check_types(value: Value, depth: int) -> None:
    """Reject floats and anything else msgpack can produce that the spec forbids."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    t = type(value)
    if value is None or t is bool or t is int or t is bytes or t is str:
        return
    if t is list:
        for v in value:
            _check_types(v, depth + 1)
        return
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise DecodeError(f"map key {k!r} is not a str")
            _check_types(v, depth + 1)
        return
    raise DecodeError(f"type {t.__name__} is not allowed in canonical msgpack")


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise DecodeError("duplicate map key")
    return d


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Decode canonical bytes. Raises DecodeError on anything malformed or non-canonical."""
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
            object_pairs_hook=_pairs,
            ext_hook=_no_ext,
        )
    except DecodeError:
        raise
    except (msgpack.ExtraData,) as e:
        raise DecodeError("trailing bytes after the value") from e
    except Exception as e:  # msgpack raises many types on hostile input; all are the input's fault
        raise DecodeError(f"malformed msgpack: {type(e).__name__}: {e}") from e
    _check_types(value, 0)
    if encode(value) != data:
        raise DecodeError("not in canonical form (key order, integer width or string type)")
    return value
