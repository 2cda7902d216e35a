"""The routes of the node HTTP API (DESIGN §8): parsing, dispatch and rendering, without sockets.

A route handler takes the request and the path parameters and returns a `Response` (or an
`EventStream` for `GET /events`). Bad input raises `ApiError` with a 4xx status and a stable
`code`; the server turns it into `{"error": {"code", "message"}}`. `ROUTES` is the single list
of what is served; `openapi.py` documents it and a test keeps the two identical.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from urllib.parse import parse_qsl, unquote

from ads_ledger.client import jsonenc
from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError, RemoteError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.node.api.backend import HeightUnavailable, Metric, NewBlock, NodeBackend, Refusal
from ads_ledger.node.api.metrics import PROM_TEXT, render_metrics
from ads_ledger.node.api.openapi import document as openapi_document
from ads_ledger.node.api.ratelimit import ClientRateLimiter

__all__ = [
    "ApiConfig",
    "ApiContext",
    "ApiError",
    "Request",
    "Response",
    "EventStream",
    "Route",
    "ROUTES",
    "dispatch",
    "error_response",
    "render_metrics",
]

MAX_HEIGHT = 2**63 - 1
MAX_KEY_BYTES = 256  # longer than any state key of DESIGN §5
JSON = "application/json"
MSGPACK = "application/msgpack"
SSE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Limits and timeouts of the API server (all have safe defaults)."""

    max_body: int = 64 * 1024
    max_header_bytes: int = 8 * 1024
    max_connections: int = 256
    max_subscribers: int = 64
    idle_timeout_s: float = 30.0  # keep-alive connection with no request in progress
    first_byte_timeout_s: float = 5.0  # a new connection must start its first request by then
    busy_idle_timeout_s: float = 1.0  # keep-alive wait when over 3/4 of the connections are open
    request_timeout_s: float = 10.0  # first byte of a request to its last
    write_timeout_s: float = 10.0  # one response write
    tx_wait_timeout_s: float = 20.0  # POST /txs?wait=commit
    events_heartbeat_s: float = 15.0  # SSE comment line; also detects gone clients
    # POST /txs per client address: a provider's bulk tool on one address needs ≥ 2,000 tx/s
    tx_rate_per_client: float = 4000.0  # tokens per second; 0: no limit
    tx_burst_per_client: float = 8000.0  # bucket size
    rate_clients: int = 10_000  # client buckets kept (least recently used dropped)


class ApiError(RemoteError):
    """A request we refuse: HTTP `status` (4xx), stable `code`, and a message for humans."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Sequence[tuple[str, str]] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True)
class Request:
    """A complete HTTP request. Header names are lowercase; repeated headers are joined by ', '."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""
    client: str = ""  # the peer's address ("" when unknown): the rate limit's key


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EventStream:
    """A Server-Sent Events response: `open()` subscribes, `render(item)` is one SSE frame."""

    open: Callable[[], AbstractAsyncContextManager[AsyncIterator[Any]]]
    render: Callable[[Any], bytes]


