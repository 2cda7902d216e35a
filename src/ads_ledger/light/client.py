"""The light client's state object: a trust root, the trusted state it moves forward, and the
options it verifies with. Sans-IO: headers come in as arguments, the time as `now_ms`.

Trust roots:
- `trust_root(height, hash, ...)`: a header whose block id the operator obtained out of band
  (a block explorer, another operator, the provider's docs). The strong way.
- `genesis_root(...)`: whatever the first node serves as height 1, checked only against
  itself (trust on first use). Weaker: a lying first node decides the chain; and once the chain
  is older than the trusting period it cannot vouch for anything any more.
"""

from __future__ import annotations

from ads_ledger.core.errors import DecodeError
from ads_ledger.core.types import ZERO32, Commit, Header, ValidatorSet
from ads_ledger.light.bisection import DEFAULT_MAX_FETCHES, Bisection
from ads_ledger.light.detector import check_witness
from ads_ledger.light.errors import InvalidHeader, NotWithinTrustPeriod
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions
from ads_ledger.light.verifier import check_signed_header, verify_light_block

__all__ = ["LightClient", "genesis_root", "trust_root"]


def _root(header: Header, commit: Commit, valset: ValidatorSet, now_ms: int, opts: TrustOptions,
          next_valset: ValidatorSet | None, chain_id: str | None) -> TrustedState:  # fmt: skip
    check_signed_header(chain_id or header.chain_id, header, commit, valset)
    if now_ms >= header.time + opts.trusting_period_ms:
        raise NotWithinTrustPeriod(
            f"the trust root at height {header.height} is older than the trusting period "
            f"({opts.trusting_period_ms} ms): take a recent height and hash as trust root"
        )
    try:
        return TrustedState(header, valset, next_valset)
    except DecodeError as e:
        raise InvalidHeader(f"{e}: try another node") from e


def trust_root(height: int, block_hash: bytes, header: Header, commit: Commit, valset: ValidatorSet,
               now_ms: int, opts: TrustOptions, *, next_valset: ValidatorSet | None = None,
               chain_id: str | None = None) -> TrustedState:  # fmt: skip
    """Trust `header` because its block id is `block_hash`, known out of band, and >2/3 of its
    own set signed it; raise InvalidHeader/InvalidCommit/NotWithinTrustPeriod otherwise."""
    if header.height != height:
        raise InvalidHeader(f"asked for the trust root at height {height}, the node served "
                            f"{header.height}: try another node")  # fmt: skip
    if header.block_id() != block_hash:
        raise InvalidHeader(f"the header at height {height} has block id {header.block_id().hex()}, "
                            f"not the trusted {block_hash.hex()}: the node serves another chain, "
                            "or the trust hash is wrong; check it and try another node")  # fmt: skip
    return _root(header, commit, valset, now_ms, opts, next_valset, chain_id)


def genesis_root(header: Header, commit: Commit, valset: ValidatorSet, now_ms: int,
                 opts: TrustOptions, *, next_valset: ValidatorSet | None = None,
                 chain_id: str | None = None) -> TrustedState:  # fmt: skip
    """Trust the height-1 header a node serves (trust on first use; see the module docstring)."""
    if header.height != 1 or header.prev != ZERO32:
        raise InvalidHeader(f"a genesis trust root is height 1 with no previous block, not height "
                            f"{header.height}: try another node")  # fmt: skip
    return _root(header, commit, valset, now_ms, opts, next_valset, chain_id)


class LightClient:
    """Holds the trusted state and moves it forward only over verified headers.

    Methods raise a LightError and leave the trusted state unchanged when a header does not
    verify. `encode()` is what an agent persists; `decode()` restores it.
    """

    def __init__(self, trusted: TrustedState, opts: TrustOptions) -> None:
        self.trusted = trusted
        self.opts = opts

    @property
    def height(self) -> int:
        return self.trusted.height

    @property
    def chain_id(self) -> str:
        return self.trusted.chain_id

    def expires_at(self) -> int:
        """When the trusted header stops vouching: update before then, or re-initialise after."""
        return self.trusted.expires_at(self.opts)

    def verify(self, header: Header, commit: Commit, valset: ValidatorSet, now_ms: int) -> TrustedState:
        """Verify one later header directly (adjacent or skipping rules) without trusting it yet.

        InsufficientTrust means it is too far: use `bisect` instead.
        """
        return verify_light_block(self.trusted, LightBlock(header, commit, valset), now_ms, self.opts)

    def update(self, header: Header, commit: Commit, valset: ValidatorSet, now_ms: int) -> TrustedState:
        """`verify`, then trust the header."""
        return self.adopt(self.verify(header, commit, valset, now_ms))

    def bisect(self, target: int, *, max_fetches: int = DEFAULT_MAX_FETCHES) -> Bisection:
        """A sans-IO plan to reach `target`; hand it to `adopt` when done."""
        return Bisection(self.trusted, target, self.opts, max_fetches=max_fetches)

    def adopt(self, verified: TrustedState | Bisection) -> TrustedState:
        """Trust a state verified from this client's (directly, or by a finished plan)."""
        got = verified.result if isinstance(verified, Bisection) else verified
        if got is None:
            raise ValueError("the bisection has not reached its target")  # the shell's bug
        if got.chain_id != self.chain_id or got.height < self.height:
            raise ValueError("the verified state does not extend this client's")  # the shell's bug
        self.trusted = got
        return got

    def check_witness(self, primary: LightBlock, witness: LightBlock, now_ms: int) -> None:
        """Raise ConflictingHeaders if `witness` serves another block than the verified
        `primary` at its height. Call it before `update`/`adopt` trusts `primary`, while the
        trusted state is still their common ancestor; see `detector.check_witness`."""
        check_witness(self.trusted, primary, witness, now_ms, self.opts)

    def encode(self) -> bytes:
        """The trusted state as canonical msgpack (options are configuration, not state)."""
        return self.trusted.encode()

    @classmethod
    def decode(cls, data: bytes, opts: TrustOptions) -> LightClient:
        """Raise DecodeError on anything but bytes `encode()` produced."""
        return cls(TrustedState.decode(data), opts)
