"""The node's HTTP API (DESIGN §8): JSON over HTTP/1.1, served with trio and h11.

Layering, bottom up (each module imports only those above it in this list, plus
`ads_ledger.codec`, `.merkle`, `.types`, `.errors`):
- `jsonenc`  rendering of ledger values as JSON (bytes as lowercase hex) and the inverse parsers
- `backend`  the `NodeBackend` protocol the node implements, its value types, typed refusals
- `openapi`  the OpenAPI 3.1 document, written next to the route table
- `routes`   sans-IO routing, parameter parsing, handlers, error bodies, Prometheus rendering
- `server`   the trio + h11 shell: connections, limits, timeouts, keep-alive, event streams
- `client`   a small blocking client on `http.client` (for the wallet CLI and tests);
             of this package it uses `jsonenc` only.
"""

from .backend import (
    HeightUnavailable,
    Metric,
    NewBlock,
    NodeBackend,
    NodeStatus,
    StateRead,
    TxInfo,
    TxRejected,
    TxResult,
)
from .routes import ApiConfig
from .server import serve_http

__all__ = [
    "ApiConfig",
    "HeightUnavailable",
    "Metric",
    "NewBlock",
    "NodeBackend",
    "NodeStatus",
    "StateRead",
    "TxInfo",
    "TxRejected",
    "TxResult",
    "serve_http",
]