@dataclass
class ApiStats:
    """Counters the server keeps about itself for /metrics."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    rate_limited: int = 0  # POST /txs refused by the per-client rate limit
    connections_open: int = 0
    connections_total: int = 0
    protocol_errors: int = 0
    subscribers: int = 0


@dataclass
class ApiContext:
    backend: NodeBackend
    config: ApiConfig = field(default_factory=ApiConfig)
    stats: ApiStats = field(default_factory=ApiStats)
    clock: Callable[[], float] = time.monotonic  # seconds, for the rate limit
    limiter: ClientRateLimiter | None = None  # None: built from `config`

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = ClientRateLimiter(self.config.tx_rate_per_client,
                                             self.config.tx_burst_per_client,
                                             self.config.rate_clients)  # fmt: skip


Handler = Callable[[ApiContext, Request, Mapping[str, str], Mapping[str, str]],
                   Awaitable["Response | EventStream"]]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str  # "/blocks/{height}"
    handler: Handler
    query: frozenset[str] = frozenset()  # accepted query parameters; any other is a 400
    produces: str = JSON

    def match(self, segments: list[str]) -> dict[str, str] | None:
        parts = self.template.strip("/").split("/")
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, seg in zip(parts, segments):
            if part.startswith("{"):
                if not seg:
                    return None
                params[part[1:-1]] = seg
            elif part != seg:
                return None
        return params


# ---------------------------------------------------------------- parameter parsing


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, jsonenc.dumps(value))


def error_response(status: int, code: str, message: str,
                   headers: Sequence[tuple[str, str]] = ()) -> Response:  # fmt: skip
    return Response(status, jsonenc.dumps({"error": {"code": code, "message": message}}),
                    headers=tuple(headers))  # fmt: skip


def parse_height(text: str, what: str = "height") -> int:
    """A block height: decimal digits, 1 ≤ h ≤ 2^63−1. ApiError 400 `bad_height` otherwise."""
    if text.startswith("-") and text[1:].isdigit():
        raise ApiError(400, "bad_height", f"{what} must not be negative")
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise ApiError(400, "bad_height", f"{what} must be a decimal integer, got {text[:40]!r}")
    h = int(text)
    if h < 1 or h > MAX_HEIGHT:
        raise ApiError(400, "bad_height",
                       f"{what} must be between 1 and 2^63-1 (heights start at 1)")
    return h


def parse_hex_param(text: str, what: str, *, length: int | None = None,
                    max_length: int = MAX_KEY_BYTES) -> bytes:  # fmt: skip
    """Lowercase hex → bytes: 400 `bad_hex` if not hex, 400 `bad_length` if the size is wrong."""
    try:
        raw = jsonenc.parse_hex(text, what, max_length=10**6)
    except DecodeError as e:
        raise ApiError(400, "bad_hex", str(e)) from None
    if length is not None and len(raw) != length:
        raise ApiError(400, "bad_length",
                       f"{what} must be {length} bytes ({2 * length} hex digits), got {len(raw)}")
    if not 0 < len(raw) <= max_length:
        raise ApiError(400, "bad_length", f"{what} must be 1..{max_length} bytes, got {len(raw)}")
    return raw


def accepts(accept: str | None, offered: str) -> bool:
    """Whether an Accept header admits media type `offered` (absent header: anything goes)."""
    if accept is None or not accept.strip():
        return True
    main, _, sub = offered.partition(";")[0].strip().partition("/")
    for item in accept.split(","):
        media, *params = item.split(";")
        q = 1.0
        for p in params:
            name, _, val = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if not q > 0 or math.isnan(q):
            continue
        m, _, s = media.strip().lower().partition("/")
        if (m, s) in (("*", "*"), (main, "*"), (main, sub)):
            return True
    return False


def _height_query(query: Mapping[str, str]) -> int | None:
    return None if "height" not in query else parse_height(query["height"], "the height parameter")


def _proof_json(proof: SparseProof) -> Any:
    return jsonenc.to_json(proof.to_obj())


def _state_read(ctx: ApiContext, key: bytes, height: int | None) -> Any:
    try:
        return ctx.backend.get_state(key, height)
    except HeightUnavailable as e:
        raise _unavailable(e) from None


def _unavailable(e: HeightUnavailable) -> ApiError:
    if e.reason == "pruned":
        return ApiError(410, "height_pruned", e.message)
    return ApiError(404, "height_future", e.message)


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


# ---------------------------------------------------------------- handlers


async def get_status(ctx: ApiContext, req: Request, p: Mapping[str, str],
                     q: Mapping[str, str]) -> Response:  # fmt: skip
    s = ctx.backend.status()
    return json_response({
        "chain_id": s.chain_id, "node_id": s.node_id, "latest_height": s.latest_height,
        "latest_block_id": s.latest_block_id, "latest_time": s.latest_time,
        "catching_up": s.catching_up,
    })  # fmt: skip


async def post_tx(ctx: ApiContext, req: Request, p: Mapping[str, str],
                  q: Mapping[str, str]) -> Response:  # fmt: skip
    assert ctx.limiter is not None  # set by ApiContext.__post_init__
    wait_s = ctx.limiter.take(req.client, ctx.clock())
    if wait_s > 0:  # first: a flood costs us no parsing or signature checks
        ctx.stats.rate_limited += 1
        after = ctx.limiter.retry_after(wait_s)
        raise ApiError(429, "rate_limited",
                       f"this client sent more than {ctx.config.tx_rate_per_client:g} tx/s "
                       f"(burst {ctx.config.tx_burst_per_client:g}); retry in {after} s",
                       [("retry-after", str(after))])  # fmt: skip
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != MSGPACK:
        raise ApiError(415, "unsupported_media_type",
                       f"POST /txs takes the raw transaction as {MSGPACK}, "
                       f"not {ctype or 'nothing'}")
    wait = q.get("wait")
    if wait not in (None, "commit"):
        raise ApiError(400, "bad_query", "wait must be 'commit' or absent")
    try:
        r = await ctx.backend.submit_tx(req.body, wait == "commit", ctx.config.tx_wait_timeout_s,
                                        client=req.client or None)  # fmt: skip
    except Refusal as e:
        retry = [("retry-after", str(e.retry_after))] if e.status == 429 else []
        raise ApiError(e.status, e.code, e.message, retry) from None
    except RemoteError as e:  # the node's own typed refusals (tx.reasons) pass through as-is
        code = getattr(e, "code", None)
        if not isinstance(code, str):
            code = "malformed" if isinstance(e, DecodeError) else "rejected"
        raise ApiError(400, code, str(e)) from None
    if r.height is None:  # DESIGN §8: admitted but not included (yet) is not an outcome
        return json_response({"txid": r.txid, "height": None, "ok": None, "code": "pending",
                              "log": r.log or "admitted; not yet in a block"}, 202)  # fmt: skip
    return json_response({"txid": r.txid, "height": r.height, "ok": r.ok, "code": r.code,
                          "log": r.log})  # fmt: skip


async def get_tx(ctx: ApiContext, req: Request, p: Mapping[str, str],
                 q: Mapping[str, str]) -> Response:  # fmt: skip
    txid = parse_hex_param(p["txid"], "txid", length=32)
    try:
        t = ctx.backend.get_tx(txid)
    except HeightUnavailable as e:  # its block's body is pruned ([storage] keep_blocks)
        raise _unavailable(e) from None
    if t is None:
        raise _not_found(f"no committed transaction {txid.hex()}")
    return json_response({"txid": t.txid, "height": t.height, "index": t.index, "ok": t.ok,
                          "code": t.code, "log": t.log, "tx": t.raw})  # fmt: skip


async def get_block(ctx: ApiContext, req: Request, p: Mapping[str, str],
                    q: Mapping[str, str]) -> Response:  # fmt: skip
    h = parse_height(p["height"])
    try:
        b = ctx.backend.get_block(h)
    except HeightUnavailable as e:  # the body is pruned ([storage] keep_blocks)
        raise _unavailable(e) from None
    if b is None:
        raise _not_found(f"no block at height {h}")
    return json_response({"block_id": b.block_id(), **b.to_obj()})


async def get_commit(ctx: ApiContext, req: Request, p: Mapping[str, str],
                     q: Mapping[str, str]) -> Response:  # fmt: skip
    h = parse_height(p["height"])
    hc = ctx.backend.get_commit(h)
    if hc is None:
        raise _not_found(f"no commit for height {h}")
    return json_response({"header": hc[0].to_obj(), "commit": hc[1].to_obj()})


async def get_validators(ctx: ApiContext, req: Request, p: Mapping[str, str],
                         q: Mapping[str, str]) -> Response:  # fmt: skip
    h = parse_height(p["height"])
    vs = ctx.backend.get_validators(h)
    if vs is None:
        raise _not_found(f"no validator set known for height {h}")
    return json_response({"height": h,
                          "validators": [{"pub": k, "power": w} for k, w in vs.validators]})


async def get_state(ctx: ApiContext, req: Request, p: Mapping[str, str],
                    q: Mapping[str, str]) -> Response:  # fmt: skip
    key = parse_hex_param(p["key"], "key")
    r = _state_read(ctx, key, _height_query(q))
    return json_response({"key": key, "value": r.value, "height": r.height,
                          "proof": _proof_json(r.proof)})  # fmt: skip


async def get_chargepoint(ctx: ApiContext, req: Request, p: Mapping[str, str],
                          q: Mapping[str, str]) -> Response:  # fmt: skip
    cp = parse_hex_param(p["cp"], "charge point key", length=32)
    r = _state_read(ctx, b"cp/" + cp, _height_query(q))
    out: dict[str, Any] = {"cp": cp}
    if r.value is not None:
        record = codec.decode(r.value)  # state holds canonical values; failing here is our bug
        if not isinstance(record, dict):
            raise TypeError("a charge point record is not a map")
        out.update(record)
    out.update({"value": r.value, "proof": _proof_json(r.proof), "height": r.height})
    return json_response(out)


async def get_provider(ctx: ApiContext, req: Request, p: Mapping[str, str],
                       q: Mapping[str, str]) -> Response:  # fmt: skip
    """A service provider's register record (regulator levers) with proof; unknown: value null."""
    pub = parse_hex_param(p["pub"], "provider key", length=32)
    r = _state_read(ctx, b"prov/" + pub, _height_query(q))
    out: dict[str, Any] = {"pub": pub}
    if r.value is not None:
        record = codec.decode(r.value)
        if not isinstance(record, dict):
            raise TypeError("a provider record is not a map")
        out.update(record)
    out.update({"value": r.value, "proof": _proof_json(r.proof), "height": r.height})
    return json_response(out)


