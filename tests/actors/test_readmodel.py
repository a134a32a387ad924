"""The registry's read model: events applied as they are published, the time an opened UI has
left, waiting for an action to settle, and catching up after a crash of the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from homehelper.actors import ChildCrashed
from homehelper.actors.readmodel import AppRecord, AppsView
from homehelper.backends.process import ProcessBackend
from homehelper.messages import (
    AppCrashed,
    ApplyScan,
    AppStarted,
    AppStateChanged,
    AppStopped,
    GetApp,
    Rescan,
    ScanApplied,
    StartApp,
    UIDeadlines,
)
from homehelper.serve import Runtime
from tests.backends.apps import make_config, write_app
from tests.fixtures.systemd import _stop_processes
from tests.fixtures.tree import Recorder, open_tree


def _record(app_id: str = "ui", type: str = "streamlit", state: str = "stopped") -> AppRecord:
    return AppRecord(app_id, app_id, type, app_id, "digest", state=state)


async def test_the_time_left_is_a_field_counted_down_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    view = AppsView()
    view.records["ui"] = _record()
    view.records["svc"] = _record("svc", "service")
    now = trio.current_time()
    view.apply(AppStateChanged("ui", "running", "starting"))
    view.apply(UIDeadlines("ui", now + 300, now + 3600))
    await trio.sleep(100)
    app = view.app("ui")
    assert (app["ttl_left"], app["max_lifetime_left"]) == (200.0, 3500.0)
    view.apply(UIDeadlines("ui", trio.current_time() + 300, now + 3600))  # a keep-alive
    assert view.app("ui")["ttl_left"] == 300.0
    await trio.sleep(4000)
    assert (view.app("ui")["ttl_left"], view.app("ui")["max_lifetime_left"]) == (0.0, 0.0)
    view.apply(AppStateChanged("ui", "stopped", "running"))
    assert view.app("ui")["ttl_left"] == 0.0
    assert view.app("svc")["ttl_left"] is None  # a service app has no idle stop


def test_an_app_stopped_without_a_state_change_is_stopped() -> None:
    # A Streamlit app ended at HomeHelper's shutdown says only AppStopped: the proxy must not keep
    # sending its pages to a port nobody listens on.
    view = AppsView()
    view.records["ui"] = _record(state="running")
    view.apply(AppStopped("ui", "shutdown", 0))
    assert view.app("ui")["state"] == "stopped"


async def test_settled_waits_until_the_app_leaves_a_transient_state() -> None:
    view = AppsView()
    view.records["svc"] = _record("svc", "service", "starting")
    done = trio.Event()

    async def wait() -> None:
        await view.settled("svc")
        done.set()

    async with trio.open_nursery() as n:
        n.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        view.apply(AppStarted("svc", 8123, "user"))
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()  # an event that leaves it starting does not settle it
        view.apply(AppStateChanged("svc", "running", "starting"))
        with trio.fail_after(5):
            await done.wait()


# A real service app on the process backend: running once its process is alive (health "process").
LAMP = """
import time
while True:
    time.sleep(1)
"""


@asynccontextmanager
async def _lamp_tree(state_root: Path) -> AsyncIterator[tuple[Runtime, Recorder]]:
    """serve's tree over one service app, "lamp"; the app is killed at the end."""
    config = make_config(state_root)
    write_app(config.apps_dir, "lamp", LAMP, health=None)
    backend = ProcessBackend(state_root / "run" / "procs")
    try:
        async with open_tree(config, backend=backend, sensors=False) as tree:
            yield tree
    finally:
        _stop_processes(backend)


async def test_the_view_is_current_when_the_actor_replies(state_root: Path) -> None:
    async with _lamp_tree(state_root) as (rt, _recorder):
        view: AppsView = rt.refs["view"]
        reply = await rt.apps.ref("lamp").ask(StartApp("lamp"), timeout=60)
        # no yield between the reply and the read: the events were applied as they were published
        seen = view.app("lamp")
        assert (seen["state"], seen["port"], seen["desired"]) == (reply["state"], reply["port"], "running")
        assert reply["port"] is not None
        with trio.fail_after(30):
            await view.settled("lamp")
        assert view.app("lamp")["state"] == "running"


async def test_a_restarted_registry_catches_up_with_a_running_app(state_root: Path) -> None:
    async with _lamp_tree(state_root) as (rt, recorder):
        view: AppsView = rt.refs["view"]
        lamp = rt.apps.ref("lamp")
        port = (await lamp.ask(StartApp("lamp"), timeout=60))["port"]
        with trio.fail_after(30):
            await view.settled("lamp")
        mark = len(recorder.events)
        await rt.refs["registry"].tell(ApplyScan((object(),), ()))  # a bug's worth of input crashes it
        await recorder.wait_after(mark, lambda e: isinstance(e, ChildCrashed) and e.child == "registry", timeout=5)
        mark = len(recorder.events)
        await rt.refs["scanner"].ask(Rescan())  # the restarted registry gets the app again; its actor still runs it
        await recorder.wait_after(mark, ScanApplied, timeout=5)
        assert (await lamp.ask(GetApp("lamp")))["state"] == "running"
        assert view.app("lamp")["state"] == "running" and view.app("lamp")["port"] == port


def test_a_crash_shows_the_app_actors_own_words() -> None:
    # one definition of what went wrong: the actor's (the CLI and the card said different things)
    view = AppsView()
    view.records["svc"] = _record("svc", "service", "running")
    view.apply(AppCrashed("svc", 3, 1, 2.0, "Traceback\nRuntimeError: bus lost\n", "exited: exit status 3 (exit-code)"))
    assert view.app("svc")["last_error"] == "exited: exit status 3 (exit-code)"
    view.apply(AppCrashed("svc", 3, 2, 2.0, "Traceback\nRuntimeError: bus lost\n"))  # an older sender: no words
    assert view.app("svc")["last_error"] == "exited with status 3: RuntimeError: bus lost"
