"""The node's HTTP API (DESIGN §8): JSON over HTTP/1.1, served with trio and h11.

Layering, bottom up (each module imports only those above it in this list, plus
`ads_ledger.core.codec`, `.merkle`, `.types`, `.errors`):
- `jsonenc`  rendering of ledger values as JSON (bytes as lowercase hex) and the inverse parsers
- `backend`  the `NodeBackend` protocol the node implements, its value types, typed refusals
- `metrics`  Prometheus text exposition of `backend.Metric` samples
- `openapi`  the OpenAPI 3.1 document, written next to the route table
- `routes`   sans-IO routing, parameter parsing, handlers, error bodies, Prometheus rendering
- `server`   the trio + h11 shell: connections, limits, timeouts, keep-alive, event streams
- `client`   a small blocking client on `http.client` (for the wallet CLI and tests);
             of this package it uses `jsonenc` only.

`GET /events` is Server-Sent Events (text/event-stream): a `: ads-ledger block events` comment
first, then per committed block `id: <height>`, `event: block`, `data: {"height", "block_id",
"time", "num_txs", "header"}` (one JSON line), and a `: ping` comment when idle for
`events_heartbeat_s`. A client that falls behind may be dropped; it reconnects and catches up
from `/status` and `/commits/{height}`.
"""

from ads_ledger.node.api.backend import (
    HeightUnavailable,
    Metric,
    NewBlock,
    NodeBackend,
    NodeStatus,
    Refusal,
    StateRead,
    SubmitResult,
    TxInfo,
)
from ads_ledger.node.api.routes import ApiConfig
from ads_ledger.node.api.server import serve_http

__all__ = [
    "ApiConfig",
    "HeightUnavailable",
    "Metric",
    "NewBlock",
    "NodeBackend",
    "NodeStatus",
    "StateRead",
    "TxInfo",
    "Refusal",
    "SubmitResult",
    "serve_http",
]