MSGPACK = "application/msgpack"


async def get_light(ctx: ApiContext, req: Request, p: Mapping[str, str],
                    q: Mapping[str, str]) -> Response:  # fmt: skip
    """Everything a charge point's light client needs in one round trip, at the latest height H:
    the signed header, H's validator set, and its `cp/` record and gov/params with proofs
    (canonical msgpack; each part is verified by the client, none is trusted)."""
    cp = parse_hex_param(p["cp"], "charge point key", length=32)
    latest = ctx.backend.status().latest_height
    h = _height_query(q) or latest
    if h > latest:
        raise ApiError(404, "height_future", f"height {h} is beyond the latest, {latest}")
    hc = ctx.backend.get_commit(h) if h else None
    vs = ctx.backend.get_validators(h) if h else None
    if hc is None or vs is None:
        raise ApiError(404, "height_future", "no block is committed yet")
    try:  # an old height (a trust root) may have its state pruned: the signed header still serves
        rec, par = ctx.backend.get_state(b"cp/" + cp, h), ctx.backend.get_state(b"gov/params", h)
        parts = {"params": {"proof": par.proof.to_obj(), "value": par.value},
                 "record": {"proof": rec.proof.to_obj(), "value": rec.value}}  # fmt: skip
    except HeightUnavailable:
        parts = {"params": None, "record": None}
    body = codec.encode({"commit": hc[1].to_obj(), "header": hc[0].to_obj(), "height": h, **parts,
                         "validators": vs.to_obj()})  # fmt: skip
    return Response(200, body, MSGPACK)


