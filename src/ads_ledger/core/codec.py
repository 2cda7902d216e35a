"""Canonical MessagePack (DESIGN §3, normative).

Maps have str keys sorted by their UTF-8 bytes with no duplicates; integers take their
shortest form; bytes are `bin`, text is `str`; only nil, bool, int, bin, str, array and map.
`decode` re-encodes what it read and refuses input whose bytes differ, so every accepted
value has exactly one encoding and hashes/signatures over it are unambiguous.

Both directions are hot (every transaction, vote and block goes through them), so each does
one Python walk over the containers and leaves bytes to msgpack's C code:
- `decode`: msgpack parses; one walk checks types, key order and depth; msgpack re-encodes
  and the bytes must match (that catches every non-shortest header and merged duplicate keys).
- `encode`: one walk checks types, sorts keys and reuses containers already canonical.
UTF-8 byte order equals code point order, so str keys sort with Python's own `<`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import msgpack  # type: ignore[import-untyped]

from ads_ledger.core.errors import DecodeError

__all__ = ["DecodeError", "encode", "decode", "MAX_DEPTH", "Value"]

# A decoded value: None | bool | int | bytes | str | list[Value] | dict[str, Value].
Value = Any

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
MAX_DEPTH = 32  # deeper nesting than any message of ours; bounds recursion on hostile input
DEFAULT_MAX_SIZE = 4 * 1024 * 1024

# Leaf types msgpack may hand back that the spec allows (int is range-checked by msgpack itself).
_LEAVES = frozenset({type(None), bool, int, str, bytes})
_packb = msgpack.packb
_unpackb = msgpack.unpackb


def _too_deep() -> DecodeError:
    return DecodeError(f"nesting deeper than {MAX_DEPTH}")


def _bad_key(keys: Sequence[Any]) -> DecodeError:
    k = next((k for k in keys if type(k) is not str), None)
    return DecodeError(f"map key {k!r} is not a str")


# ---------------------------------------------------------------------------------- encode


def _canon(value: Value, depth: int) -> Value:
    """Return `value` with map keys sorted, after checking every type is allowed.

    Returns `value` itself when it is already canonical; lists and dicts are rebuilt only
    when something inside them changes.
    """
    if depth > MAX_DEPTH:
        raise _too_deep()
    t = type(value)
    if t is dict:
        return _canon_dict(value, depth)
    if t is list:
        return _canon_list(value, depth)
    if t is str or t is bytes or t is bool or value is None:
        return value
    if t is int:
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer {value} outside -2^63..2^64-1")
        return value
    return _canon_other(value, depth)


def _canon_list(value: list[Any], depth: int) -> list[Any]:
    if value and depth >= MAX_DEPTH:
        raise _too_deep()
    out: list[Any] | None = None
    for i, v in enumerate(value):
        t = type(v)
        if t is str or t is bytes or t is bool or v is None or (
            t is int and MIN_INT <= v <= MAX_INT
        ):
            continue
        nv = _canon(v, depth + 1)
        if nv is not v:
            if out is None:
                out = value[:]
            out[i] = nv
    return value if out is None else out


def _canon_dict(value: dict[Any, Any], depth: int) -> dict[str, Any]:
    if not value:
        return value
    if depth >= MAX_DEPTH:
        raise _too_deep()
    keys = [*value]
    for k in keys:
        if type(k) is not str:
            raise DecodeError(f"map key {k!r} is not a str")
    joined = "".join(keys)
    if not joined.isascii():
        joined.encode("utf-8")  # a lone surrogate fails here, before any value is looked at
    skeys = sorted(keys)
    if skeys == keys:  # already in order: keep the dict unless a value changes
        out: dict[str, Any] | None = None
        for k, v in value.items():
            t = type(v)
            if t is str or t is bytes or t is bool or v is None or (
                t is int and MIN_INT <= v <= MAX_INT
            ):
                continue
            nv = _canon(v, depth + 1)
            if nv is not v:
                if out is None:
                    out = dict(value)
                out[k] = nv
        return value if out is None else out
    res = {}
    for k in skeys:
        v = value[k]
        t = type(v)
        if t is str or t is bytes or t is bool or v is None or (
            t is int and MIN_INT <= v <= MAX_INT
        ):
            res[k] = v
        else:
            res[k] = _canon(v, depth + 1)
    return res


def _canon_other(value: Value, depth: int) -> Value:
    """The rarely used conversions: tuples, bytearrays, int subclasses, other mappings."""
    t = type(value)
    if t is bytearray or t is memoryview:
        return bytes(value)
    if t is tuple:
        return [_canon(v, depth + 1) for v in value]
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
        raw: bytes = _packb(_canon(value, 0), use_bin_type=True, strict_types=True)
        return raw
    except (UnicodeEncodeError, ValueError, OverflowError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"cannot encode: {e}") from e


# ---------------------------------------------------------------------------------- decode


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"ext type {code} is not allowed")


def _not_allowed(value: Value) -> DecodeError:
    return DecodeError(f"type {type(value).__name__} is not allowed in canonical msgpack")


def _check_list(value: list[Any], depth: int) -> None:
    """Check what msgpack decoded: allowed types only, str keys in order, depth bounded."""
    if not value:
        return
    if depth >= MAX_DEPTH:
        raise _too_deep()
    if len(value) > 16:  # long lists (a block's transactions) are usually all one leaf type
        kinds = [*map(type, value)]
        if kinds[0] in _LEAVES and kinds.count(kinds[0]) == len(kinds):
            return
    for v in value:
        t = type(v)
        if t in _LEAVES:
            continue
        if t is list:
            _check_list(v, depth + 1)
        elif t is dict:
            _check_dict(v, depth + 1)
        else:
            raise _not_allowed(v)


def _check_dict(value: dict[Any, Any], depth: int) -> None:
    if not value:
        return
    if depth >= MAX_DEPTH:
        raise _too_deep()
    keys = list(value)
    try:
        "".join(keys)  # msgpack (strict_map_key) gives str or bytes keys; join refuses bytes
    except TypeError:
        raise _bad_key(keys) from None
    # A dict keeps wire order, so this is the key order on the wire. Duplicate keys were
    # merged by msgpack; the re-encoding then has fewer entries and cannot match.
    if keys != sorted(keys):
        raise DecodeError("not in canonical form (map keys out of order)")
    for v in value.values():
        t = type(v)
        if t in _LEAVES:
            continue
        if t is list:
            _check_list(v, depth + 1)
        elif t is dict:
            _check_dict(v, depth + 1)
        else:
            raise _not_allowed(v)


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Decode canonical bytes. Raises DecodeError on anything malformed or non-canonical."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        value = _unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except DecodeError:
        raise
    except msgpack.ExtraData as e:
        raise DecodeError("trailing bytes after the value") from e
    except Exception as e:  # msgpack raises many types on hostile input; all are the input's fault
        raise DecodeError(f"malformed msgpack: {type(e).__name__}: {e}") from e
    t = type(value)
    if t is list:
        _check_list(value, 0)
    elif t is dict:
        _check_dict(value, 0)
    elif t not in _LEAVES:
        raise _not_allowed(value)
    # Types and key order are right; the bytes are canonical iff msgpack's shortest-form
    # encoding of the value reproduces them (int, str, bin, array and map headers).
    if _packb(value, use_bin_type=True, strict_types=True) != data:
        raise DecodeError("not in canonical form (integer width, length header or duplicate key)")
    return value
