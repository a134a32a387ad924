"""Manifests built to break the scanner: each stays its own folder's `invalid` entry, the rest is listed."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import attrs
import trio

from homehelper.actors.scanner import Scanner, scan_folder
from homehelper.backends import ProcessBackend
from homehelper.config import load_config
from homehelper.manifest import MANIFEST_NAME
from homehelper.messages import ListApps, Rescan
from tests.actors.test_scanner import make_app
from tests.fixtures.tree import open_tree


def hostile_apps(apps: Path) -> None:
    make_app(apps, "good", {"id": "good", "name": "Good", "type": "service"})
    make_app(apps, "nested", "[" * 30_000)
    make_app(apps, "fifo", "{}")
    (apps / "fifo" / MANIFEST_NAME).unlink()
    os.mkfifo(apps / "fifo" / MANIFEST_NAME)
    make_app(apps, "folder", "{}")
    (apps / "folder" / MANIFEST_NAME).unlink()
    (apps / "folder" / MANIFEST_NAME).mkdir()
    make_app(apps, "zero", "{}")
    (apps / "zero" / MANIFEST_NAME).unlink()
    os.symlink("/dev/zero", apps / "zero" / MANIFEST_NAME)
    make_app(apps, "big", "{}")
    with (apps / "big" / MANIFEST_NAME).open("wb") as f:
        f.truncate(10 * 1024 * 1024)
    # a FIFO reached through a symlink that stays inside apps/ (allowed as a link, refused as a FIFO)
    make_app(apps, "fifo-link", "{}")
    (apps / "fifo-link" / MANIFEST_NAME).unlink()
    os.symlink(apps / "fifo" / MANIFEST_NAME, apps / "fifo-link" / MANIFEST_NAME)


def test_hostile_manifests_are_each_their_folders_problem(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    hostile_apps(apps)
    manifests, invalid = scan_folder(apps)  # returns at all: the FIFO did not hang it
    assert [m.id for m in manifests] == ["good"]
    assert set(invalid) == {"nested", "fifo", "folder", "zero", "big", "fifo-link"}
    assert "nested too deeply" in invalid["nested"][0]
    assert "is a FIFO, not a regular file" in invalid["fifo"][0]
    assert "is a FIFO, not a regular file" in invalid["fifo-link"][0]
    assert "is a folder, not a regular file" in invalid["folder"][0]
    assert "outside" in invalid["zero"][0]
    assert "limit is 65536" in invalid["big"][0]


async def test_the_registry_lists_the_good_app_beside_the_hostile_ones(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    hostile_apps(apps)
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs")) as (rt, _):
        root, scanner, registry = rt.root, rt.refs["scanner"], rt.refs["registry"]
        with trio.fail_after(10):
            summary = await scanner.ask(Rescan())
        assert sorted(summary["invalid"]) == ["big", "fifo", "fifo-link", "folder", "nested", "zero"]
        listed = {a["id"]: a for a in await registry.ask(ListApps())}
        assert listed["good"]["state"] == "stopped"
        assert {k for k, a in listed.items() if a["state"] == "invalid"} == set(summary["invalid"])
        assert "nested too deeply" in listed["nested"]["errors"][0]
        assert root.children()["scanner"]["starts"] == 1  # never crashed


def _blocking_scan(apps_dir: Path) -> Any:
    """How the scanner read a FIFO before: a plain open, which waits for a writer."""
    with (apps_dir / "fifo" / MANIFEST_NAME).open("rb") as f:
        f.read()
    return scan_folder(apps_dir)


class StuckScanner(Scanner):
    read_folder = staticmethod(_blocking_scan)


async def test_a_read_that_hangs_does_not_hold_up_a_cancel(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    hostile_apps(apps)
    scanner = StuckScanner(apps, registry=None, emit=lambda e: None)  # type: ignore[arg-type]
    with trio.move_on_after(0.3) as scope:
        await scanner.scan()
    assert scope.cancelled_caught  # the shutdown goes on; the worker thread is abandoned
    # let the abandoned thread finish: a writer on the FIFO ends its read
    done = threading.Event()

    def release() -> None:
        fd = os.open(apps / "fifo" / MANIFEST_NAME, os.O_WRONLY)
        os.close(fd)
        done.set()

    await trio.to_thread.run_sync(release)
    assert done.is_set()