async def get_grants(ctx: ApiContext, req: Request, p: Mapping[str, str],
                     q: Mapping[str, str]) -> Response:  # fmt: skip
    if "grantee" not in q:
        raise ApiError(400, "bad_query", "give ?grantee=<public key hex>")
    grantee = parse_hex_param(q["grantee"], "grantee", length=32)
    height, grants = ctx.backend.get_grants(grantee)
    return json_response({"height": height, "grants": [{"cp": cp, "grant": g} for cp, g in grants]})


def render_block_event(ev: NewBlock) -> bytes:
    """One SSE frame: `id: <height>`, `event: block`, `data: <one JSON line>`, blank line."""
    h = ev.header
    changed = None if ev.changed_cps is None else list(ev.changed_cps)
    data = jsonenc.dumps({"height": h.height, "block_id": h.block_id(), "time": h.time, "num_txs": ev.num_txs,
                          "header": h.to_obj(), "changed_cps": changed}).rstrip(b"\n")  # fmt: skip
    return b"id: %d\nevent: block\ndata: %s\n\n" % (h.height, data)


async def get_events(ctx: ApiContext, req: Request, p: Mapping[str, str],
                     q: Mapping[str, str]) -> EventStream:  # fmt: skip
    if ctx.stats.subscribers >= ctx.config.max_subscribers:
        raise ApiError(429, "too_many_subscribers",
                       f"this node serves at most {ctx.config.max_subscribers} event streams")
    return EventStream(ctx.backend.subscribe_blocks, render_block_event)


def api_metrics(stats: ApiStats) -> list[Metric]:
    out = [
        Metric("ads_api_connections_open", "gauge", "HTTP connections open now",
               stats.connections_open),
        Metric("ads_api_connections_total", "counter", "HTTP connections accepted",
               stats.connections_total),
        Metric("ads_api_protocol_errors_total", "counter",
               "requests refused as malformed HTTP or timed out", stats.protocol_errors),
        Metric("ads_api_event_subscribers", "gauge", "open GET /events streams", stats.subscribers),
        Metric("ads_api_rate_limited_total", "counter",
               "POST /txs refused by the per-client rate limit (429 rate_limited)",
               stats.rate_limited),
    ]  # fmt: skip
    for (route, status), n in sorted(stats.requests.items()):
        out.append(Metric("ads_api_requests_total", "counter", "HTTP requests answered",
                          n, {"route": route, "status": str(status)}))  # fmt: skip
    return out


