"""A stop sticks: whatever state the app was in, the next start of HomeHelper leaves it stopped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from homehelper.backends import ProcessBackend
from homehelper.config import Config
from homehelper.messages import AppStateChanged, EnableApp, GetApp, StartApp, StopApp
from homehelper.serve import Runtime
from tests.backends.apps import CRASHING_APP, HEALTHY_APP, make_config, wait_until, write_app
from tests.fixtures.systemd import _stop_processes
from tests.fixtures.tree import Recorder, open_tree

CLEAN_EXIT_APP = """
import time
print("did my job", flush=True)
time.sleep(0.5)
"""


@asynccontextmanager
async def tree(config: Config) -> AsyncIterator[tuple[Runtime, Recorder]]:
    """The real tree of `homehelper serve` (without the web server), with every event recorded."""
    async with open_tree(config) as (rt, recorder):
        yield rt, recorder


def saved(config: Config, app_id: str) -> dict[str, Any]:
    return json.loads((config.registry_dir / "apps.json").read_text())[app_id]  # type: ignore[no-any-return]


def states(events: Recorder, app_id: str) -> list[str]:
    return [e.state for e in events.of(AppStateChanged, app_id)]


async def reaches(events: Recorder, app_id: str, state: str, timeout: float = 30, **fields: Any) -> None:
    await events.wait(AppStateChanged, app_id, state=state, timeout=timeout, **fields)


async def assert_not_started_by_a_new_tree(config: Config, app_id: str) -> None:
    async with tree(config) as (rt, events):
        # The registry sends its boot StartApps while it applies the first scan; an ask to the app
        # queues behind them, so its answer comes after any boot start was handled.
        snap = await rt.apps.ref(app_id).ask(GetApp(app_id), timeout=30)
        assert snap["state"] == "stopped" and snap["pid"] is None
        with trio.move_on_after(1.5):  # an enabled app would be started by a background task: give it time
            await reaches(events, app_id, "starting")
        assert states(events, app_id) == []
        assert saved(config, app_id)["desired"] == "stopped"


@pytest.fixture
def config(state_root: Path) -> Any:
    config = make_config(state_root, backend="process")
    yield config
    _stop_processes(ProcessBackend(config.run_dir / "procs"))


@pytest.mark.parametrize("where", ["backoff", "quarantined"])
async def test_a_stop_in_backoff_or_quarantine_sticks(config: Config, where: str) -> None:
    write_app(config.apps_dir, "crashy", CRASHING_APP, restart={"intensity": 1, "period": 60, "backoff_max": 1})
    async with tree(config) as (rt, events):
        ref = rt.apps.ref("crashy")
        await ref.ask(StartApp("crashy"), timeout=60)
        await wait_until(lambda: saved(config, "crashy")["desired"] == "running")
        await reaches(events, "crashy", where)
        snap = await ref.ask(StopApp("crashy"))
        assert snap["state"] == "stopped"
        await wait_until(lambda: saved(config, "crashy")["desired"] == "stopped")
    await assert_not_started_by_a_new_tree(config, "crashy")


async def test_a_clean_exit_under_on_failure_sticks(config: Config) -> None:
    write_app(config.apps_dir, "oneshot", CLEAN_EXIT_APP, restart={"policy": "on-failure"})
    async with tree(config) as (rt, events):
        await rt.apps.ref("oneshot").ask(StartApp("oneshot"), timeout=60)
        await reaches(events, "oneshot", "stopped", reason="exited")
        assert [e.reason for e in events.of(AppStateChanged, "oneshot")][-1] == "exited"
        await wait_until(lambda: saved(config, "oneshot")["desired"] == "stopped")
    await assert_not_started_by_a_new_tree(config, "oneshot")


async def test_a_stop_of_a_running_app_sticks_even_when_enabled_or_autostart(config: Config) -> None:
    write_app(config.apps_dir, "web", HEALTHY_APP, autostart=True)
    async with tree(config) as (rt, events):
        ref = rt.apps.ref("web")
        await reaches(events, "web", "running")  # autostart
        await ref.ask(EnableApp("web", True))  # and systemd-style "start at boot"
        await ref.ask(StopApp("web"))
        await wait_until(lambda: saved(config, "web")["desired"] == "stopped")
        assert saved(config, "web")["user_stopped"] is True
    await assert_not_started_by_a_new_tree(config, "web")
    async with tree(config) as (rt, events):  # a start by the user lifts the hold
        await rt.apps.ref("web").ask(StartApp("web"), timeout=60)
        await wait_until(lambda: saved(config, "web")["desired"] == "running")
        assert saved(config, "web")["user_stopped"] is False
    async with tree(config) as (rt, events):  # and it is brought back (adopted, still running)
        await reaches(events, "web", "running")
        await rt.apps.ref("web").ask(StopApp("web"))


async def test_an_app_adopted_after_a_lost_registry_is_desired_running(config: Config) -> None:
    write_app(config.apps_dir, "web", HEALTHY_APP)
    async with tree(config) as (rt, events):
        await rt.apps.ref("web").ask(StartApp("web"), timeout=60)
        await reaches(events, "web", "running")
    (config.registry_dir / "apps.json").write_text("{ garbage")  # lost while HomeHelper was away; web runs on
    async with tree(config) as (rt, events):
        await reaches(events, "web", "running")  # adopted
        assert events.of(AppStateChanged, "web")[0].reason == "adopted"
        await wait_until(lambda: saved(config, "web")["desired"] == "running")
        assert [e["kind"] for e in rt.refs["eventlog"].recent(100, kind="state_file_damaged")] == ["state_file_damaged"]
        await rt.apps.ref("web").ask(StopApp("web"))
