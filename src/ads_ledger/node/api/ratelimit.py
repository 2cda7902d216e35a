"""Per-client token buckets for `POST /txs` (sans-IO: the caller passes `now` in seconds).

Each client address owns a bucket of `burst` tokens refilled at `rate` per second; a request
takes one token or is refused with the seconds until one is back (the Retry-After). The table
holds at most `max_clients` buckets, least recently used dropped first: a dropped client comes
back with a full bucket, which is what a new client gets anyway, so many addresses cost bounded
memory and gain no more than the same number of fresh clients would. IPv6 clients are keyed by
their /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["ClientRateLimiter", "client_key"]


@functools.lru_cache(maxsize=4096)  # parsed once per address, not on every POST
def client_key(address: str) -> str:
    """The bucket an address draws from: itself for IPv4 (and non-IP names), its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class ClientRateLimiter:
    """Token buckets per client; `rate` 0 turns the limit off."""

    rate: float
    burst: float
    max_clients: int = 10_000
    limited: int = 0  # requests refused, ever
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1 or self.max_clients < 1:
            raise ValueError("rate must be ≥ 0, burst ≥ 1 and max_clients ≥ 1")

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens from `client`'s bucket at time `now`. Returns 0.0 if allowed, else
        the seconds until the bucket holds `cost` again (nothing is taken then)."""
        if self.rate == 0:
            return 0.0
        key = client_key(client)
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
            self.limited += 1
        self._buckets[key] = (tokens, now)  # most recently used last
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> int:
        """The Retry-After header's whole seconds for a wait (at least 1)."""
        return max(1, math.ceil(wait))
