"""Where a test may make a node misbehave: the hooks the daemon calls, all no-ops here.

An honest node runs `FaultHooks()`. The TEST-ONLY Byzantine kit (`ads_ledger.testing.byzantine`)
subclasses it; the `ads` CLI hands the daemon a factory for it only when `--byzantine` is
given, so the daemon never imports test code.
"""

from __future__ import annotations

from ads_ledger.consensus.messages import Message

__all__ = ["FaultHooks"]


class FaultHooks:
    """The honest node: every hook does nothing."""

    def on_send(self, msg: Message) -> bool:
        """A consensus message the node is about to broadcast; True: the hooks handled it."""
        return False

    def on_submit(self, raw: bytes) -> None:
        """A transaction posted to our API (before the honest admission checks)."""

    async def serve_blocks(self, peer: str, start: int, count: int) -> bool:
        """A peer's `get_blocks`; True: the hooks answered it."""
        return False

    def status_height(self, height: int) -> int:
        """The height we announce in `status`."""
        return height

    async def run(self) -> None:
        """Background work, in the node's nursery."""
