"""OCPP-J 2.0.1 framing (OCPP 2.0.1 Part 4 §4): a text frame in, a typed message or a typed
CALLERROR out — no sockets, no clock.

Built on the `ocpp` package's message layer (`ocpp.messages`: `unpack`, `Call`, `CallResult`,
`CallError`, and its payload validation against the official 2.0.1 JSON schemas), not on its
asyncio `ChargePoint` class. Its public `validate_payload` is a coroutine that hands the work to
an asyncio executor by default, which a trio program cannot await, so the synchronous
`_validate_payload` it wraps is called directly (hence the exact pin `ocpp==2.1.*`).

What can go wrong, and who is at fault:
  `FrameRejected`  the station sent something that is not a valid OCPP-J message; it carries the
                   CALLERROR to send back (RpcFrameworkError, MessageTypeNotSupported,
                   NotImplemented, FormatViolation, TypeConstraintViolation, ProtocolError, ...)
  `LocalOcppError` a message *we* built does not validate: a bug of ours, never sent.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ocpp import exceptions as ocpp_exc
from ocpp.messages import Call, CallError, CallResult, _validate_payload, unpack

__all__ = [
    "OCPP_VERSION",
    "SUBPROTOCOL",
    "FrameRejected",
    "LocalOcppError",
    "parse_frame",
    "validate_call",
    "validate_result",
    "new_call",
    "call_error",
    "Call",
    "CallError",
    "CallResult",
]

OCPP_VERSION = "2.0.1"
SUBPROTOCOL = "ocpp2.0.1"
MAX_MESSAGE_ID = 36  # Part 4 §4.1.3: messageId is at most 36 characters
UNKNOWN_ID = "-1"  # Part 4 §4.2.3: the messageId of a CALLERROR answering an unreadable message


class FrameRejected(Exception):
    """The station's frame is not valid OCPP-J; `reply` is the CALLERROR frame to send back."""

    def __init__(self, unique_id: str, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description = code, description
        self.reply = CallError(unique_id, code, description[:255], {}).to_json()


class LocalOcppError(Exception):
    """A message built here does not validate against the 2.0.1 schema (a bug of ours)."""


def parse_frame(text: str | bytes) -> Call | CallResult | CallError:
    """The message in one WebSocket frame. A Call is returned only once its payload validates
    against the action's request schema; a CallResult is returned as is (its action is known
    only to the caller: see `validate_result`)."""
    if isinstance(text, bytes):  # OCPP-J uses text frames only
        raise FrameRejected(UNKNOWN_ID, "RpcFrameworkError", "OCPP-J messages are text frames, not binary")
    try:
        raw = json.loads(text)
    except ValueError:
        raise FrameRejected(UNKNOWN_ID, "RpcFrameworkError", "the message is not JSON") from None
    mid = raw[1] if isinstance(raw, list) and len(raw) > 1 and isinstance(raw[1], str) else None
    if not isinstance(raw, list) or not raw or mid is None or len(mid) > MAX_MESSAGE_ID:
        raise FrameRejected(UNKNOWN_ID, "RpcFrameworkError",
                            "an OCPP-J message is a JSON array [type, messageId (string of at most 36), ...]")  # fmt: skip
    shapes = {2: (4, "[2, messageId, action, payload]"), 3: (3, "[3, messageId, payload]"),
              4: (5, "[4, messageId, errorCode, errorDescription, errorDetails]")}  # fmt: skip
    if raw[0] not in shapes or type(raw[0]) is not int:
        raise FrameRejected(mid, "MessageTypeNotSupported", f"message type {raw[0]!r} is not 2, 3 or 4")
    n, shape = shapes[raw[0]]
    if len(raw) != n:
        raise FrameRejected(mid, "RpcFrameworkError", f"a message of type {raw[0]} is {shape}")
    if raw[0] == 2 and not isinstance(raw[2], str):
        raise FrameRejected(mid, "RpcFrameworkError", "the action must be a string")
    if raw[0] in (2, 3) and not isinstance(raw[-1], dict):
        raise FrameRejected(mid, "FormatViolation", "the payload must be a JSON object")
    if raw[0] == 4 and not (isinstance(raw[2], str) and isinstance(raw[3], str) and isinstance(raw[4], dict)):
        raise FrameRejected(mid, "RpcFrameworkError", "a CALLERROR is [4, messageId, code, description, details]")
    try:
        msg = unpack(text)
    except ocpp_exc.OCPPError as e:  # the checks above should leave nothing for this
        raise FrameRejected(mid, e.code, str(e.description)) from None
    if isinstance(msg, Call):
        if not msg.action.isalnum():  # never a path into the schema directory
            raise FrameRejected(mid, "NotImplemented", f"unknown action {msg.action[:40]!r}")
        try:
            _validate_payload(msg, OCPP_VERSION)
        except ocpp_exc.NotImplementedError:
            raise FrameRejected(mid, "NotImplemented", f"unknown action {msg.action!r}") from None
        except ocpp_exc.OCPPError as e:
            raise FrameRejected(mid, _v201_code(e.code), _cause(e)) from None
    return msg  # type: ignore[no-any-return]


def validate_result(action: str, result: CallResult) -> str | None:
    """Why the station's answer to our `action` does not validate (None: it does)."""
    result.action = action
    try:
        _validate_payload(result, OCPP_VERSION)
    except ocpp_exc.OCPPError as e:
        return f"{e.code}: {_cause(e)}"
    return None


def validate_call(call: Call) -> None:
    """Raise LocalOcppError if a Call we built does not match the request schema."""
    try:
        _validate_payload(call, OCPP_VERSION)
    except ocpp_exc.OCPPError as e:
        raise LocalOcppError(f"{call.action}: {_cause(e)}") from e


def new_call(action: str, payload: dict[str, Any]) -> Call:
    call = Call(str(uuid.uuid4()), action, payload)
    validate_call(call)
    return call


def call_error(unique_id: str, code: str, description: str) -> str:
    return CallError(unique_id, code, description[:255], {}).to_json()  # type: ignore[no-any-return]


def _v201_code(code: str) -> str:
    # the ocpp package speaks 1.6's "FormationViolation"/"OccurenceConstraintViolation" in places
    return {"FormationViolation": "FormatViolation",
            "OccurenceConstraintViolation": "OccurrenceConstraintViolation"}.get(code, code)  # fmt: skip


def _cause(e: Any) -> str:
    d = e.details if isinstance(getattr(e, "details", None), dict) else {}
    return str(d.get("cause") or e.description)[:240]
