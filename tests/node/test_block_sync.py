"""Block sync's bookkeeping (node/block_sync.py), driven with explicit heights and times."""

from __future__ import annotations

from ads_ledger.node.block_sync import (
    SYNC_BATCH,
    SYNC_DISTRUST_MAX_S,
    SYNC_DISTRUST_S,
    SYNC_MIN_PROGRESS,
    SYNC_STALL_TICKS,
    BlockSync,
    Distrusted,
)

STALL = SYNC_STALL_TICKS * 1.0  # the stall window at the default 1 s status interval


def test_an_honest_peer_ahead_is_asked_and_believed() -> None:
    s = BlockSync()
    assert s.want(10) is None  # nobody claims anything
    s.on_status("a", 500, now=0.0)
    assert s.want(10) == ("a", 11)
    s.asked("a", 11, ours=10, now=0.0)
    assert s.want(10) is None  # a batch is on its way
    # it delivers: after the stall window we moved on far enough, so nothing is held against it
    assert s.forget_unhelpful_peers(["a"], ours=10 + SYNC_MIN_PROGRESS, now=STALL) is None
    assert s.peer_heights == {"a": 500} and not s.distrust and s.watch is None
    # half way through the batch, the next one is asked, from where the last one ends
    ours = 10 + SYNC_BATCH // 2 + 1
    assert s.want(ours) == ("a", 11 + SYNC_BATCH)
    assert s.catching_up(ours)


def test_the_highest_claim_is_asked() -> None:
    s = BlockSync()
    for peer, h in (("a", 20), ("b", 90), ("c", 5)):
        s.on_status(peer, h, now=0.0)
    assert s.want(10) == ("b", 11)
    assert s.want(90) is None  # nobody is ahead


def test_a_lying_peer_is_distrusted_after_the_stall_window_for_longer_each_time() -> None:
    s = BlockSync()
    holds = []
    now = 0.0
    for _ in range(8):
        s.on_status("liar", 10_000, now=now)
        ask = s.want(5)
        assert ask == ("liar", 6)
        s.asked("liar", 6, ours=5, now=now)
        # within the window it is not judged
        assert s.forget_unhelpful_peers(["liar"], ours=5, now=now + STALL - 0.01) is None
        out = s.forget_unhelpful_peers(["liar"], ours=5, now=now + STALL)
        assert isinstance(out, Distrusted) and out.peer == "liar" and out.claimed == 10_000
        holds.append(out.seconds)
        assert s.want(5) is None and s.asked_to == 0 and s.peer is None
        # while distrusted its claims are ignored
        s.on_status("liar", 10_000, now=now + STALL + out.seconds - 0.01)
        assert s.want(5) is None and not s.catching_up(5)
        now = now + STALL + out.seconds  # the hold is over: it is believed again
    assert holds[:3] == [SYNC_DISTRUST_S, 2 * SYNC_DISTRUST_S, 4 * SYNC_DISTRUST_S]
    assert holds[-1] == SYNC_DISTRUST_MAX_S and holds == sorted(holds)


def test_a_peer_that_brings_us_to_its_claim_delivered() -> None:
    """Less than SYNC_MIN_PROGRESS heights ahead: reaching its claim is enough."""
    s = BlockSync()
    s.on_status("a", 13, now=0.0)
    s.asked("a", 11, ours=10, now=0.0)
    assert s.forget_unhelpful_peers(["a"], ours=13, now=STALL) is None
    s.on_status("a", 16, now=10.0)
    s.asked("a", 14, ours=13, now=10.0)
    assert s.forget_unhelpful_peers(["a"], ours=14, now=10.0 + STALL) == Distrusted("a", 16, SYNC_DISTRUST_S)


def test_disconnected_peers_are_forgotten_and_an_unreachable_one_dropped() -> None:
    s = BlockSync()
    s.on_status("a", 50, now=0.0)
    s.on_status("b", 60, now=0.0)
    s.forget_unhelpful_peers(["a"], ours=1, now=0.0)
    assert s.peer_heights == {"a": 50}
    s.unreachable("a")
    assert s.want(1) is None


def test_tick_asks_again_for_a_lost_batch() -> None:
    s = BlockSync()
    s.on_status("a", 500, now=0.0)
    s.asked("a", 11, ours=10, now=0.0)
    assert s.tick(10) is None  # on its way; but nothing arrived this interval: forget the ask
    assert s.asked_to == 0
    assert s.tick(10) == ("a", 11)
    s.asked("a", 11, ours=10, now=1.0)
    assert s.tick(10 + SYNC_BATCH) == ("a", 11 + SYNC_BATCH)  # the batch arrived: the next


def test_tick_does_not_ask_again_what_is_arriving() -> None:
    s = BlockSync()
    s.on_status("a", 5000, now=0.0)
    s.asked("a", 11, ours=10, now=0.0)
    s.asked("a", 11 + SYNC_BATCH, ours=10, now=0.1)  # pipelined: asked as the first batch arrives
    top = 10 + 2 * SYNC_BATCH
    assert s.tick(10 + SYNC_BATCH // 4) is None and s.asked_to == top  # blocks came: both on their way
    assert s.tick(10 + SYNC_BATCH // 4) is None and s.asked_to == 0  # none since: lost, forgotten
    assert s.tick(10 + SYNC_BATCH // 4) == ("a", 11 + SYNC_BATCH // 4)


def test_catching_up_uses_the_second_highest_claim() -> None:
    s = BlockSync()
    assert not s.catching_up(0)
    s.on_status("liar", 1_000_000, now=0.0)
    assert s.catching_up(10)  # one peer: its claim counts
    s.on_status("b", 11, now=0.0)
    assert not s.catching_up(10)  # two: the second highest (11 ≤ 10 + 1)
    s.on_status("c", 12, now=0.0)
    assert s.catching_up(10)
    assert not s.catching_up(11)


def test_a_peer_that_pruned_our_next_height_is_not_asked_nor_waited_for() -> None:
    s = BlockSync()
    s.on_status("pruned", 900, now=0.0, base=500)  # [storage] keep_blocks: serves from 500
    s.on_status("archive", 800, now=0.0)
    assert s.want(10) == ("archive", 11)  # the highest claim it can serve us from
    s.on_status("archive", 800, now=0.0, base=400)  # pruned too, meanwhile
    assert s.want(10) is None
    s.asked("pruned", 11, ours=10, now=0.0)  # asked before its status said so…
    s.on_status("pruned", 900, now=0.1, base=500)  # …its answer to get_blocks
    s.on_status("full", 700, now=0.1)
    assert s.want(10) == ("full", 11)  # asked of another at once, not after the stall window
    assert s.watch is None and not s.distrust
    assert s.want(499) == ("pruned", 500)  # from its base on, it serves
