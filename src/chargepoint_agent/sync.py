"""Access-list sync: move the light client forward and re-read this charge point's record,
proven against a verified header (DESIGN §5, §8; docs/light-client.md).

`AclSync.refresh(now_ms)` is one round, blocking (the service runs it in a worker thread):

1. the primary's latest height H, its signed header and validator set at H, the record and
   gov/params with proofs — one round trip (`GET /light/{cp}`);
2. the light client verifies it from the trusted state (skipping; bisecting when the set
   changed too much), and each witness is asked for its header at H: a different block id is
   a `Divergence` — trust stops (`halted`), both headers are kept as evidence, the last
   verified access list stays in force;
3. the `cp/` record and `gov/params` at H checked with their proofs against H's state root;
4. the trusted state and the access list are persisted (LMDB) before they are used.

Anything a node serves that does not verify raises a LightError or a SyncError and changes
nothing; the shell tries the next node as primary. Nothing here trusts a node's word alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ads_ledger.client.http import ApiResponseError, NodeClient, TransportError
from ads_ledger.core import codec
from ads_ledger.core.errors import AdsError, DecodeError
from ads_ledger.core.merkle import SparseProof
from ads_ledger.core.types import Commit, Header, ValidatorSet
from ads_ledger.light.client import LightClient, genesis_root, trust_root
from ads_ledger.light.detector import Divergence
from ads_ledger.light.errors import ConflictingHeaders, InsufficientTrust, InvalidHeader, LightError
from ads_ledger.light.trust import LightBlock, TrustOptions
from ads_ledger.light.verify import verify_state
from ads_ledger.state.records import DEFAULT_PARAMS, GOV_PARAMS, cp_key
from chargepoint_agent.store import AgentStore
from chargepoint_agent.verify import AccessList

__all__ = ["AclSync", "SyncError", "SyncReport"]


class SyncError(AdsError):
    """A node could not be read, or served something malformed; try another node."""


@dataclass(frozen=True, slots=True)
class SyncReport:
    height: int
    header_time_ms: int
    changed: bool  # the access list differs from the one before
    fetches: int  # headers fetched (1 unless bisecting)


class _Node:
    """One node's answers as light-client inputs; transport and shape failures → SyncError."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.c = NodeClient(url, timeout_s=timeout_s)

    def close(self) -> None:
        self.c.close()

    def latest(self) -> int:
        h = self._call(lambda: self.c.status()["latest_height"])
        if type(h) is not int or h < 1:
            raise SyncError(f"{self.url} reports no committed block yet")
        return h

    def block(self, height: int) -> LightBlock:
        header, commit = self._call(lambda: self.c.commit(height))
        valset = self._call(lambda: self.c.validators(height))
        return LightBlock(header, commit, valset)

    def light_bundle(self, cp: bytes, height: int | None = None) -> tuple[LightBlock, Any, Any] | None:
        """GET /light/{cp} parsed into typed parts (None: the node does not serve it)."""
        try:
            b = self.c.light(cp, height)
        except ApiResponseError as e:
            if e.status in (404, 406) and e.code in ("not_found", "not_acceptable"):
                return None
            raise SyncError(f"{self.url}: {e}") from e
        except (TransportError, OSError) as e:
            raise SyncError(f"{self.url}: {e}") from e
        try:
            block = LightBlock(Header.from_obj(b["header"]), Commit.from_obj(b["commit"]),
                               ValidatorSet.from_obj(b["validators"]))  # fmt: skip
            if b["record"] is None or b["params"] is None:  # state pruned at that height
                if height is None:
                    raise SyncError(f"{self.url}: no state at its latest height")
                return block, None, None
            rec = (b["record"]["value"], SparseProof.from_obj(b["record"]["proof"]))
            par = (b["params"]["value"], SparseProof.from_obj(b["params"]["proof"]))
        except (DecodeError, KeyError, TypeError, ValueError) as e:
            raise SyncError(f"{self.url}: a malformed light bundle: {e}") from e
        if block.header.height != b.get("height") or any(v is not None and type(v) is not bytes for v in (rec[0], par[0])):
            raise SyncError(f"{self.url}: a malformed light bundle")
        return block, rec, par

    def record(self, key: bytes, height: int) -> tuple[bytes | None, SparseProof]:
        h, value, proof = self._call(lambda: self.c.state(key, height))
        if h != height:
            raise SyncError(f"{self.url} answered for height {h}, not {height}")
        return value, proof

    def _call(self, f: Any) -> Any:
        try:
            return f()
        except (TransportError, ApiResponseError, DecodeError, OSError, KeyError, TypeError, ValueError) as e:
            raise SyncError(f"{self.url}: {e}") from e


