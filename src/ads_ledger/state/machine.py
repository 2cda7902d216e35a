"""The ADS state machine (DESIGN §4, §5): `check_tx` for the mempool, `execute_block` for blocks.

Pure functions over a read-only `StateView`; no LMDB, no clock. A block runs its transactions in
order over one `Overlay`, so later transactions see earlier ones' effects, and returns every
change as canonical bytes (keys sorted) — the same inputs give the same writes on any machine.

Outcome of a transaction in a block:
- it does not decode, is over 32 KiB, has a body of the wrong shape or an unknown type, a bad
  signature, or the wrong nonce: `ok=False` and it changes nothing;
- its envelope, signatures and nonce are right but its rule refuses it (`not_owner`,
  `exclusive_held`, …): `ok=False`, it consumes its nonce (it can never be replayed) and
  changes nothing else — unless its signer has no account yet: then it writes nothing at all,
  so refused txs from fresh keys cannot grow the state (a replay is refused again, or is the
  signer's own signed intent);
- otherwise `ok=True` and its effects and nonce are applied.
Refusals are `TxRejected` exceptions (tx/reasons.py) inside; results carry their `code` and
message. `check_tx` runs the same path against the committed state and reports the same codes.

Validator changes (`gov validators.set` in block H) are written to `gov/validators` at H and
returned in `BlockResult.next_validators` as (H + 2, set): consensus uses them from height H+2.
An undecodable transaction has no txid of its own; its result carries H(raw bytes) instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ads_ledger.core.crypto import H
from ads_ledger.core.errors import DecodeError, RemoteError
from ads_ledger.state.account import apply_attest, bump_nonce
from ads_ledger.state.bodies import check_body
from ads_ledger.state.context import Ctx, DictView, Overlay, StateView
from ads_ledger.state.delegation import apply_grant, apply_revoke
from ads_ledger.state.envelope import MAX_TX_BYTES, Envelope, parse_envelope
from ads_ledger.state.governance import apply_gov
from ads_ledger.state.levers import begin_block
from ads_ledger.state.ownership import apply_accept, apply_claim, apply_propose, apply_transfer
from ads_ledger.state.reasons import BadNonce, BadSignature, Malformed, TooLarge, TxRejected
from ads_ledger.state.records import GOV_VALIDATORS, acct_key, short

__all__ = [
    "StateView",
    "DictView",
    "TxResult",
    "BlockResult",
    "check_tx",
    "execute_block",
    "tx_sign_bytes",
]

_log = logging.getLogger("ads_ledger.state.machine")

Rule = Callable[[Ctx, Envelope, bytes], None]
RULES: dict[str, Rule] = {
    "attest": apply_attest,
    "cp.propose": apply_propose,
    "cp.accept": apply_accept,
    "cp.claim": apply_claim,
    "cp.transfer": apply_transfer,
    "grant": apply_grant,
    "revoke": apply_revoke,
    "gov": apply_gov,
}


@dataclass(frozen=True, slots=True)
class TxResult:
    """Outcome of one transaction: `code` is "ok" or a stable reason (tx/reasons.py)."""

    txid: bytes
    ok: bool
    code: str
    log: str
    type: str = ""


@dataclass(slots=True)
class BlockResult:
    results: list[TxResult]
    writes: dict[bytes, bytes | None]
    next_validators: tuple[int, list[list[Any]]] | None = field(default=None)


def tx_sign_bytes(env: Envelope, chain_id: str) -> bytes:
    """The tx's sign bytes (cut from its raw bytes: see Envelope.sign_bytes)."""
    return env.sign_bytes(chain_id)


def _refused(ctx: Ctx, env: Envelope) -> None:
    """Drop a refused tx's effects; it consumes its nonce only if its signer has an account."""
    state = ctx.state
    state.rollback()
    if state.get(acct_key(env.signer)) is not None:
        bump_nonce(ctx, env.signer, env.nonce)
        state.commit()


