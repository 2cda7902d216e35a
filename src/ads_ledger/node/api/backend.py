"""What the HTTP API needs from a node: the `NodeBackend` protocol and the values it returns.

The node implements `NodeBackend`; the HTTP layer only renders what it gets. Getters are
synchronous and must be quick (an LMDB read transaction is; a network call is not).
`submit_tx` is async because it may wait for a block. Refusals are exceptions that carry a
stable `code`: `Refusal` for a transaction refused before inclusion, `HeightUnavailable` for
state at a height that is pruned or not reached yet.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Mapping, Protocol, Sequence

from ads_ledger.core.errors import RemoteError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Block, Commit, Header, ValidatorSet

__all__ = [
    "NodeBackend",
    "NodeStatus",
    "SubmitResult",
    "TxInfo",
    "StateRead",
    "NewBlock",
    "Metric",
    "Refusal",
    "HeightUnavailable",
]

_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class Refusal(RemoteError):
    """A transaction refused before inclusion. `code` is the stable snake_case reason.

    `status` is the HTTP status to answer with (a 4xx: the client's transaction is at fault,
    or 429 when the mempool is full or the signer has too many pending). A 429 carries
    `retry_after` seconds (≥ 1) for the Retry-After header. The route also accepts any other
    RemoteError that has a str `code` attribute (such as the state machine's
    `ads_ledger.state.reasons.TxRejected` refusals), answering 400.
    """

    def __init__(self, code: str, message: str, status: int = 400, retry_after: int = 1) -> None:
        if not _CODE.fullmatch(code):
            raise ValueError(f"refusal code {code!r} is not snake_case")
        if not 400 <= status < 500:
            raise ValueError("a refused transaction is answered with a 4xx status")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = max(1, retry_after)


class HeightUnavailable(RemoteError):
    """State at a height the node cannot serve: pruned (410) or beyond its latest (404)."""

    def __init__(self, reason: Literal["pruned", "future"], message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """`GET /status`. `latest_*` are None before the first block is committed."""

    chain_id: str
    node_id: bytes
    latest_height: int
    latest_block_id: bytes | None
    latest_time: int | None
    catching_up: bool


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Outcome of `submit_tx`: admitted (height None: pending) or included (height set).
    (The OpenAPI document calls its JSON form `TxResult`; the state machine's per-transaction
    result is `ads_ledger.state.machine.TxResult`.)

    `ok`/`code`/`log` are the execution result once included (None/"pending" while only
    admitted). With `wait_commit`, height None means the tx was not included in time.
    """

    txid: bytes
    height: int | None
    ok: bool | None
    code: str
    log: str


@dataclass(frozen=True, slots=True)
class TxInfo:
    """A committed transaction: where it is and how its execution went."""

    txid: bytes
    height: int
    index: int
    ok: bool
    code: str
    log: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class StateRead:
    """A state value (None: absent) at `height`, with a proof against that height's state_root."""

    height: int
    value: bytes | None
    proof: SparseProof


@dataclass(frozen=True, slots=True)
class NewBlock:
    """A new-block notification for `GET /events`."""

    header: Header
    num_txs: int
    changed_cps: tuple[bytes, ...] | None = ()  # cps whose record the block changed (None: unknown)


@dataclass(frozen=True, slots=True)
class Metric:
    """One sample in Prometheus terms. Samples sharing a `name` share `kind` and `help`."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    value: int | float
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"metric name {self.name!r} is not a Prometheus name")
        if any(not LABEL_NAME.fullmatch(k) for k in self.labels):
            raise ValueError(f"metric {self.name} has a label name Prometheus refuses")


class NodeBackend(Protocol):
    """The node as the HTTP API sees it. Every getter returns None for "no such thing"."""

    @property
    def chain_id(self) -> str: ...

    @property
    def node_id(self) -> bytes: ...

    def status(self) -> NodeStatus: ...

    async def submit_tx(self, raw: bytes, wait_commit: bool, timeout_s: float,
                        client: str | None = None) -> SubmitResult:  # fmt: skip
        """Check and admit `raw` to the mempool; with `wait_commit`, wait up to `timeout_s`
        for its block. `client` is the submitter's address (None: unknown), for per-client
        fairness. Raises Refusal (or a RemoteError with a `code`) if refused."""
        ...

    def get_tx(self, txid: bytes) -> TxInfo | None:
        """HeightUnavailable("pruned") if its block's body is pruned."""
        ...

    def get_block(self, height: int) -> Block | None:
        """HeightUnavailable("pruned") if the block's body is pruned (its header and commit stay)."""
        ...

    def get_commit(self, height: int) -> tuple[Header, Commit] | None:
        """The header of `height` and the commit that signs it."""
        ...

    def get_validators(self, height: int) -> ValidatorSet | None:
        """The set that decides `height` (known up to latest + 2)."""
        ...

    def get_state(self, key: bytes, height: int | None) -> StateRead:
        """`key` at `height` (None: latest). Raises HeightUnavailable if pruned or future."""
        ...

    def get_grants(self, grantee: bytes) -> tuple[int, list[tuple[bytes, dict[str, Any]]]]:
        """(latest height, [(cp, grant)]) of the live grants naming `grantee` (an index, unproven)."""
        ...

    def subscribe_blocks(self) -> AbstractAsyncContextManager[AsyncIterator[NewBlock]]:
        """A subscription to blocks committed from now on; leaving the context unsubscribes.

        The node decides what happens to a subscriber that falls behind (ending its
        iterator is fine: the client reconnects and catches up from /status)."""
        ...

    def metrics(self) -> Sequence[Metric]: ...
