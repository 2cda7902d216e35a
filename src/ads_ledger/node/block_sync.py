"""Block sync's bookkeeping, sans-IO: which peer claims which height, what we asked of whom,
and which peers' claims we no longer believe.

The daemon feeds it peers' `status` messages and the times (`now`, monotonic seconds) and asks
it what to request (`want`); it sends `get_blocks` itself and reports the outcome (`asked`,
`unreachable`). A peer asked for blocks must deliver: within SYNC_STALL_TICKS status intervals
our height must move on by SYNC_MIN_PROGRESS (or to its claim), else its claims are ignored for
SYNC_DISTRUST_S, doubling at each further strike up to SYNC_DISTRUST_MAX_S. A peer whose bodies
below some height are pruned says so in its status (`base`, the lowest height it serves) and
is asked only for heights from there; one that answers a request with such a status is no
longer waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

__all__ = [
    "BlockSync",
    "Distrusted",
    "SYNC_STALL_TICKS",
    "SYNC_DISTRUST_S",
    "SYNC_DISTRUST_MAX_S",
    "SYNC_MIN_PROGRESS",
    "SYNC_BATCH",
    "STATUS_INTERVAL",
]

SYNC_STALL_TICKS = 3  # status intervals without a block while a sync batch is asked
SYNC_DISTRUST_S = 10.0  # …after which that peer's height claims are ignored this long,
SYNC_DISTRUST_MAX_S = 600.0  # …doubling at each further strike up to this
SYNC_MIN_PROGRESS = 8  # heights a sync batch must move us on by (consensus alone: ~1/s)
SYNC_BATCH = 64  # blocks asked of one peer at a time (the next batch is asked half way through)
STATUS_INTERVAL = 1.0  # seconds between our height announcements


@dataclass(frozen=True, slots=True)
class Distrusted:
    """A peer that did not deliver the blocks it claimed: its claims are ignored `seconds`."""

    peer: str
    claimed: int
    seconds: float


class BlockSync:
    """Peer heights and the sync request in flight; every method is given our height and/or
    `now` (monotonic seconds), so tests drive it with explicit values."""

    def __init__(self, status_interval: float = STATUS_INTERVAL) -> None:
        self.status_interval = status_interval
        self.peer_heights: dict[str, int] = {}
        self.peer_bases: dict[str, int] = {}  # peer → lowest height it serves, when above 1
        self.asked_to: int = 0  # highest height requested by block sync
        self.peer: str | None = None  # …and of whom
        self.ticked_at: int = 0  # our height at the last tick (or at an ask made while idle)
        self.distrust: dict[str, float] = {}  # peer → monotonic time until its heights are ignored
        self.strikes: dict[str, int] = {}  # peer → times it failed to deliver claimed blocks
        # (peer, when asked, our height then, its claimed height): judged after the stall window
        self.watch: tuple[str, float, int, int] | None = None

    def on_status(self, peer: str, height: int, now: float, base: int = 1) -> None:
        """A peer's `status` claim (`base`: the lowest height it serves); ignored while the
        peer is distrusted."""
        if self.distrust.get(peer, 0.0) <= now:
            self.peer_heights[peer] = height
            if base > 1:
                self.peer_bases[peer] = base
            else:
                self.peer_bases.pop(peer, None)

    def want(self, ours: int) -> tuple[str, int] | None:
        """(peer, from height) when a peer is ahead of us and nothing is asked already."""
        if self.peer is not None and self.peer_bases.get(self.peer, 1) > ours + 1:
            # the peer asked cannot serve our next height (pruned): not a failure to deliver
            self.asked_to, self.peer, self.watch = 0, None, None
        usable = {p: h for p, h in self.peer_heights.items() if self.peer_bases.get(p, 1) <= ours + 1}
        if not usable:
            return None
        peer, top = max(usable.items(), key=lambda kv_: kv_[1])
        if top <= ours:
            return None
        if self.asked_to > ours + SYNC_BATCH // 2:
            return None  # a batch is on its way
        if self.asked_to > ours:  # asking ahead: only of the peer serving this batch, so another
            # peer's answer starts at our next height (checked and counted, not left past a gap)
            if self.peer is None or usable.get(self.peer, 0) <= self.asked_to:
                return None
            peer = self.peer
        return peer, max(ours + 1, self.asked_to + 1)

    def asked(self, peer: str, start: int, ours: int, now: float) -> None:
        """We sent `get_blocks` {from: start, count: SYNC_BATCH} to `peer`."""
        if not self.asked_to:
            self.ticked_at = ours  # progress is judged from here at the next tick
        self.asked_to = start + SYNC_BATCH - 1
        self.peer = peer
        if self.watch is None or self.watch[0] != peer:
            claimed = self.peer_heights.get(peer, start)
            self.watch = (peer, now, ours, claimed)

    def unreachable(self, peer: str) -> None:
        """The request could not be sent (gone, or its queue is full): its claim must not keep
        us from asking others."""
        self.peer_heights.pop(peer, None)

    def tick(self, ours: int) -> tuple[str, int] | None:
        """Each status interval: what to ask now, if anything (a lost batch is asked again:
        one asked for but not a block since the last tick; while blocks arrive, the batches
        asked ahead of them are not asked twice)."""
        if self.asked_to and self.asked_to <= ours:
            self.asked_to = 0
        ask = self.want(ours)
        if ask is None and self.asked_to and self.asked_to > ours and ours <= self.ticked_at:
            self.asked_to = 0  # a lost batch: ask again next time
        self.ticked_at = ours
        return ask

    def forget_unhelpful_peers(self, connected: Iterable[str], ours: int, now: float) -> Distrusted | None:
        """Heights of disconnected peers are forgotten. A peer we asked for blocks must have
        moved us on, within SYNC_STALL_TICKS status intervals, by SYNC_MIN_PROGRESS heights (or
        to its claimed height): consensus alone moves a live node ~1 height/s, sync ~hundreds.
        Otherwise its height is ignored, for longer each time (one lying status must neither
        stall block sync nor keep a live validator saying it is catching up); returned so."""
        conn = set(connected)
        for pid in [p for p in self.peer_heights if p not in conn]:
            del self.peer_heights[pid]
        for pid in [p for p in self.peer_bases if p not in conn]:
            del self.peer_bases[pid]
        watch = self.watch
        if watch is None or now - watch[1] < SYNC_STALL_TICKS * self.status_interval:
            return None
        self.watch = None
        peer, _, base, claimed = watch
        if ours - base >= min(SYNC_MIN_PROGRESS, claimed - base):
            return None  # it delivered
        strikes = self.strikes[peer] = self.strikes.get(peer, 0) + 1
        hold = min(SYNC_DISTRUST_S * 2 ** (strikes - 1), SYNC_DISTRUST_MAX_S)
        self.peer_heights.pop(peer, None)
        self.distrust[peer] = now + hold
        if self.peer == peer:
            self.asked_to, self.peer = 0, None
        return Distrusted(peer, claimed, hold)

    def catching_up(self, ours: int) -> bool:
        """Connected, believed peers only; with two or more, the second highest claim, so that
        one lying peer cannot make a live node say it is catching up."""
        claims = sorted(self.peer_heights.values(), reverse=True)
        top = claims[1] if len(claims) >= 2 else (claims[0] if claims else 0)
        return top > ours + 1
