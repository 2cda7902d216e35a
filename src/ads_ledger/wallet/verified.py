"""Reads the wallet does not take on a node's word: a light client (ads_ledger.light) checks
that >2/3 of the validators it trusts signed the header, and the Merkle proof ties the value
(or its absence) to that header's state root (DESIGN §5, §6; docs/light-client.md).

The trusted state lives per chain in `trust_dir` (default $ADS_LIGHT_DIR or
$XDG_CONFIG_HOME/ads/light) and moves forward with each read. Its root is either a height and
block hash the user got out of band (`trust_height`/`trust_hash`, the strong way) or, on first
use, the node's block 1 (trust on first use; `Verified.first_use` says so). A node that lies
about anything raises `NotVerified`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ads_ledger.client.http import ApiResponseError, TransportError
from ads_ledger.core import codec
from ads_ledger.core.errors import DecodeError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Header
from ads_ledger.light.client import LightClient, genesis_root, trust_root
from ads_ledger.light.errors import ConflictingHeaders, InsufficientTrust, LightError
from ads_ledger.light.trust import LightBlock, TrustOptions
from ads_ledger.light.verify import verify_state
from ads_ledger.state.records import acct_key, cp_key
from ads_ledger.wallet.errors import NotVerified, WalletError
from ads_ledger.wallet.ledger import Ledger

__all__ = ["Verified", "Verifier", "default_trust_dir"]

TRUSTING_PERIOD_MS = 14 * 86_400_000


def default_trust_dir() -> Path:
    env = os.environ.get("ADS_LIGHT_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ads" / "light"


@dataclass(frozen=True)
class Verified:
    """A value proven at a verified header: `value` decoded (None: proven absent)."""

    key: bytes
    value: Any
    raw: bytes | None
    proof: SparseProof
    header: Header
    signers: int  # validators whose signatures the commit carries
    validators: int
    first_use: bool  # the trust root was taken on first use, not given

    @property
    def height(self) -> int:
        return self.header.height

    def to_json_obj(self) -> dict[str, Any]:
        return {"height": self.header.height, "block_id": self.header.block_id(), "time": self.header.time,
                "state_root": self.header.state_root, "signers": self.signers, "validators": self.validators,
                "value": self.raw, "proof": self.proof.to_obj(), "trust_on_first_use": self.first_use}  # fmt: skip


class Verifier:
    """`Verifier(ledger).record(cp)`. One trusted state per chain id, persisted after each read."""

    def __init__(self, ledger: Ledger, trust_dir: Path | None = None, *, trust_height: int | None = None,
                 trust_hash: bytes | None = None, opts: TrustOptions | None = None) -> None:  # fmt: skip
        if (trust_height is None) != (trust_hash is None):
            raise WalletError("give --trust-height and --trust-hash together")
        self.ledger = ledger
        self.dir = trust_dir or default_trust_dir()
        self.trust_height, self.trust_hash = trust_height, trust_hash
        self.opts = opts or TrustOptions(trusting_period_ms=TRUSTING_PERIOD_MS)
        self.first_use = False

    # ------------------------------------------------------------------ reads

    def record(self, cp: bytes) -> Verified:
        return self.state(cp_key(cp))

    def account(self, pub: bytes) -> Verified:
        return self.state(acct_key(pub))

    def state(self, key: bytes) -> Verified:
        return self.states([key])[0]

    def states(self, keys: list[bytes]) -> list[Verified]:
        """Each key's value proven at one verified header (the latest the node has)."""
        now = int(time.time() * 1000)
        out = []
        try:
            header, block = self._latest(now)
            for key in keys:
                h, raw, proof = self.ledger.call(lambda c: c.state(key, header.height))
                if h != header.height:
                    raise NotVerified(f"{self.ledger.node} answered for height {h}, not {header.height}")
                verify_state(header, key, raw, proof)
                value = None if raw is None else codec.decode(raw)
                out.append(Verified(key, value, raw, proof, header, len(block.commit.sigs), len(block.valset),
                                    self.first_use))  # fmt: skip
        except (LightError, DecodeError) as e:
            raise NotVerified(f"{self.ledger.node}: {e}") from e
        return out

    # ------------------------------------------------------------------ the light client

    def _path(self) -> Path:
        cid = self.ledger.chain_id
        return self.dir / (re.sub(r"[^A-Za-z0-9._-]", "_", cid)[:64] + ".trusted")

    def _block(self, height: int) -> LightBlock:
        header, commit = self.ledger.call(lambda c: c.commit(height))
        valset = self.ledger.call(lambda c: c.validators(height))
        return LightBlock(header, commit, valset)

    def _load(self, now: int) -> LightClient:
        p = self._path()
        if p.exists() and self.trust_hash is None:
            try:
                lc = LightClient.decode(p.read_bytes(), self.opts)
            except (DecodeError, OSError) as e:
                raise WalletError(f"{p} is damaged ({e})", code="trust_store",
                                  hint="delete it to trust the chain afresh, or pass --trust-height/--trust-hash") from e  # fmt: skip
            if lc.chain_id == self.ledger.chain_id and now < lc.expires_at():
                return lc
        chain = self.ledger.chain_id
        if self.trust_hash is not None:
            assert self.trust_height is not None
            b = self._block(self.trust_height)
            st = trust_root(self.trust_height, self.trust_hash, b.header, b.commit, b.valset, now, self.opts,
                            chain_id=chain)  # fmt: skip
        else:
            b = self._block(1)
            st = genesis_root(b.header, b.commit, b.valset, now, self.opts, chain_id=chain)
            self.first_use = True
        return LightClient(st, self.opts)

    def _latest(self, now: int) -> tuple[Header, LightBlock]:
        lc = self._load(now)
        target = self.ledger.height()
        if target < lc.height:
            raise NotVerified(f"{self.ledger.node} is at height {target}, behind the trusted {lc.height}")
        block = self._block(target)
        if target == lc.height:
            if block.header.block_id() != lc.trusted.header.block_id():
                raise NotVerified(f"{self.ledger.node} serves another block at the trusted height {target}")
            self._save(lc)
            return lc.trusted.header, block
        try:
            verified = lc.verify(block.header, block.commit, block.valset, now)
        except InsufficientTrust:
            plan = lc.bisect(target)
            h = plan.next_height()
            while h is not None:
                b = block if h == target else self._block(h)
                plan.feed(b.header, b.commit, b.valset, now)
                h = plan.next_height()
            verified = plan.result  # type: ignore[assignment]
        self._cross_check(block, lc, now)
        lc.adopt(verified)
        self._save(lc)
        return block.header, block

    def _cross_check(self, block: LightBlock, lc: LightClient, now: int) -> None:
        """Every other node given is a witness: a conflicting header stops the read."""
        for url in self.ledger.urls:
            if url == self.ledger.node:
                continue
            try:
                header, commit = self.ledger._client(url).commit(block.header.height)
                valset = self.ledger._client(url).validators(block.header.height)
                lc.check_witness(block, LightBlock(header, commit, valset), now)
            except ConflictingHeaders as e:
                raise NotVerified(f"{url} and {self.ledger.node} serve different blocks at height "
                                  f"{block.header.height}: one of them lies; report it") from e  # fmt: skip
            except (LightError, TransportError, ApiResponseError, DecodeError, OSError):
                continue  # an unreachable, behind or broken witness only weakens the check

    def _save(self, lc: LightClient) -> None:
        p = self._path()
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = p.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(lc.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
