"""Random mutations of a valid light block, as a node could serve them on the wire: whatever
decodes is either refused with a LightError or still proves the original header."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from light_chain import OPTS, Chain, rotating

from ads_ledger.core.errors import DecodeError
from ads_ledger.light.errors import LightError
from ads_ledger.light.trust import LightBlock
from ads_ledger.light.verifier import verify_light_block

CHAIN = Chain(30, rotating(every=10))
TARGET = 25
ORIGINAL = CHAIN.block(TARGET)
BASES = (CHAIN.trusted(1), CHAIN.trusted(TARGET - 1), CHAIN.trusted(12, with_next=True))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in the wire object, containers included."""
    out = [prefix]
    if type(obj) is dict:
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif type(obj) is list:
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(ORIGINAL.to_obj())[1:]


def _mutate(value: Any, how: int, n: int, other: Any) -> Any:
    t = type(value)
    if t is bytes and value:
        if how == 0:
            i = n % len(value)
            return value[:i] + bytes([value[i] ^ (1 << (n % 8))]) + value[i + 1 :]
        if how == 1:
            return other if type(other) is bytes and len(other) == len(value) else bytes(len(value))
        return value[:-1]
    if t is int:
        return [value + 1, max(value - 1, 0), n, 2**62 - 1][how % 4]
    if t is list and value:
        if how == 0:
            return value[:-1]
        if how == 1:
            return value + [value[n % len(value)]]
        return value[1:] + value[:1]
    if t is str:
        return value + "x"
    return other


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_light_blocks_raise_only_light_errors(data: st.DataObject) -> None:
    obj = ORIGINAL.to_obj()
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(PATHS), label="path")
        donor = data.draw(st.sampled_from(PATHS), label="donor")
        other = _get(ORIGINAL.to_obj(), donor)
        how = data.draw(st.integers(0, 3), label="how")
        n = data.draw(st.integers(0, 10**6), label="n")
        try:
            parent = _get(obj, path[:-1])
            parent[path[-1]] = _mutate(copy.deepcopy(parent[path[-1]]), how, n, other)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation reshaped this position
    try:
        block = LightBlock.from_obj(obj)
    except DecodeError:
        assume(False)  # refused by the decoder: the wire layer's job, tested elsewhere
        return
    base = data.draw(st.sampled_from(BASES), label="trusted")
    try:
        new = verify_light_block(base, block, CHAIN.now(TARGET), OPTS)
    except LightError:
        return
    assert new.header == ORIGINAL.header and new.valset == ORIGINAL.valset


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj
