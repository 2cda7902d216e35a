"""The OpenAPI document and the router cannot drift: same routes, same parameters, same error
codes, and every real JSON response validates against the schema the document gives for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_api_fake import CP_KEY, FakeBackend, make_tx, with_client

from ads_ledger.client.http import ApiResponseError, NodeClient
from ads_ledger.node.api.openapi import ERROR_CODES, document
from ads_ledger.node.api.routes import ROUTES

API_SRC = Path(__file__).resolve().parents[2] / "src" / "ads_ledger" / "node" / "api"
DOC = document()


def test_routes_and_document_name_the_same_operations() -> None:
    routed = {(r.method.lower(), r.template) for r in ROUTES}
    documented = {(m, p) for p, ops in DOC["paths"].items() for m in ops}
    assert routed == documented
    assert DOC["openapi"].startswith("3.1")


def test_parameters_match() -> None:
    for r in ROUTES:
        op = DOC["paths"][r.template][r.method.lower()]
        params = op["parameters"]
        assert {p["name"] for p in params if p["in"] == "query"} == set(r.query), r.template
        assert {p["name"] for p in params if p["in"] == "path"} == set(
            re.findall(r"\{(\w+)\}", r.template)), r.template  # fmt: skip
        assert all(p["required"] for p in params if p["in"] == "path")
        media = next(iter(op["responses"]["200"]["content"]))
        assert r.produces.split(";")[0] == media, r.template
        for status, resp in op["responses"].items():
            if status == "202":  # POST /txs: admitted, pending
                assert resp["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/TxResult"}  # fmt: skip
            elif status != "200":
                assert resp["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}  # fmt: skip


def test_every_error_code_in_the_source_is_documented_and_vice_versa() -> None:
    src = "\n".join(p.read_text() for p in API_SRC.glob("*.py"))
    used = set(re.findall(r'(?:ApiError|_refuse|error_response)\(\s*\d{3},\s*"(\w+)"', src))
    assert used == set(ERROR_CODES)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_ref_resolves() -> None:
    refs = _refs(DOC)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in DOC["components"]["schemas"], ref


# ---------------------------------------------------------------- responses match schemas


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The JSON Schema subset the document uses; AssertionError names the first misfit."""
    if "$ref" in schema:
        return validate(value, DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], where)
    if "oneOf" in schema:
        fits = 0
        for s in schema["oneOf"]:
            try:
                validate(value, s, where)
                fits += 1
            except AssertionError:
                pass
        assert fits == 1, f"{where}: {value!r} fits {fits} of oneOf"
        return None
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    t = schema.get("type")
    if t == "null":
        assert value is None, where
    elif t == "boolean":
        assert isinstance(value, bool), where
    elif t == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
        assert value >= schema.get("minimum", value) and value <= schema.get("maximum", value), where
    elif t == "string":
        assert isinstance(value, str), f"{where}: {value!r}"
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value[:80]!r}"
    elif t == "array":
        assert isinstance(value, list), where
        assert len(value) <= schema.get("maxItems", len(value)), where
        assert len(value) >= schema.get("minItems", 0), where
        for i, v in enumerate(value):
            prefix = schema.get("prefixItems", [])
            item = prefix[i] if i < len(prefix) else schema.get("items", {})
            validate(v, item, f"{where}[{i}]")
    elif t == "object":
        assert isinstance(value, dict), f"{where}: {type(value).__name__}"
        props = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: missing {missing}"
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{where}: extra {set(value) - set(props)}"
        for k, v in value.items():
            if k in props:
                validate(v, props[k], f"{where}.{k}")
    return None


def _schema_for(path: str, method: str, status: int) -> dict[str, Any]:
    op = DOC["paths"][path][method]
    resp = op["responses"][str(status)]
    return next(iter(resp["content"].values()))["schema"]  # type: ignore[no-any-return]


def test_real_responses_validate_against_the_document() -> None:
    fake = FakeBackend()
    cp = CP_KEY.pub.hex()

    def fn(c: NodeClient) -> list[tuple[str, str, int, Any]]:
        out: list[tuple[str, str, int, Any]] = []
        txid = c.submit_tx(make_tx(1), wait_commit=True)["txid"]
        calls = [
            ("/status", "/status"), ("/txs/{txid}", f"/txs/{txid}"),
            ("/blocks/{height}", "/blocks/4"), ("/blocks/{height}", "/blocks/1"),
            ("/commits/{height}", "/commits/2"), ("/validators/{height}", "/validators/5"),
            ("/state/{key}", f"/state/{(b'cp/' + CP_KEY.pub).hex()}?height=2"),
            ("/state/{key}", "/state/00ff"), ("/chargepoints/{cp}", f"/chargepoints/{cp}"),
            ("/chargepoints/{cp}", "/chargepoints/" + "ee" * 32), ("/openapi.json", "/openapi.json"),
            ("/providers/{pub}", "/providers/" + "ee" * 32),
        ]  # fmt: skip
        for template, path in calls:
            out.append((template, "get", 200, c._json("GET", path)))
        out.append(("/txs", "post", 200, c.submit_tx(make_tx(2))))
        for template, method, path in [("/blocks/{height}", "get", "/blocks/x"),
                                       ("/blocks/{height}", "get", "/blocks/77"),
                                       ("/txs", "post", "/txs")]:  # fmt: skip
            with pytest.raises(ApiResponseError) as ei:
                c._json(method.upper(), path, b"" if method == "post" else None,
                        {"content-type": "application/msgpack"})  # fmt: skip
            out.append((template, method, ei.value.status,
                        {"error": {"code": ei.value.code, "message": ei.value.message}}))
        return out

    for template, method, status, body in with_client(fake, fn):
        validate(body, _schema_for(template, method, status), f"{method} {template}")


def test_validator_catches_a_misfit() -> None:
    with pytest.raises(AssertionError):
        validate({"txid": "AB", "height": None, "ok": True, "code": "ok", "log": ""},
                 {"$ref": "#/components/schemas/TxResult"})  # fmt: skip
    with pytest.raises(AssertionError):
        validate({"chain_id": "c", "node_id": "00" * 32, "latest_height": 1, "latest_block_id": None,
                  "latest_time": None, "catching_up": False, "extra": 1},
                 {"$ref": "#/components/schemas/Status"})  # fmt: skip
