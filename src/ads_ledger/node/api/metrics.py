"""Prometheus text exposition (format 0.0.4) of `Metric` samples, for `GET /metrics`.

Pure rendering: one `# HELP` and one `# TYPE` line per metric name, then its samples, label
values and help text escaped as the format requires. Names were checked when each Metric was made.
"""

from __future__ import annotations

import math
from typing import Sequence

from ads_ledger.node.api.backend import Metric

__all__ = ["PROM_TEXT", "render_metrics"]

PROM_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_value(v: int | float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"  # str(True) is not a sample value
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def render_metrics(metrics: Sequence[Metric]) -> bytes:
    """Prometheus text exposition 0.0.4: one HELP/TYPE per name, samples grouped under it."""
    by_name: dict[str, list[Metric]] = {}
    for m in metrics:
        by_name.setdefault(m.name, []).append(m)
    lines: list[str] = []
    for name, ms in by_name.items():
        help_text = ms[0].help.replace("\\", "\\\\").replace("\n", "\\n")
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {ms[0].kind}"]
        for m in ms:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(m.labels.items()))
            lines.append(f"{name}{{{labels}}} {_fmt_value(m.value)}" if labels
                         else f"{name} {_fmt_value(m.value)}")  # fmt: skip
    return ("\n".join(lines) + "\n").encode()
