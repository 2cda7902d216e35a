"""Skipping verification with bisection (CometBFT light/client.go verifySkipping), sans-IO.

The driver never fetches: it names the height it needs, the shell fetches that light block from
its node and feeds it back with the current time, and the driver answers with the next height
or the verified target. A shell's whole loop:

    plan = Bisection(trusted, target, opts)
    h = plan.next_height()
    while h is not None:
        header, commit = node.commit(h)
        plan.feed(header, commit, node.validators(h), now_ms())
        h = plan.next_height()
    trusted = plan.result

With an unchanged validator set the target verifies directly (one fetch). When too little of
the trusted set signed it, the driver asks for the midpoint, verifies that, and retries the
held-back header from the new trust without fetching it again.
"""

from __future__ import annotations

from ads_ledger.core.types import Commit, Header, ValidatorSet
from ads_ledger.light.errors import InsufficientTrust, InvalidHeader, TooManySteps
from ads_ledger.light.trust import LightBlock, TrustedState, TrustOptions
from ads_ledger.light.verifier import verify_light_block

__all__ = ["DEFAULT_MAX_FETCHES", "Bisection"]

DEFAULT_MAX_FETCHES = 64  # log2 of any realistic distance, many times over


class Bisection:
    """Verify `target` from `trusted` by skipping and bisection; at most `max_fetches` fetches.

    `feed` raises the LightError of a block that does not verify (other than
    InsufficientTrust, which it answers by bisecting) and TooManySteps past the bound; the
    driver is then spent and the shell starts again from `trusted` with another node.
    """

    def __init__(self, trusted: TrustedState, target: int, opts: TrustOptions, *,
                 max_fetches: int = DEFAULT_MAX_FETCHES) -> None:  # fmt: skip
        if target < trusted.height:
            raise ValueError(f"target {target} is below the trusted height {trusted.height}; "
                             "backwards verification is not supported")  # fmt: skip
        self.opts = opts
        self.target = target
        self.max_fetches = max_fetches
        self.trusted = trusted  # the latest verified state, moves up as pivots verify
        self.verified: list[TrustedState] = []  # every state verified on the way, in order
        self.fetches = 0
        self._pending = [target] if target > trusted.height else []  # heights to verify, top last
        self._held: dict[int, LightBlock] = {}  # fetched, waiting for a pivot below to verify

    @property
    def result(self) -> TrustedState | None:
        """The verified target, once reached."""
        return None if self._pending else self.trusted

    def next_height(self) -> int | None:
        """The height to fetch next; None once the target is verified."""
        return self._pending[-1] if self._pending else None

    def feed(self, header: Header, commit: Commit, valset: ValidatorSet,
             now_ms: int) -> int | TrustedState:  # fmt: skip
        """Take the light block for `next_height()`; return the next height to fetch, or the
        verified target's state."""
        want = self.next_height()
        if want is None:
            raise ValueError("the bisection is done; nothing was asked for")  # the shell's bug
        if header.height != want:
            raise InvalidHeader(f"asked for height {want}, the node served {header.height}: "
                                "try another node")  # fmt: skip
        self.fetches += 1
        if self.fetches > self.max_fetches:
            raise TooManySteps(f"{self.max_fetches} fetches did not reach height {self.target} "
                               f"from {self.trusted.height}: try another node, or a trust root "
                               "closer to the target")  # fmt: skip
        self._held[want] = LightBlock(header, commit, valset)
        return self._advance(now_ms)

    def _advance(self, now_ms: int) -> int | TrustedState:
        while self._pending:
            h = self._pending[-1]
            block = self._held.get(h)
            if block is None:
                return h
            try:
                new = verify_light_block(self.trusted, block, now_ms, self.opts)
            except InsufficientTrust:
                # only skipping raises it, so h >= trusted + 2 and the midpoint lies strictly between
                self._pending.append(self.trusted.height + (h - self.trusted.height) // 2)
                continue
            self._pending.pop()
            del self._held[h]
            self.trusted = new
            self.verified.append(new)
        return self.trusted
