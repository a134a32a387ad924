"""Damaged state files: set aside as `<name>.corrupt-<time>`, rebuilt, said as an event; HomeHelper carries on."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from homehelper.actors import Broadcast, ChildSpec
from homehelper.actors.app import AppActor
from homehelper.actors.ports import PortAllocator
from homehelper.backends import ProcessBackend
from homehelper.config import load_config
from homehelper.manifest import load_manifest
from homehelper.messages import ApplyScan, ListApps, ScanApplied, StartApp, StateFileDamaged, StopApp
from homehelper.serve import Overrides, serve
from tests.actors.test_ports import free_block
from tests.actors.test_scanner import make_app
from tests.actors.test_service import harness
from tests.backends.apps import HEALTHY_APP, make_config, write_app
from tests.fixtures.redis import free_port
from tests.fixtures.tree import Recorder, open_tree


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _good(**rec: Any) -> dict[str, Any]:
    return {"name": "A", "type": "service", "folder": "a", "digest": "x", "desired": "stopped", "port": None, **rec}


DAMAGE: dict[str, Callable[[Path], Any]] = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_text(json.dumps({"a": _good()})[:30]),
    "garbage": lambda p: p.write_bytes(os.urandom(64) + b"\x00\xff"),
    "a list": lambda p: p.write_text("[1, 2, 3]"),
    "nested": lambda p: p.write_text("[" * 30_000),
    "a string port": lambda p: p.write_text(json.dumps({"a": _good(port="8100"), "b": _good(desired="running")})),
    "a FIFO": _fifo,
}


def corrupt_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_a_damaged_registry_is_set_aside_and_rebuilt_from_a_scan(tmp_path: Path, damage: str) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "a", {"id": "a", "name": "A", "type": "service"})
    make_app(apps, "b", {"id": "b", "name": "B", "type": "service"})
    state = tmp_path / "state" / "registry" / "apps.json"
    state.parent.mkdir(parents=True)
    DAMAGE[damage](state)
    original = state.read_bytes() if state.is_file() else None
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    # the base AppActor refuses a boot start: this is about the registry's file, not about running apps
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs"),
                         app_factory=lambda ctx: lambda m: AppActor(m, ctx)) as (rt, recorder):
        listed = await rt.refs["registry"].ask(ListApps())
        assert [a["id"] for a in listed] == ["a", "b"]
        assert rt.root.children()["registry"]["starts"] == 1  # never crashed
    seen = recorder.events
    damaged = [e for e in seen if isinstance(e, StateFileDamaged)]
    assert len(damaged) == 1 and damaged[0].path == str(state) and damaged[0].kind == "state_file_damaged"
    assert "rebuilt from a scan" in damaged[0].what
    [aside] = corrupt_copies(state)
    assert damaged[0].set_aside_as == str(aside)
    if original is not None:
        assert aside.read_bytes() == original  # kept as it was, for a person to look at
    saved = json.loads(state.read_text())  # a good registry again
    assert sorted(saved) == ["a", "b"]
    if damage == "a string port":  # the one bad entry is dropped, the good one kept
        assert "'a': port must be a port number" in damaged[0].what
        assert (saved["a"]["desired"], saved["b"]["desired"]) == ("stopped", "running")
    else:
        assert {rec["desired"] for rec in saved.values()} == {"stopped"}  # unknown: stopped


def _alloc(lo: int, registry_dir: Path, seen: list[Any]) -> PortAllocator:
    return PortAllocator({"service": (lo, lo + 9)}, registry_dir / "ports.json", seen.append)


@pytest.mark.parametrize("damage", ["garbage", "a list", "a string port", "a FIFO"])
def test_a_damaged_port_map_is_rebuilt_keeping_ports_that_are_still_free(tmp_path: Path, damage: str) -> None:
    lo = free_block(10)
    reg = tmp_path / "registry"
    reg.mkdir()
    (reg / "apps.json").write_text(json.dumps({"a": _good(port=lo + 3), "b": _good(port=lo + 5),
                                               "c": _good(port=lo + 7)}))
    ports = reg / "ports.json"
    {"garbage": lambda: ports.write_bytes(b"\x00{{"), "a list": lambda: ports.write_text(f"[{lo}]"),
     "a string port": lambda: ports.write_text(json.dumps({"a": str(lo), "d": lo + 8})),
     "a FIFO": lambda: os.mkfifo(ports)}[damage]()
    seen: list[Any] = []
    with socket.socket() as holder:  # c's old port is taken by another program meanwhile
        holder.bind(("127.0.0.1", lo + 7))
        holder.listen()
        alloc = _alloc(lo, reg, seen)
        assert alloc.allocate("a", "service", set()) == lo + 3  # sticky
        assert alloc.allocate("b", "service", set()) == lo + 5
        assert alloc.allocate("c", "service", set()) == lo  # its port is not free: a new one
    [event] = seen[:1]
    assert isinstance(event, StateFileDamaged) and event.path == str(ports)
    assert "ports rebuilt from the registry" in event.what
    [aside] = corrupt_copies(ports)
    assert event.set_aside_as == str(aside)
    saved = json.loads(ports.read_text())
    assert (saved["a"], saved["b"], saved["c"]) == (lo + 3, lo + 5, lo)
    if damage == "a string port":
        assert saved["d"] == lo + 8  # the good entry survives
    assert len(corrupt_copies(ports)) == 1
    again: list[Any] = []
    _alloc(lo, reg, again)  # the rebuilt map is a good one: no second event
    assert again == []


async def test_a_damaged_run_record_is_set_aside_and_the_app_starts_and_is_adopted(state_root: Path) -> None:
    from homehelper.backends import ProcessBackend
    from tests.fixtures.systemd import _stop_processes

    config = make_config(state_root)
    backend = ProcessBackend(state_root / "run" / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    record = config.run_dir / "services" / "web.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"port": ')
    try:
        async with harness(config, backend) as h:
            ref = h.add(manifest)
            snap = await ref.ask(StartApp("web"), timeout=60)
            assert h.sup.children()["app:web"]["starts"] == 1
            [event] = [e for e in h.events if isinstance(e, StateFileDamaged)]
            assert event.path == str(record) and corrupt_copies(record)[0].read_text() == '{"port": '
            assert json.loads(record.read_text()) == {"port": snap["port"]}
            port = snap["port"]
            # its actor ends (as in a HomeHelper restart), the app runs on; the record is damaged meanwhile
            await h.sup.stop_child("app:web")
            record.write_text(json.dumps({"port": "not a port"}))
            ref = h.add(manifest)
            snap = await ref.ask(StartApp("web"), timeout=60)  # already running: adopted
            assert snap["port"] == port and snap["state"] in ("starting", "running")
            assert h.sup.children()["app:web"]["starts"] == 1
            assert [e.path for e in h.events if isinstance(e, StateFileDamaged)] == [str(record)] * 2
            assert len(corrupt_copies(record)) == 2
            await ref.ask(StopApp("web"))
    finally:
        _stop_processes(backend)


async def test_the_server_answers_with_the_apps_after_a_garbage_registry(state_root: Path) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "backend": "process",
                                                "auth": {"loopback_without_login": True}}, environ={})
    make_app(config.apps_dir, "lamp", {"id": "lamp", "name": "Lamp", "type": "service"})
    config.registry_dir.mkdir(parents=True)
    (config.registry_dir / "apps.json").write_bytes(b"\x00garbage{")
    (config.registry_dir / "ports.json").write_text('["not", "a", "map"]')
    broadcast = Broadcast()
    recorder = Recorder(broadcast)
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(partial(serve, config, overrides=Overrides(broadcast=broadcast)))
        await recorder.wait(ScanApplied)
        async with httpx.AsyncClient(base_url=rt.url) as c:
            r = await c.get("/api/apps")
            assert r.status_code == 200 and [a["id"] for a in r.json()] == ["lamp"]
            kinds = [(e["kind"], e.get("path")) for e in rt.refs["eventlog"].recent(100)]
            assert ("state_file_damaged", str(config.registry_dir / "apps.json")) in kinds
            assert ("state_file_damaged", str(config.registry_dir / "ports.json")) in kinds
            events = (await c.get("/api/events")).json()
            assert any(e["kind"] == "state_file_damaged" for e in events)  # what the dashboard reads
        nursery.cancel_scope.cancel()
    assert rt.root.children()["registry"]["starts"] == 1


async def test_a_restarted_registry_takes_over_the_app_actors_it_finds(tmp_path: Path) -> None:
    # The app actors live under their own supervisor and outlive a registry crash: the new registry's
    # first scan must adopt them, not crash-loop on "child already exists".
    apps = tmp_path / "apps"
    make_app(apps, "a", {"id": "a", "name": "A", "type": "service"})
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs"), scan=False) as (rt, _):
        app_sup, registry = rt.apps, rt.refs["registry"]
        app_sup.start_child(ChildSpec("a", lambda: AppActor(load_manifest(apps / "a", apps), rt.ctx)))
        await registry.ask(ApplyScan((load_manifest(apps / "a", apps),), {}), timeout=10)
        assert [a["id"] for a in await registry.ask(ListApps())] == ["a"]
        assert rt.root.children()["registry"]["starts"] == 1  # never crashed
        assert app_sup.children()["a"]["starts"] == 1  # the same actor, not a second one


@pytest.mark.parametrize("marker", ["{ torn", '{"disk_bytes": "a lot", "fingerprint": 7}'])
async def test_a_damaged_venv_marker_means_a_reinstall_not_a_crash_loop(state_root: Path, marker: str) -> None:
    from homehelper.backends import ProcessBackend
    from homehelper.backends.installer import MARKER
    from tests.fixtures.systemd import _stop_processes

    config = make_config(state_root)
    backend = ProcessBackend(state_root / "run" / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    config.venv_dir("web").mkdir(parents=True)
    (config.venv_dir("web") / MARKER).write_text(marker)
    try:
        async with harness(config, backend) as h:
            ref = h.add(manifest)
            snap = await ref.ask(StartApp("web"), timeout=60)
            assert snap["state"] in ("starting", "running") and h.sup.children()["app:web"]["starts"] == 1
            await ref.ask(StopApp("web"))
    finally:
        _stop_processes(backend)