def _run(ctx: Ctx, raw: bytes, verify_sigs: bool, env: Envelope | None = None,
         txid: bytes | None = None) -> TxResult:  # fmt: skip
    """Run one transaction on ctx.state, committing its effects (or only its nonce) or nothing.
    `env`: `raw` already parsed by the caller (the same bytes: parse_envelope(raw)); `txid`:
    given with `env` when the caller also hashed it and `check_body` passed on it."""
    if len(raw) > MAX_TX_BYTES:
        return TxResult(H(raw), False, TooLarge.code, f"transaction is {len(raw)} bytes; the limit is {MAX_TX_BYTES}")
    if env is None or (env.raw is not raw and env.raw != raw):  # a cached parse of equal bytes is fine
        try:
            env = parse_envelope(raw)
        except DecodeError as e:
            return TxResult(H(raw), False, Malformed.code, str(e))
        txid = None
    shaped = txid is not None
    if txid is None:
        txid = H(tx_sign_bytes(env, ctx.chain_id))
    try:
        if not shaped:
            check_body(env.type, env.body)
        if verify_sigs:
            try:
                env.verify_signatures(ctx.chain_id)
            except Exception as e:  # SignatureError: report it in the tx's own terms
                raise BadSignature(f"{e}; sign the tx for chain {ctx.chain_id!r}") from e
        expected = ctx.account(env.signer)["nonce"] + 1
        if env.nonce != expected:
            raise BadNonce(
                f"nonce {env.nonce} is not the next for account {short(env.signer)}; use {expected}"
            )
    except TxRejected as e:
        return TxResult(txid, False, e.code, e.message, env.type)
    state = ctx.state
    try:
        RULES[env.type](ctx, env, txid)
    except RemoteError as e:  # TxRejected, or a DecodeError of some nested value: the tx's fault
        _refused(ctx, env)
        code, log = (e.code, e.message) if isinstance(e, TxRejected) else (TxRejected.code, str(e))
        return TxResult(txid, False, code, log, env.type)
    except Exception as e:  # a bug of ours a tx can trigger: refuse it the same way everywhere
        _log.error("rule %s raised %s; the tx is refused (a bug to fix)", env.type,
                   type(e).__name__, exc_info=True)  # fmt: skip
        _refused(ctx, env)
        return TxResult(txid, False, "internal_error", f"{type(e).__name__} while applying "
                        f"{env.type}; report it to the node operators", env.type)  # fmt: skip
    bump_nonce(ctx, env.signer, env.nonce)
    state.commit()
    return TxResult(txid, True, "ok", "", env.type)


def check_tx(
    view: StateView,
    chain_id: str,
    raw: bytes,
    block_time: int,
    *,
    verify_sigs: bool = True,
    height: int = 0,
    env: Envelope | None = None,
) -> TxResult:
    """Would `raw` succeed on top of `view` at `block_time`? Nothing is written anywhere.

    The mempool calls this against the committed state (or an overlay of its own pending txs);
    `env` is `raw` already parsed, when the caller has it.
    """
    return _run(Ctx(chain_id, height, block_time, Overlay(view)), raw, verify_sigs, env)


def execute_block(
    view: StateView,
    chain_id: str,
    height: int,
    block_time: int,
    txs: Sequence[bytes],
    *,
    sigs_checked: bool = False,
    envs: Sequence[Envelope | None] | None = None,
    txids: Sequence[bytes | None] | None = None,
) -> BlockResult:
    """Run a block's transactions in order; return each result and the block's state writes.

    `sigs_checked=True` skips envelope signature checks (the caller verified them, e.g. in the
    mempool); stateful signatures (cp.claim's device_sig, attestations) are always checked.
    `envs[i]`, when given, is `txs[i]` already parsed (used only if its raw equals `txs[i]`);
    `txids[i]`, when given and not None, is its txid and says `check_body` passed on it.
    """
    overlay = Overlay(view)
    ctx = Ctx(chain_id, height, block_time, overlay)
    begin_block(ctx)  # regulator levers: expiry and suspension sweeps (levers.py)
    verify_sigs = not sigs_checked
    if envs is None or len(envs) != len(txs):
        results = [_run(ctx, raw, verify_sigs) for raw in txs]
    elif txids is None or len(txids) != len(txs):
        results = [_run(ctx, raw, verify_sigs, env) for raw, env in zip(txs, envs)]
    else:
        results = [_run(ctx, raw, verify_sigs, env, txid) for raw, env, txid in zip(txs, envs, txids)]
    writes = overlay.writes()
    nv = None
    if GOV_VALIDATORS in overlay.dirty:
        nv = (height + 2, overlay.cache[GOV_VALIDATORS])
    return BlockResult(results, writes, nv)