class AclSync:
    """The light client, the verified access list of charge point `cp`, and the witnesses."""

    def __init__(self, *, cp: bytes, chain_id: str, nodes: Sequence[str], store: AgentStore, opts: TrustOptions,
                 trust_height: int, trust_hash: bytes | None, staleness_override_ms: int = 0,
                 timeout_s: float = 5.0) -> None:  # fmt: skip
        self.cp, self.chain_id, self.store, self.opts = cp, chain_id, store, opts
        self.nodes = [_Node(u, timeout_s) for u in nodes]
        self.primary = 0
        self.trust_height, self.trust_hash = trust_height, trust_hash
        self.staleness_override_ms = staleness_override_ms
        self.light: LightClient | None = None
        self.acl: AccessList | None = None
        self.divergence: Divergence | None = None
        self.reported: list[str] = []  # witnesses dropped for serving invalid headers, and why
        raw = store.get_meta("light")
        if raw is not None:
            self.light = LightClient.decode(raw, opts)
        raw_acl = store.get_meta("acl")
        if raw_acl is not None:
            self.acl = _acl_from(codec.decode(raw_acl))
        raw_div = store.get_meta("divergence")
        if raw_div is not None:
            self.divergence = Divergence.decode(raw_div)

    @property
    def halted(self) -> bool:
        """A witness contradicted the primary: trust stops until an operator resolves it."""
        return self.divergence is not None

    @property
    def trusted_height(self) -> int:
        return 0 if self.light is None else self.light.height

    def close(self) -> None:
        for n in self.nodes:
            n.close()

    # ------------------------------------------------------------------ one round

    def refresh(self, now_ms: int) -> SyncReport:
        """Verify the primary's latest header and this charge point's record at it (see above)."""
        if self.halted:
            raise SyncError("halted: a witness served a conflicting header (see GET /status); "
                            "the last verified access list stays in force")  # fmt: skip
        node = self.nodes[self.primary]
        if self.light is None:
            self._init_trust(node, now_ms)
        assert self.light is not None
        fetches = 1
        bundle = node.light_bundle(self.cp)  # one round trip: header, set, record, params
        if bundle is not None:
            block, (value, proof), (pvalue, pproof) = bundle
            height = block.header.height
        else:  # a node without GET /light: the same parts, one request each
            height = node.latest()
            block = node.block(height) if height > self.light.height else None
            value = proof = pvalue = pproof = None
        if height < self.light.height:
            raise SyncError(f"{node.url} is at height {height}, behind the trusted {self.light.height}")
        if height > self.light.height:
            assert block is not None
            try:
                verified = self.light.verify(block.header, block.commit, block.valset, now_ms)
            except InsufficientTrust:
                plan = self.light.bisect(height)
                nxt = plan.next_height()
                result = None
                while nxt is not None:
                    b = node.block(nxt)
                    fetches += 1
                    got = plan.feed(b.header, b.commit, b.valset, now_ms)
                    if not isinstance(got, int):
                        result = got
                        break
                    nxt = got
                if result is None:
                    raise SyncError(f"bisection to {height} did not finish") from None
                verified = result
            self._check_witnesses(block, now_ms)
            header = block.header
        else:
            header = self.light.trusted.header
            if block is not None and block.header.block_id() != header.block_id():
                raise InvalidHeader(f"{node.url} serves another block at the trusted height {height}: "
                                    "try another node")  # fmt: skip
            verified = None
        if bundle is None:
            value, proof = node.record(cp_key(self.cp), header.height)
            pvalue, pproof = node.record(GOV_PARAMS, header.height)
        verify_state(header, cp_key(self.cp), value, proof)  # LightError if the node lied
        verify_state(header, GOV_PARAMS, pvalue, pproof)
        params = DEFAULT_PARAMS if pvalue is None else {**DEFAULT_PARAMS, **codec.decode(pvalue)}  # type: ignore[dict-item]
        limit = self.staleness_override_ms or int(params["staleness_limit_ms"])
        rec = None if value is None else codec.decode(value)
        acl = AccessList(
            owner=None if rec is None else rec["owner"],  # type: ignore[index]
            grants=() if rec is None else tuple(rec["grants"]),  # type: ignore[index]
            height=header.height,
            header_time_ms=header.time,
            staleness_limit_ms=limit,
        )
        if verified is not None:
            self.light.adopt(verified)
            self.store.put_meta("light", self.light.encode())
        changed = self.acl is None or (self.acl.owner, self.acl.grants) != (acl.owner, acl.grants)
        self.store.put_meta("acl", codec.encode(_acl_obj(acl)))
        self.acl = acl
        return SyncReport(header.height, header.time, changed, fetches)

    def rotate(self) -> None:
        """Make the next node the primary (after the current one failed or lied)."""
        self.primary = (self.primary + 1) % len(self.nodes)

    def _init_trust(self, node: _Node, now_ms: int) -> None:
        bundle = node.light_bundle(self.cp, self.trust_height)  # one round trip where served
        block = bundle[0] if bundle is not None else node.block(self.trust_height)
        if self.trust_hash is not None:
            st = trust_root(self.trust_height, self.trust_hash, block.header, block.commit, block.valset, now_ms,
                            self.opts, chain_id=self.chain_id)  # fmt: skip
        else:
            st = genesis_root(block.header, block.commit, block.valset, now_ms, self.opts, chain_id=self.chain_id)
        self.light = LightClient(st, self.opts)
        self.store.put_meta("light", self.light.encode())

    def _check_witnesses(self, primary: LightBlock, now_ms: int) -> None:
        assert self.light is not None
        for i, w in enumerate(self.nodes):
            if i == self.primary:
                continue
            try:
                wb = w.block(primary.header.height)
                self.light.check_witness(primary, wb, now_ms)
            except ConflictingHeaders as e:
                self.divergence = Divergence.of(e)
                self.store.put_meta("divergence", self.divergence.encode())
                raise SyncError(f"witness {w.url} serves another block at height {primary.header.height} "
                                f"than {self.nodes[self.primary].url}: trust stops; both headers are "
                                "kept as evidence") from e  # fmt: skip
            except (LightError, SyncError) as e:  # an invalid or unreachable witness: noted, not fatal
                self.reported.append(f"witness {w.url}: {e}")
                del self.reported[:-16]


def _acl_obj(acl: AccessList) -> dict[str, Any]:
    return {"grants": list(acl.grants), "header_time": acl.header_time_ms, "height": acl.height,
            "owner": acl.owner, "staleness_limit_ms": acl.staleness_limit_ms}  # fmt: skip


def _acl_from(obj: Any) -> AccessList:
    return AccessList(owner=obj["owner"], grants=tuple(obj["grants"]), height=obj["height"],
                      header_time_ms=obj["header_time"], staleness_limit_ms=obj["staleness_limit_ms"])  # fmt: skip

