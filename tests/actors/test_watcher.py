"""Auto-discovery: folders copied into apps/ (really copied, in a thread) reach the registry of a
real tree (serve.build_tree) without a Rescan; waits are on the registry's ScanApplied."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from homehelper.backends import ProcessBackend
from homehelper.config import Config
from homehelper.messages import AppDiscovered, AppInvalid, ListApps, ManifestChanged, Rescan, ScanApplied
from homehelper.serve import Runtime, build_tree
from tests.backends.apps import REPO, make_config
from tests.fixtures.systemd import _stop_processes

MANIFEST = {"id": "copied", "name": "Copied", "type": "service", "autostart": False}


@pytest.fixture
def config(state_root: Path) -> Any:
    config = make_config(state_root, backend="process")
    config.apps_dir.mkdir(parents=True, exist_ok=True)
    yield config
    _stop_processes(ProcessBackend(config.run_dir / "procs"))


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Runtime, Any]]:
    async with trio.open_nursery() as nursery:
        rt = await build_tree(config, nursery)
        # Answered after the scanner's start-up (watching, then the first scan): copies begin after it.
        await rt.refs["scanner"].ask(Rescan())
        with rt.broadcast.subscribe(10_000, accept=lambda e: isinstance(
                e, (ScanApplied, AppDiscovered, ManifestChanged, AppInvalid))) as sub:
            yield rt, sub
        nursery.cancel_scope.cancel()


async def until(sub: Any, test: Any, seen: list[Any] | None = None, timeout: float = 30) -> Any:
    with trio.fail_after(timeout):
        async for ev in sub:
            if seen is not None:
                seen.append(ev)
            if test(ev):
                return ev
    raise AssertionError("the subscription ended")


def in_thread(work: Any) -> threading.Thread:
    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


async def test_a_folder_copied_in_appears_without_a_rescan(config: Config) -> None:
    async with running(config) as (rt, sub):
        copier = in_thread(lambda: shutil.copytree(REPO / "apps" / "sensor-logger", config.apps_dir / "sensor-logger"))
        seen: list[Any] = []
        await until(sub, lambda e: isinstance(e, ScanApplied) and e.apps == 1, seen)
        copier.join(timeout=30)
        assert [e.app_id for e in seen if isinstance(e, AppDiscovered)] == ["sensor-logger"]
        assert not [e for e in seen if isinstance(e, AppInvalid)]
        assert [a["id"] for a in await rt.refs["registry"].ask(ListApps())] == ["sensor-logger"]


async def test_a_slow_copy_of_a_large_file_is_not_read_half_way(config: Config) -> None:
    folder = config.apps_dir / "copied"
    size = 4 * 1024 * 1024
    closed = threading.Event()

    def slow_copy() -> None:
        folder.mkdir()
        (folder / "homehelper.json").write_text(json.dumps(MANIFEST))  # the manifest first: the worst case
        (folder / "main.py").write_text("print('hi')\n")
        with open(folder / "model.bin", "wb") as f:
            for _ in range(4):  # slower than the watcher's quiet time between writes
                f.write(b"\0" * (size // 4))
                f.flush()
                time.sleep(1.3)  # the copier's pace (not a wait of the test's)
        closed.set()

    async with running(config) as (_rt, sub):
        in_thread(slow_copy)
        found = await until(sub, lambda e: isinstance(e, AppDiscovered))
        # read only once the file was whole: its writer had closed it
        assert closed.is_set() and found.app_id == "copied"
        assert (folder / "model.bin").stat().st_size == size


async def test_a_manifest_broken_mid_copy_is_read_again_on_its_next_change(config: Config) -> None:
    folder = config.apps_dir / "copied"
    async with running(config) as (rt, sub):
        in_thread(lambda: (folder.mkdir(), (folder / "main.py").write_text("print('hi')\n"),
                           (folder / "homehelper.json").write_text('{"id": "copied", ')))
        bad = await until(sub, lambda e: isinstance(e, AppInvalid))
        assert bad.folder == "copied" and "JSON" in " ".join(bad.errors)
        in_thread(lambda: (folder / "homehelper.json").write_text(json.dumps(MANIFEST)))
        await until(sub, lambda e: isinstance(e, ScanApplied) and e.apps == 1 and e.invalid == 0)
        # and a changed manifest is picked up too
        in_thread(lambda: (folder / "homehelper.json").write_text(json.dumps({**MANIFEST, "name": "Renamed"})))
        changed = await until(sub, lambda e: isinstance(e, ManifestChanged))
        assert changed.app_id == "copied"
        apps = await rt.refs["registry"].ask(ListApps())
        assert [a["name"] for a in apps] == ["Renamed"]


async def test_a_flood_of_events_makes_one_scan(config: Config) -> None:
    def many_files() -> None:
        folder = config.apps_dir / "copied"
        for sub_dir in range(20):
            d = folder / "static" / f"d{sub_dir}"
            d.mkdir(parents=True)
            for i in range(50):
                (d / f"f{i}.txt").write_text("x" * 100)
        (folder / "main.py").write_text("print('hi')\n")
        (folder / "homehelper.json").write_text(json.dumps(MANIFEST))

    async with running(config) as (rt, sub):
        copier = in_thread(many_files)
        seen: list[Any] = []
        await until(sub, lambda e: isinstance(e, ScanApplied) and e.apps == 1, seen)
        copier.join(timeout=30)
        await rt.refs["scanner"].ask(Rescan())  # its ScanApplied comes after any the copy caused
        await until(sub, lambda e: isinstance(e, ScanApplied), seen)
        scans = [e for e in seen if isinstance(e, ScanApplied)]
        assert [(e.apps, e.invalid) for e in scans if e.apps or e.invalid] == [(1, 0), (1, 0)]
