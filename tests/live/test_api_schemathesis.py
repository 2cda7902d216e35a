"""Schemathesis against a live node, with the node's own OpenAPI document (issue: node
efficiency, API conformance): every operation, generated inputs (valid and invalid), every
response checked — documented status, body and headers matching their schemas, never a 5xx.
Bounded examples here; `ADS_SCHEMATHESIS_EXAMPLES` raises the budget (the slow phase runs it
deeper). Driven through `APIOperation.as_strategy` rather than schemathesis' pytest plugin,
which does not load under pytest 9."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from livenet import running_devnet
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ads_ledger.node.api.openapi import document
from ads_ledger.testing.devnet import Network

EXAMPLES = int(os.environ.get("ADS_SCHEMATHESIS_EXAMPLES", "20"))
SCHEMA = schemathesis.openapi.from_dict(document())
OPS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}
STREAMS = {"GET /events"}  # endless: checked by the live API tests, not by a generator
# a tx body is "binary" to a schema, but only a signed canonical tx is valid: a 400 there is right
SEMANTIC_BODIES = {"POST /txs"}


@schemathesis.serializer("application/msgpack")
def msgpack_body(ctx: Any, value: Any) -> bytes:
    """POST /txs takes raw msgpack bytes: the generated binary body goes out as it is."""
    data = getattr(value, "data", value)
    return data if isinstance(data, bytes) else str(data).encode()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "schema", validators=1) as n:
        yield n


@pytest.mark.parametrize("name", sorted(set(OPS) - STREAMS))
def test_operation_conforms(net: Network, name: str) -> None:
    conforms(net, name, EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(OPS) - STREAMS))
def test_operation_conforms_deeper(net: Network, name: str) -> None:
    conforms(net, name, max(EXAMPLES, 250))


def conforms(net: Network, name: str, examples: int) -> None:
    op = OPS[name]
    base = net.apis[0]

    @given(case=op.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        skip = [positive_data_acceptance] if name in SEMANTIC_BODIES else []
        case.call_and_validate(base_url=base, timeout=15, excluded_checks=skip)

    run()