async def get_metrics(ctx: ApiContext, req: Request, p: Mapping[str, str],
                      q: Mapping[str, str]) -> Response:  # fmt: skip
    body = render_metrics([*ctx.backend.metrics(), *api_metrics(ctx.stats)])
    return Response(200, body, PROM_TEXT)


async def get_openapi(ctx: ApiContext, req: Request, p: Mapping[str, str],
                      q: Mapping[str, str]) -> Response:  # fmt: skip
    return Response(200, _openapi_bytes())


@lru_cache(maxsize=1)
def _openapi_bytes() -> bytes:
    return jsonenc.dumps(openapi_document())  # the document never changes while we run


ROUTES: tuple[Route, ...] = (
    Route("GET", "/status", get_status),
    Route("POST", "/txs", post_tx, frozenset({"wait"})),
    Route("GET", "/txs/{txid}", get_tx),
    Route("GET", "/blocks/{height}", get_block),
    Route("GET", "/commits/{height}", get_commit),
    Route("GET", "/validators/{height}", get_validators),
    Route("GET", "/state/{key}", get_state, frozenset({"height"})),
    Route("GET", "/chargepoints/{cp}", get_chargepoint, frozenset({"height"})),
    Route("GET", "/providers/{pub}", get_provider, frozenset({"height"})),
    Route("GET", "/grants", get_grants, frozenset({"grantee"})),
    Route("GET", "/light/{cp}", get_light, frozenset({"height"}), produces=MSGPACK),
    Route("GET", "/events", get_events, produces=SSE),
    Route("GET", "/metrics", get_metrics, produces=PROM_TEXT),
    Route("GET", "/openapi.json", get_openapi),
)


# ---------------------------------------------------------------- dispatch


def parse_target(target: str) -> tuple[list[str], dict[str, str]]:
    """Split an origin-form target into path segments and a query map (400 `bad_request`,
    or 400 `bad_query` for repeated or too many parameters)."""
    if not target.startswith("/"):
        raise ApiError(400, "bad_request", "the request target must be a path starting with '/'")
    path, _, query = target.partition("?")
    try:
        segments = [unquote(s, errors="strict") for s in path[1:].split("/")]
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the path is not percent-encoded UTF-8") from None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=16,
                          errors="strict") if query else []  # fmt: skip
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "bad_query", f"cannot parse the query: {e}") from None
    q: dict[str, str] = {}
    for k, v in pairs:
        if k in q:
            raise ApiError(400, "bad_query", f"query parameter {k!r} is repeated")
        q[k] = v
    return segments, q


def route_for(method: str, target: str) -> tuple[Route, dict[str, str], dict[str, str]]:
    """The route, path parameters and query for a request; 404 / 405 / 400 ApiError."""
    segments, query = parse_target(target)
    allowed = []
    for r in ROUTES:
        params = r.match(segments)
        if params is None:
            continue
        if r.method == method:
            unknown = sorted(set(query) - r.query)
            if unknown:
                raise ApiError(400, "bad_query", f"unknown query parameter {unknown[0][:40]!r}"
                               f" (this route takes: {sorted(r.query) or 'none'})")  # fmt: skip
            return r, params, query
        allowed.append(r.method)
    if allowed:
        allow = ", ".join(sorted(set(allowed)))
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed here; use {allow}",
                       [("allow", allow)])  # fmt: skip
    raise ApiError(404, "not_found", "no such route; see GET /openapi.json")


async def dispatch(ctx: ApiContext, req: Request) -> tuple[str, Response | EventStream]:
    """Route and run `req`. Returns (route template for metrics, response).

    ApiError becomes its JSON error response; any other exception propagates (it is our bug).
    """
    name = "unmatched"
    try:
        route, params, query = route_for(req.method, req.target)
        name = route.template
        if not accepts(req.headers.get("accept"), route.produces):
            raise ApiError(406, "not_acceptable", f"this route answers {route.produces}")
        return name, await route.handler(ctx, req, params, query)
    except ApiError as e:
        headers = e.headers
        if e.status == 429 and not any(k == "retry-after" for k, _ in headers):
            headers = (*headers, ("retry-after", "1"))  # every 429 says when to come back
        return name, error_response(e.status, e.code, e.message, headers)
