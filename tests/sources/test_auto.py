"""Auto-update: off by default (no task runs); on, an app's ref is checked at most once a day and a
new commit is installed then. The updater in a real supervisor, on a MockClock: a day passes at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.updater import DAY, Updater
from homehelper.config import Config
from homehelper.messages import AppUpdateAvailable, AppUpdated, CheckUpdate, ConfirmAdd, PreviewSource, SetAutoUpdate
from homehelper.sources.versions import current_version, read_sources
from tests.sources.helpers import GOOD_MAIN, commit, manifest

BASE = 1_800_000_000.0  # the wall clock at the MockClock's zero


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # jumps once nothing ran for 0.3 s of real time: git runs in threads meanwhile, and takes a few ms
    return trio.testing.MockClock(autojump_threshold=0.3)


async def test_auto_update_checks_once_a_day_and_installs_the_new_commit(
        nursery: trio.Nursery, state_root: Path, clock: trio.testing.MockClock) -> None:
    config = Config(root=state_root, apps_dir=state_root / "apps")
    config.apps_dir.mkdir(parents=True)
    broadcast = Broadcast()
    root = Supervisor("root", emit=broadcast.publish)
    apps = Supervisor("apps", emit=broadcast.publish)
    await nursery.start(root.run)
    await nursery.start(apps.run)
    repo = state_root / "repo"
    v1 = commit(repo, {"homehelper.json": manifest(), "main.py": GOOD_MAIN}, "v1")
    made: list[Updater] = []

    def make() -> Updater:
        made.append(Updater(config, broadcast, apps, None, wall=lambda: BASE + trio.current_time()))
        return made[-1]

    with broadcast.subscribe(accept=lambda e: isinstance(e, (AppUpdateAvailable, AppUpdated))) as sub:
        ref: Any = root.start_child(ChildSpec("updater", make))
        preview = await ref.ask(PreviewSource(str(repo), "", "main"), timeout=60)
        assert (await ref.ask(ConfirmAdd(preview["token"]), timeout=60))["version"] == v1
        await ref.ask(CheckUpdate("notes"), timeout=60)
        assert not made[-1]._auto_running  # auto-update is off: no task waits for anything
        await ref.ask(SetAutoUpdate("notes", True), timeout=60)
        assert made[-1]._auto_running and read_sources(config)["notes"]["auto_update"] is True
        checked = trio.current_time()
        v2 = commit(repo, {"main.py": GOOD_MAIN.replace("v1 up", "v2 up")}, "v2")
        available = await sub.receive()
        assert isinstance(available, AppUpdateAvailable) and available.available == v2
        assert DAY <= trio.current_time() - checked < DAY + 60  # a day after the last check, not before
        updated = await sub.receive()
        assert isinstance(updated, AppUpdated) and (updated.previous, updated.version) == (v1, v2)
        assert current_version(config, "notes") == v2
        await ref.ask(SetAutoUpdate("notes", False), timeout=60)
        with trio.move_on_after(3 * DAY):  # off again: nothing more is checked, however long
            await sub.receive()
            raise AssertionError("checked with auto-update off")
        assert read_sources(config)["notes"]["last_check"] < BASE + trio.current_time() - 2 * DAY
