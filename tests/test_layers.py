"""The package's layers: no module imports from a layer above its own.

Every module under homehelper/ is parsed (not imported), each `import` and
`from ... import` resolved to the module it names, and both ends mapped to a
layer by the longest matching prefix in LAYERS. Imports inside
`if TYPE_CHECKING:` are exempt: they never run, so they cannot make a cycle or
pull a higher layer in at run time. docs/CONTRIBUTING.md shows the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import homehelper

ROOT = Path(homehelper.__file__).parent

# Longest prefix wins. Same layer may import same layer; lower only, never higher.
LAYERS: dict[str, int] = {
    "homehelper": 0,  # the package itself: only __version__
    "homehelper.errors": 0,
    "homehelper.storage": 0,
    "homehelper.manifest": 0,
    "homehelper.appid": 0,  # the app-id rule, stdlib only (the SDK imports it)
    "homehelper.oncalendar": 0,  # job schedules: systemd calendar events
    "homehelper.config": 0,
    "homehelper.config_sections": 0,  # the config's section classes (config.py re-exports them)
    "homehelper.approvals": 0,
    "homehelper.options": 0,  # the options schema and values files (actors/options.py writes them)
    "homehelper.actors.runtime": 0,
    "homehelper.messages": 1,
    "homehelper.messages._jobs": 1,
    "homehelper.monitor": 2,
    "homehelper.monitor.history": 2,  # the history file (SQLite), blocking: run in a worker thread
    "homehelper.monitor.redisstats": 2,
    "homehelper.bus": 2,
    "homehelper.backends": 2,
    "homehelper.backends.stamp": 2,  # run by path as its own process; imports nothing from homehelper
    "homehelper.backends.stamping": 2,
    "homehelper.backends.logsearch": 2,
    "homehelper.backends.journal": 2,
    "homehelper.backends.jobs": 2,  # a job's timer and runs
    "homehelper.stateroot": 2,
    "homehelper.backup": 2,  # writing and reading archives (blocking; run on worker threads)
    "homehelper.backup.schedule": 0,  # pure: config.py checks backup.schedule with it
    "homehelper.backupspec": 0,  # a manifest's `backup` section
    "homehelper.sources": 2,  # apps from a source: git (blocking, with timeouts), checked copies, versions
    "homehelper.actors": 3,  # the domain actors, and the package re-exporting the runtime
    "homehelper.actors.history": 3,
    "homehelper.actors.job": 3,
    "homehelper.actors.updater": 3,  # add, update, roll back
        "homehelper.web": 4,
    "homehelper.web.history": 4,
    "homehelper.bus.presence": 2,  # the fleet's presence keys (blocking; worker threads)
    "homehelper.bus.commands": 2,  # the fleet's command streams (blocking; worker threads)
    "homehelper.bus.nodeacl": 2,  # a node's own Redis user (ACL rules)
    "homehelper.actors.fleet": 3,
    "homehelper.web.fleet": 4,
    "homehelper.messages._fleet": 1,
    "homehelper.serve": 5,
    "homehelper.cli": 5,
    "homehelper.clictl": 5,  # the commands that control the running server (uses backends.logsearch)
    "homehelper.clibackup": 5,
    "homehelper.__main__": 5,
    "homehelper.selfinstall": 5,
    "homehelper.sdk": 5,  # what apps import; nothing in homehelper imports it
    "homehelper.sdkoptions": 5,  # sdk.options() and sdk.secret(name)
    "homehelper.clioptions": 5,  # homehelper config APP key=value
    "homehelper.clisource": 5,  # homehelper add / update
    "homehelper.scaffold": 5,  # homehelper new APP: a working app to start from
    "homehelper.sdkdoc": 5,  # docs/sdk.md from the SDK's docstrings
    "homehelper.clifleet": 5,  # homehelper fleet, apps --all-nodes, status --node
}


def _module_name(path: Path) -> str:
    parts = ("homehelper", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/CONTRIBUTING.md")


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                exempt.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return exempt


def imports_of(module: str, source: str | None = None) -> list[tuple[int, str]]:
    """(line, imported homehelper module) for every run-time import in `module`."""
    path = MODULES[module]
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"), filename=str(path))
    exempt = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "homehelper"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "homehelper":
                continue
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found += [(node.lineno, s) for s in subs]
            if len(subs) < len(node.names):
                found.append((node.lineno, target))
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def upward_imports(module: str, source: str | None = None) -> list[str]:
    return [
        f"{module} (layer {layer_of(module)}) line {line} imports {target} (layer {layer_of(target)})"
        for line, target in imports_of(module, source)
        if layer_of(target) > layer_of(module)
    ]


def test_no_module_imports_from_a_layer_above() -> None:
    wrong = [w for module in MODULES for w in upward_imports(module)]
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    # Lazy imports (inside a function) count: web/app.py once hid a cycle of five modules that way.
    graph = {m: {t for _, t in imports_of(m) if t in MODULES and t != m} for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module):], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_runtime_imports_nothing_from_homehelper_outside_itself() -> None:
    # Stricter than its layer: the generic runtime knows no config, errors or storage either.
    wrong = [
        f"{module} line {line} imports {target}"
        for module in MODULES
        if module.startswith("homehelper.actors.runtime")
        for line, target in imports_of(module)
        if not target.startswith("homehelper.actors.runtime")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_checker_names_an_import_that_goes_up() -> None:
    # What monitor/apps.py did before the runtime had its own package.
    source = "from ..actors import Broadcast\nfrom ..actors.runtime import Subscription\n"
    assert upward_imports("homehelper.monitor.apps", source) == [
        "homehelper.monitor.apps (layer 2) line 1 imports homehelper.actors (layer 3)"
    ]
    # Absolute, lazy (inside a function) and `from pkg import submodule` forms are seen too.
    source = "def f():\n    import homehelper.web.app\n    from homehelper.actors import registry\n"
    assert [t for _, t in imports_of("homehelper.backends.base", source)] == [
        "homehelper.web.app", "homehelper.actors.registry"
    ]


def test_type_checking_imports_are_exempt() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..actors.service import ServiceApp\n"
    assert upward_imports("homehelper.backends.restarts", source) == []
