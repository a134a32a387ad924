"""One composition: the actor tree is built in `homehelper/serve.py build_tree` only.

Tests and benchmarks get it through `build_tree` (with `serve.Overrides`), so they exercise the
wiring that runs in production. A function here that starts a Supervisor and two or more of the
tree's parts (its actors, the AppContext) is a hand-built copy of it; a test of one actor under a
supervisor is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.fixtures.common import REPO

# the tree's actors, and the AppContext that wires app actors to them
TREE_PARTS = frozenset({"Registry", "Scanner", "PortAllocator", "TTLClock", "StreamlitSlots", "EventLog", "SensorActor",
                        "RedisBridge", "Notifier", "Settings", "AppActor", "ServiceApp", "StreamlitApp", "AppContext"})
# Each with why it is not serve's tree. Keep this short: a new entry needs a reason a reviewer accepts.
ALLOWED = {
    "tests/bus/conftest.py::bridge_tree": "the Redis bridge and the event log alone, with a fast reconnect backoff",
}


def _called(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name is not None:
                names.add(name)
    return names


def hand_built_trees(root: Path, folders: tuple[str, ...] = ("tests", "benchmarks")) -> dict[str, list[str]]:
    """`path::function` -> the tree's parts it makes beside a Supervisor of its own."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            module = ast.parse(path.read_text(), str(path))
            for node in ast.walk(module):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    called = _called(node)
                    actors = sorted(called & TREE_PARTS)
                    if "Supervisor" in called and len(actors) >= 2:
                        found[f"{path.relative_to(root)}::{node.name}"] = actors
    return found


def test_no_hand_built_actor_tree_outside_serve() -> None:
    found = hand_built_trees(REPO)
    rogue = {k: v for k, v in found.items() if k not in ALLOWED}
    assert rogue == {}, "build the tree with homehelper.serve.build_tree (and serve.Overrides) instead"


def test_the_check_finds_a_hand_built_tree(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "async def build(n):\n"
        "    sup = Supervisor('root')\n"
        "    ports = sup.start_child(ChildSpec('ports', lambda: PortAllocator({}, None)))\n"
        "    sup.start_child(ChildSpec('registry', lambda: Registry(sup, None, None, None)))\n"
        "def one_actor():\n"
        "    sup = Supervisor('t')\n"
        "    sup.start_child(ChildSpec('ports', lambda: PortAllocator({}, None)))\n")
    assert hand_built_trees(tmp_path, ("tests",)) == {"tests/test_x.py::build": ["PortAllocator", "Registry"]}
