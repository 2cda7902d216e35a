"""The OpenAPI 3.1 document of the node HTTP API, served at `GET /openapi.json`.

Written by hand next to `routes.ROUTES`; tests/test_api_openapi.py checks that the two name the
same (method, path) pairs and the same query parameters, so they cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["document", "ERROR_CODES"]

# Every `error.code` the HTTP layer itself produces (a refused tx adds its own typed reason).
ERROR_CODES = (
    "bad_request", "bad_query", "bad_hex", "bad_length", "bad_height", "not_found",
    "method_not_allowed", "not_acceptable", "request_timeout", "body_too_large",
    "unsupported_media_type", "headers_too_large", "too_many_subscribers", "height_pruned",
    "height_future", "internal", "rate_limited",
)  # fmt: skip

RETRY_AFTER = {"Retry-After": {"description": "whole seconds (≥ 1) to wait before retrying",
                               "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip

HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "bytes as lowercase hex"}
HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes, lowercase hex"}
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{128}$", "description": "64 bytes, lowercase hex"}
UINT = {"type": "integer", "minimum": 0}
HEIGHT = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None,
         extra: bool = False) -> dict[str, Any]:  # fmt: skip
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": extra}  # fmt: skip


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string", "description": "stable snake_case reason: one of "
                 + ", ".join(ERROR_CODES) + ", or a transaction refusal code"},
        "message": {"type": "string"},
    })}),  # fmt: skip
    "Status": _obj({
        "chain_id": {"type": "string"}, "node_id": HEX32, "latest_height": UINT,
        "latest_block_id": _nullable(HEX32), "latest_time": _nullable(UINT),
        "catching_up": {"type": "boolean"},
    }),  # fmt: skip
    "TxResult": _obj({
        "txid": HEX32,
        "height": {**_nullable(HEIGHT), "description": "null: admitted, not (yet) in a block"},
        "ok": {**_nullable({"type": "boolean"}), "description": "null while pending"},
        "code": {"type": "string", "description": '"ok", a typed refusal reason, or "pending" '
                 "(admitted, not yet included: HTTP 202)"},
        "log": {"type": "string"},
    }),  # fmt: skip
    "Tx": _obj({
        "txid": HEX32, "height": HEIGHT, "index": UINT, "ok": {"type": "boolean"},
        "code": {"type": "string"}, "log": {"type": "string"},
        "tx": {**HEX, "description": "the envelope's canonical msgpack"},
    }),  # fmt: skip
    "Header": _obj({
        "version": {"const": 1}, "chain_id": {"type": "string"}, "height": HEIGHT, "time": UINT,
        **{k: HEX32 for k in ("prev", "txs_root", "evidence_root", "state_root", "validators",
                              "next_validators", "proposer", "last_commit")},
    }),  # fmt: skip
    "Commit": _obj({
        "height": HEIGHT, "round": UINT, "block": HEX32,
        "sigs": {"type": "array", "items": {"type": "array", "prefixItems": [UINT, HEX64],
                                            "minItems": 2, "maxItems": 2}},
    }),  # fmt: skip
    "Block": _obj({
        "block_id": HEX32, "header": _ref("Header"),
        "txs": {"type": "array", "items": HEX},
        "evidence": {"type": "array", "items": {"type": "object",
                     "description": "DESIGN §6 duplicate-vote evidence, bytes as hex"}},
        "last_commit": _nullable(_ref("Commit")),
    }),  # fmt: skip
    "SignedHeader": _obj({"header": _ref("Header"), "commit": _ref("Commit")}),
    "Validators": _obj({
        "height": HEIGHT,
        "validators": {"type": "array", "description": "in set order (power desc, pub asc)",
                       "items": _obj({"pub": HEX32, "power": {"type": "integer", "minimum": 1}})},
    }),  # fmt: skip
    "Proof": _obj({
        "leaf": {**_nullable({"type": "array", "prefixItems": [HEX32, HEX32],
                              "minItems": 2, "maxItems": 2}),
                 "description": "[key_hash, value_hash] or null"},
        "siblings": {"type": "array", "items": HEX32, "maxItems": 256,
                     "description": "from the root downwards (DESIGN §5)"},
    }),  # fmt: skip
    "StateValue": _obj({"key": HEX, "value": _nullable(HEX), "height": HEIGHT,
                        "proof": _ref("Proof")}),  # fmt: skip
    "ChargePoint": _obj(
        {"cp": HEX32, "owner": _nullable(HEX32), "pending": _nullable(HEX32), "epoch": UINT,
         "grants": {"type": "array", "items": {"type": "object"}}, "updated": UINT,
         "value": _nullable(HEX), "proof": _ref("Proof"), "height": HEIGHT},
        required=["cp", "value", "proof", "height"], extra=True,
    ),  # fmt: skip
    "Provider": _obj(
        {"pub": HEX32, "name": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}},
         "cap_w": _nullable(UINT), "suspended": {"type": "boolean"}, "live_w": UINT, "height": HEIGHT,
         "value": _nullable(HEX), "proof": _ref("Proof")},
        required=["pub", "value", "proof", "height"], extra=True,
    ),  # fmt: skip
}


def _height_param(where: str, description: str) -> dict[str, Any]:
    return {"name": "height", "in": where, "required": where == "path",
            "description": description, "schema": HEIGHT}  # fmt: skip


def _hex_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}  # fmt: skip


def _errors(*statuses: int) -> dict[str, Any]:
    desc = {400: "bad input (see error.code)", 404: "not found", 406: "Accept refuses the type",
            410: "height pruned", 413: "body too large", 415: "wrong Content-Type",
            429: "too many subscribers: retry after Retry-After seconds"}  # fmt: skip
    err = {"application/json": {"schema": _ref("Error")}}
    out: dict[str, Any] = {str(s): {"description": desc.get(s, "error"), "content": err}
                           for s in statuses}  # fmt: skip
    if 429 in statuses:
        out["429"]["headers"] = RETRY_AFTER
    out["default"] = {"description": "any other error (405 wrong method, 408 request timeout, "
                                     "431 head too large, 500 a bug of ours)", "content": err}
    return out


def _op(summary: str, schema: dict[str, Any] | str, params: list[dict[str, Any]],
        errors: tuple[int, ...], media: str = "application/json") -> dict[str, Any]:  # fmt: skip
    body_schema = _ref(schema) if isinstance(schema, str) else schema
    return {"summary": summary, "parameters": params, "responses": {
        "200": {"description": "OK", "content": {media: {"schema": body_schema}}},
        **_errors(*errors)}}  # fmt: skip


@lru_cache(maxsize=1)
def _doc() -> dict[str, Any]:
    state_h = _height_param("query", "read at this height (default: latest)")
    post = _op("Submit a transaction", "TxResult",
               [{"name": "wait", "in": "query", "required": False,
                 "description": "'commit': answer once the tx is in a block "
                                "(or the wait times out)",
                 "schema": {"enum": ["commit"]}}], (400, 413, 415, 429))  # fmt: skip
    post["responses"]["202"] = {
        "description": "admitted, not yet included (no wait, or wait=commit timed out): "
                       'height and ok are null, code is "pending"',
        "content": {"application/json": {"schema": _ref("TxResult")}}}  # fmt: skip
    post["requestBody"] = {"required": True, "content": {
        "application/msgpack": {"schema": {"type": "string", "format": "binary",
                                           "maxLength": 65536}}}}  # fmt: skip
    post["responses"]["400"]["description"] = "refused before inclusion: error.code is the reason"
    post["responses"]["429"]["description"] = (
        "try again after Retry-After seconds: error.code is rate_limited (this client address "
        "sent more than [api] tx_rate_per_client tx/s beyond its burst), signer_busy (the signer "
        "has [mempool] max_per_signer txs pending), client_busy (this address has [mempool] "
        "max_per_client txs pending) or mempool_full (full, and no signer or client holds more "
        "than its fair share to evict)")
    post["responses"]["4XX"] = {
        "description": "refused before inclusion with another 4xx the node chose (409 duplicate, "
                       "…): error.code is the reason",
        "content": {"application/json": {"schema": _ref("Error")}}}  # fmt: skip
    paths = {
        "/status": {"get": _op("Chain and node status", "Status", [], (406,))},
        "/txs": {"post": post},
        "/txs/{txid}": {"get": _op("A committed transaction", "Tx",
                                   [_hex_param("txid", HEX32, "transaction id")], (400, 404, 410))},
        "/blocks/{height}": {"get": _op("A block", "Block",
                                        [_height_param("path", "block height")], (400, 404, 410))},
        "/commits/{height}": {"get": _op("A header with the commit that signs it", "SignedHeader",
                                         [_height_param("path", "block height")], (400, 404))},
        "/validators/{height}": {"get": _op(
            "The validator set deciding a height", "Validators",
            [_height_param("path", "block height")], (400, 404))},
        "/state/{key}": {"get": _op(
            "A state value with its sparse Merkle proof", "StateValue",
            [_hex_param("key", {**HEX, "minLength": 2, "maxLength": 512}, "state key"), state_h],
            (400, 404, 410))},
        "/chargepoints/{cp}": {"get": _op(
            "A charge point record (its whole access list) with proof; unknown: value null",
            "ChargePoint", [_hex_param("cp", HEX32, "charge point public key"), state_h],
            (400, 404, 410))},
        "/providers/{pub}": {"get": _op(
            "A service provider's register record (prov/: name, roles, cap_w, suspended, live_w, height) "
            "with proof; unknown: value null. `height` is the height read; the record's own height (its last "
            "change) is in `value`. The list of providers is the proven record gov/providers",
            "Provider", [_hex_param("pub", HEX32, "provider public key"), state_h],
            (400, 404, 410))},
        "/light/{cp}": {"get": _op(
            "One round trip for a charge point's light client, at the latest height H: canonical msgpack "
            "{height, header, commit, validators, record: {value, proof}, params: {value, proof}} "
            "(the signed header, H's set, the cp/ record and gov/params with proofs; verify all of it)",
            {"type": "string", "format": "binary"}, [_hex_param("cp", HEX32, "charge point public key"), state_h],
            (400, 404, 406, 410), media="application/msgpack")},
        "/grants": {"get": _op(
            "The live grants naming a grantee, latest state: an index for providers (not proven: "
            "verify each record through /chargepoints/{cp})",
            {"type": "object", "required": ["height", "grants"], "properties": {
                "height": UINT, "grants": {"type": "array", "items": {"type": "object", "required": ["cp", "grant"],
                                                                      "properties": {"cp": HEX32, "grant": {"type": "object"}}}}}},
            [{"name": "grantee", "in": "query", "required": True, "schema": HEX32}], (400,))},
        "/events": {"get": _op(
            "Server-Sent Events: one `event: block` per committed block (id = height, data = "
            "JSON {height, block_id, time, num_txs, header, changed_cps}: changed_cps lists the charge "
            "points whose cp/ record the block changed, hex); `: ping` comments keep it alive. "
            "The schema describes one event (as OpenAPI 3.2's itemSchema does)",
            {"type": "object", "required": ["event", "id", "data"], "properties": {
                "event": {"const": "block"}, "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {"type": "string", "contentMediaType": "application/json"}}},
            [], (406, 429), media="text/event-stream")},
        "/metrics": {"get": _op("Prometheus text exposition 0.0.4", {"type": "string"}, [], (406,),
                                media="text/plain")},
        "/openapi.json": {"get": _op("This document", {"type": "object"}, [], (406,))},
    }  # fmt: skip
    pruned = ("the block's body is pruned on this node ([storage] keep_blocks): error.code is "
              "height_pruned; its header and commit stay (GET /commits/{height})")
    paths["/blocks/{height}"]["get"]["responses"]["410"]["description"] = pruned
    paths["/txs/{txid}"]["get"]["responses"]["410"]["description"] = (
        "committed, but its block's body is pruned on this node ([storage] keep_blocks): error.code "
        "is height_pruned")
    return {
        "openapi": "3.1.0",
        "info": {"title": "ADS ledger node API", "version": "1",
                 "description": "DESIGN §8. JSON; bytes as lowercase hex; errors are "
                                "{\"error\": {\"code\", \"message\"}} with a 4xx/5xx status."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh shallow copy; the cached one is shared)."""
    return dict(_doc())
