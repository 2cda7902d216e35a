"""Keys and validator sets shared by the tests (one copy; importable from every test folder,
pyproject's `pythonpath = ["tests"]`). TEST-ONLY deterministic keys: seeds are public."""

from __future__ import annotations

from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import ValidatorSet

__all__ = ["KEYS", "valset"]

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]  # validators 0..3


def valset(powers: tuple[int, ...] = (10, 10, 10, 10)) -> ValidatorSet:
    """The set of KEYS[:len(powers)] with these powers."""
    return ValidatorSet(tuple((k.pub, p) for k, p in zip(KEYS, powers)))
