"""A chain of real signed headers for light-client tests, with a validator schedule.

Headers are built eagerly (hashing only); commits are signed lazily, per height asked for, so
a 1000-header chain costs only the signatures a test actually fetches. TEST-ONLY keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.core.types import PRECOMMIT, ZERO32, Commit, Header, ValidatorSet, Vote
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions

__all__ = ["BLOCK_MS", "CHAIN", "OPTS", "POOL", "T0", "Chain", "rotating", "sign_commit", "stable"]

CHAIN = "light-test"
POOL = [SigningKey(bytes([0x70 + i]) * 32) for i in range(24)]  # validators the schedules draw from
T0 = 1_700_000_000_000
BLOCK_MS = 1_000
OPTS = TrustOptions(trusting_period_ms=14 * 24 * 3600 * 1000)

Schedule = Callable[[int], Sequence[tuple[SigningKey, int]]]


def stable(keys: Sequence[SigningKey] = POOL[:4], power: int = 10) -> Schedule:
    return lambda h: [(k, power) for k in keys]


def rotating(every: int, size: int = 4) -> Schedule:
    """The set at height h is `size` pool keys, shifted by one every `every` heights."""
    return lambda h: [(POOL[(h // every + i) % len(POOL)], 10) for i in range(size)]


def sign_commit(header: Header, signers: Sequence[SigningKey], valset: ValidatorSet,
                chain_id: str = CHAIN, round_: int = 0) -> Commit:  # fmt: skip
    votes = [Vote(PRECOMMIT, header.height, round_, header.block_id(), k.pub).signed(chain_id, k)
             for k in signers]  # fmt: skip
    return Commit.from_votes(valset, votes)


class Chain:
    """Heights 1..n of one chain; `block(h)` is what an honest node serves for h."""

    def __init__(self, n: int, schedule: Schedule | None = None, *, chain_id: str = CHAIN,
                 t0: int = T0, seed: bytes = b"") -> None:  # fmt: skip
        self.schedule = schedule or stable()
        self.chain_id = chain_id
        self.headers: list[Header] = []
        self._commits: dict[int, Commit] = {}
        prev = ZERO32
        for h in range(1, n + 1):
            hdr = Header(
                chain_id=chain_id, height=h, time=t0 + h * BLOCK_MS, prev=prev,
                txs_root=H(seed + b"txs%d" % h), evidence_root=H(b""), state_root=H(seed + b"st%d" % h),
                validators=self.valset(h).hash(), next_validators=self.valset(h + 1).hash(),
                proposer=self.keys(h)[0].pub, last_commit=ZERO32 if h == 1 else H(b"lc%d" % h),
            )  # fmt: skip
            self.headers.append(hdr)
            prev = hdr.block_id()

    def keys(self, h: int) -> list[SigningKey]:
        return [k for k, _ in self.schedule(h)]

    def valset(self, h: int) -> ValidatorSet:
        return ValidatorSet(tuple((k.pub, p) for k, p in self.schedule(h)))

    def header(self, h: int) -> Header:
        return self.headers[h - 1]

    def commit(self, h: int) -> Commit:
        if h not in self._commits:
            self._commits[h] = sign_commit(self.header(h), self.keys(h), self.valset(h), self.chain_id)
        return self._commits[h]

    def block(self, h: int) -> LightBlock:
        return LightBlock(self.header(h), self.commit(h), self.valset(h))

    def trusted(self, h: int, *, with_next: bool = False) -> TrustedState:
        return TrustedState(self.header(h), self.valset(h), self.valset(h + 1) if with_next else None)

    def now(self, h: int) -> int:
        """A clock a second after header h."""
        return self.header(h).time + BLOCK_MS
