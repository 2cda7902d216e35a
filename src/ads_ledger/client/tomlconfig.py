"""Section-table config files (the node's and the agent's `config.toml`): write every key with
its comment, read back strictly — unknown sections or keys and wrong types are refused with the
file, the key and what it must be.

`sections` maps section -> toml key -> (dataclass field, comment); the dataclass's defaults
give each key's type.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["Sections", "render", "read", "apply"]

Sections = dict[str, dict[str, tuple[str, str]]]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to toml")


def render(cfg: Any, sections: Sections, header: str) -> str:
    """The file's text: `header`, then each section with each key's comment and value."""
    lines = [f"# {header}", ""]
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, (attr, comment) in keys.items():
            lines.append(f"# {comment}")
            lines.append(f"{key} = {_value(getattr(cfg, attr))}")
        lines.append("")
    return "\n".join(lines)


def read(path: Path, error: type[Exception], missing: str) -> dict[str, Any]:
    """The parsed file; `error` (with `missing` as the fix) when absent or not TOML."""
    if not path.exists():
        raise error(f"{path} does not exist; {missing}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: {e}") from e


def apply(cfg: Any, doc: dict[str, Any], sections: Sections, path: Path, error: type[Exception],
          skip: frozenset[str] = frozenset()) -> None:  # fmt: skip
    """Set `cfg`'s fields from `doc`, refusing anything unknown or mistyped; sections in `skip`
    are left for the caller."""
    defaults = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    for section, values in doc.items():
        if section in skip and isinstance(values, dict):
            continue
        if section not in sections or not isinstance(values, dict):
            raise error(f"{path}: unknown section [{section}]; known: {', '.join(sections)}")
        for key, v in values.items():
            if key not in sections[section]:
                raise error(f"{path}: unknown key {key!r} in [{section}]")
            attr = sections[section][key][0]
            want = type(defaults[attr])
            if not isinstance(v, want) or isinstance(v, bool) != (want is bool):
                raise error(f"{path}: [{section}] {key} must be a {want.__name__}")
            setattr(cfg, attr, v)
