"""The layers of DESIGN §2 hold: no module imports a layer above its own, and the light
client's packages load neither the node nor the server stack (checked in a fresh process)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# layer -> the ads_ledger layers its modules may import (besides itself)
ALLOWED = {
    "core": set(),
    "state": {"core"},
    "consensus": {"core"},
    "light": {"core"},
    "client": {"core", "light"},
    "wallet": {"core", "state", "light", "client"},
    "node": {"core", "state", "consensus", "light", "client"},
    "sim": {"core", "consensus"},
    "testing": {"core", "state", "consensus", "light", "client", "wallet", "node"},
    "cli": {"core", "state", "consensus", "light", "client", "wallet", "node", "sim", "testing"},
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "ads_ledger" or m.startswith("ads_ledger.")}


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for path in sorted((SRC / "ads_ledger").rglob("*.py")):
        rel = path.relative_to(SRC / "ads_ledger")
        if len(rel.parts) == 1:
            continue  # ads_ledger/__init__.py
        layer = rel.parts[0]
        assert layer in ALLOWED, f"{rel}: a package DESIGN §2 does not list"
        for mod in _imports(path):
            parts = mod.split(".")
            if len(parts) < 2:
                bad.append(f"{rel} imports the ads_ledger package itself")
            elif parts[1] != layer and parts[1] not in ALLOWED[layer]:
                bad.append(f"{rel} ({layer}) imports {mod}")
    assert not bad, "\n".join(bad)


def test_light_client_packages_load_no_node_and_no_server_stack() -> None:
    code = (
        "import sys, json\n"
        "import ads_ledger.core.codec, ads_ledger.core.types, ads_ledger.state.machine\n"
        "import ads_ledger.light.verify, ads_ledger.client, chargepoint_agent\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": ""})  # fmt: skip
    loaded = set(json.loads(out.stdout))
    assert "ads_ledger.client" in loaded  # the probe did run
    assert not [m for m in loaded if m.startswith("ads_ledger.node")]
    assert not [m for m in loaded if m.startswith("ads_ledger.consensus")]
    for heavy in ("trio", "h11", "lmdb"):
        assert heavy not in loaded, f"{heavy} is loaded by a light-client package"


def _runtime_imports(path: Path) -> set[str]:
    """ads_ledger modules `path` imports when it runs (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for t in ast.walk(tree) if isinstance(t, ast.If)
            and getattr(t.test, "id", "") == "TYPE_CHECKING" for b in t.body for n in ast.walk(b)}  # fmt: skip
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ads_ledger"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("ads_ledger"))
    return out


def test_no_import_cycles() -> None:
    mods: dict[str, Path] = {}
    for p in (SRC / "ads_ledger").rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {m: {d for d in _runtime_imports(p) if d in mods and d != m} for m, p in mods.items()}
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_the_agent_imports_only_the_light_layers() -> None:
    """DESIGN §2: the charge-point agent uses core, state records, light and client — never the
    node, consensus, the simulator or the test kit."""
    bad = []
    for path in sorted((SRC / "chargepoint_agent").rglob("*.py")):
        for mod in _imports(path):
            parts = mod.split(".")
            if len(parts) < 2 or parts[1] not in {"core", "state", "light", "client"}:
                bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert not bad, "\n".join(bad)
