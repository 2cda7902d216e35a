"""Strict parsing of the units people type: power, durations, dates. Every error names the
accepted forms (the wallet's promise: an unparseable `--for 3x` says what would parse).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ads_ledger.wallet.errors import WalletError

__all__ = ["parse_power", "parse_duration", "parse_when", "format_power", "format_when"]

_POWER = re.compile(r"^(\d{1,9}(?:\.\d{1,3})?)\s*(W|kW|MW)?$", re.I)
_DURATION = re.compile(r"^(\d{1,6}(?:\.\d{1,3})?)\s*(s|m|min|h|d|w)?$", re.I)
_DUR_MS = {"s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_POW_W = {"w": 1, "kw": 1000, "mw": 1_000_000}


def parse_power(s: str) -> int:
    """'11kW' → 11000 (watts, an integer ≥ 1)."""
    m = _POWER.match(s.strip())
    if not m:
        raise WalletError(f"{s!r} is not a power; write e.g. 7400, 7400W, 7.4kW or 1.2MW")
    w = round(float(m.group(1)) * _POW_W[(m.group(2) or "w").lower()])
    if w < 1:
        raise WalletError(f"{s!r} is not a positive power; write e.g. 7400W or 7.4kW")
    return w


def parse_duration(s: str) -> int:
    """'30d' → milliseconds. Units s, m/min, h, d, w; a bare number is seconds."""
    m = _DURATION.match(s.strip())
    if not m:
        raise WalletError(f"{s!r} is not a duration; write e.g. 90s, 15m, 2h, 30d or 1w")
    ms = round(float(m.group(1)) * _DUR_MS[(m.group(2) or "s").lower()])
    if ms < 1000:
        raise WalletError(f"{s!r} is shorter than a second; write e.g. 90s, 15m, 2h, 30d")
    return ms


def parse_when(s: str, now_ms: int) -> int:
    """'now', '2027-01-01' (midnight UTC), '2027-01-01T08:00' or '…T08:00:00+01:00' → ms."""
    t = s.strip()
    if t.lower() == "now":
        return now_ms
    try:
        if not re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?$", t):
            raise ValueError(t)
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise WalletError(f"{s!r} is not a date; write now, 2027-01-01, 2027-01-01T08:00 "
                          "or 2027-01-01T08:00+01:00 (UTC unless an offset is given)") from None  # fmt: skip
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def format_power(w: int) -> str:
    return f"{w / 1000:g} kW" if w >= 1000 else f"{w} W"


def format_when(ms: int) -> str:
    """UTC, to the minute (seconds when they are not zero)."""
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S UTC" if d.second else "%Y-%m-%d %H:%M UTC")
