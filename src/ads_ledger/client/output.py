"""Output for every CLI command (`ads`, `chargepoint-agent`): human lines by default, one JSON
document with `--json`.

Errors go to stderr with a hint of what to do next, and exit status 1 (2 for usage errors,
as click does); with `--json` an error is `{"error": {"code", "message"}}` on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")(f)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def emit(as_json: bool, data: dict[str, Any], human: str | Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(_plain(data), sort_keys=True))
    else:
        click.echo(human() if callable(human) else human)


def fail(as_json: bool, code: str, message: str, hint: str = "") -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message, "hint": hint}}))
    else:
        click.echo(f"error: {message}", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)
    sys.exit(1)
