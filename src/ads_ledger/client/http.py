"""A small blocking client for the node HTTP API (stdlib `http.client`), for the wallet CLI
and tests. One keep-alive connection, reopened once if the server closed it between requests.

Errors: `ApiResponseError` (the server answered with an error body: `.status`, `.code`,
`.message`; `NotFound` for 404) and `TransportError` (no usable answer: refused, reset, timed
out, or a body that is not the JSON the contract promises).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from typing import Any, Iterator
from urllib.parse import urlsplit

import ads_ledger.client.jsonenc as jsonenc  # the module, not the package (no cycle)
from ads_ledger.core import codec
from ads_ledger.core.errors import AdsError, DecodeError, RemoteError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Commit, Header, ValidatorSet

__all__ = ["NodeClient", "ApiResponseError", "NotFound", "TransportError"]


class TransportError(AdsError):
    """No usable answer from the node (connection failed, timed out, or garbage came back)."""


class ApiResponseError(RemoteError):
    """The node refused the request: HTTP `status`, the stable `code`, and its `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class NotFound(ApiResponseError):
    """404: no such block, commit, transaction, height or route."""


class NodeClient:
    """`NodeClient("http://127.0.0.1:26657")`. Not thread-safe: one per thread."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0) -> None:
        u = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"expected http://host:port, got {base_url!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "NodeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- transport

    def _connection(self) -> http.client.HTTPConnection:
        sock = None if self._conn is None else self._conn.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            self.close()  # readable while idle: the server closed it (or sent junk); start afresh
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:  # fmt: skip
        """One request → (status, content type, body). Retries once on a stale keep-alive."""
        hdrs = {"accept": "*/*", **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                # a GET is safe to repeat; a POST that may have arrived is not
                if attempt == 0 and method == "GET":
                    continue
                raise TransportError(f"connection to {self.host}:{self.port} lost: {e}") from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise TransportError(f"request to {self.host}:{self.port} failed: {e}") from e
            if resp.will_close:
                self.close()
            return resp.status, resp.getheader("content-type", ""), data
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        status, ctype, data = self.request(method, path, body, headers)
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if status >= 400:
            err = value.get("error") if isinstance(value, dict) else None
            if not isinstance(err, dict) or not isinstance(err.get("code"), str):
                raise TransportError(f"HTTP {status} without an error body: {data[:200]!r}")
            cls = NotFound if status == 404 else ApiResponseError
            raise cls(status, err["code"], str(err.get("message", "")))
        if value is None or not ctype.startswith("application/json"):
            raise TransportError(f"expected JSON, got {ctype!r}: {data[:200]!r}")
        return value

    # -------------------------------------------------------------- routes

    def status(self) -> dict[str, Any]:
        return self._dict(self._json("GET", "/status"))

    def submit_tx(self, raw: bytes, *, wait_commit: bool = False) -> dict[str, Any]:
        """POST /txs. ApiResponseError with the refusal code if refused before inclusion."""
        path = "/txs?wait=commit" if wait_commit else "/txs"
        return self._dict(self._json("POST", path, raw, {"content-type": "application/msgpack"}))

    def tx(self, txid: bytes) -> dict[str, Any]:
        return self._dict(self._json("GET", f"/txs/{txid.hex()}"))

    def block(self, height: int) -> dict[str, Any]:
        return self._dict(self._json("GET", f"/blocks/{height}"))

    def commit(self, height: int) -> tuple[Header, Commit]:
        """The signed header at `height`, typed (DecodeError if the node sent a bad one)."""
        v = self._dict(self._json("GET", f"/commits/{height}"))
        return jsonenc.header_from_json(v.get("header")), jsonenc.commit_from_json(v.get("commit"))

    def validators(self, height: int) -> ValidatorSet:
        v = self._dict(self._json("GET", f"/validators/{height}"))
        return jsonenc.validators_from_json(v.get("validators"))

    def state(self, key: bytes, height: int | None = None) -> tuple[int, bytes | None, SparseProof]:
        """(height, value or None, proof) — verify with merkle.verify_proof against a header."""
        q = "" if height is None else f"?height={height}"
        v = self._dict(self._json("GET", f"/state/{key.hex()}{q}"))
        return self._state_parts(v)

    def chargepoint(self, cp: bytes, height: int | None = None) -> dict[str, Any]:
        """The decoded record (bytes as hex) plus `value`, `proof`, `height`, as the node sent."""
        q = "" if height is None else f"?height={height}"
        return self._dict(self._json("GET", f"/chargepoints/{cp.hex()}{q}"))

    def provider(self, pub: bytes, height: int | None = None) -> dict[str, Any]:
        """GET /providers/{pub}: the register record (bytes as hex) plus `value`, `proof`, `height`."""
        q = "" if height is None else f"?height={height}"
        return self._dict(self._json("GET", f"/providers/{pub.hex()}{q}"))

    def light(self, cp: bytes, height: int | None = None) -> dict[str, Any]:
        """GET /light/{cp}: the decoded msgpack bundle (typed parts are the caller's to parse)."""
        q = "" if height is None else f"?height={height}"
        status, _, data = self.request("GET", f"/light/{cp.hex()}{q}", None, {"accept": "application/msgpack"})
        if status != 200:
            try:
                err = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                raise TransportError(f"HTTP {status} without an error body") from None
            raise ApiResponseError(status, str(err.get("code")), str(err.get("message", "")))
        return self._dict(codec.decode(data))

    def grants(self, grantee: bytes) -> dict[str, Any]:
        """GET /grants?grantee=…: {"height", "grants": [{"cp", "grant"}]} (bytes as hex; unproven)."""
        return self._dict(self._json("GET", f"/grants?grantee={grantee.hex()}"))

    def metrics_text(self) -> str:
        status, _, data = self.request("GET", "/metrics")
        if status != 200:
            raise TransportError(f"GET /metrics answered {status}")
        return data.decode("utf-8", "replace")

    def openapi(self) -> dict[str, Any]:
        return self._dict(self._json("GET", "/openapi.json"))

    def events(self, *, max_events: int) -> Iterator[dict[str, Any]]:
        """Yield up to `max_events` block events from GET /events on a dedicated connection
        (each read waits at most `timeout_s`; TransportError when it runs out)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", "/events", headers={"accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise TransportError(f"GET /events answered {resp.status}: {resp.read()[:200]!r}")
            seen = 0
            data: list[str] = []
            while seen < max_events:
                line = resp.readline(64 * 1024)
                if not line:
                    raise TransportError("the event stream ended")
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith("data:"):
                    data.append(text[5:].lstrip(" "))
                elif not text and data:
                    seen += 1
                    yield self._dict(json.loads("\n".join(data)))
                    data = []
        except (OSError, socket.timeout, http.client.HTTPException, ValueError) as e:
            raise TransportError(f"event stream failed: {e}") from e
        finally:
            conn.close()

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _dict(v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise TransportError("expected a JSON object")
        return v

    @staticmethod
    def _state_parts(v: dict[str, Any]) -> tuple[int, bytes | None, SparseProof]:
        height, value = v.get("height"), v.get("value")
        if type(height) is not int:
            raise DecodeError("state height must be an integer")
        raw = None if value is None else jsonenc.parse_hex(value, "value", max_length=1 << 22)
        return height, raw, jsonenc.proof_from_json(v.get("proof"))
