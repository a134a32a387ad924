"""The registry's read model: events applied as they are published, the time an opened UI has
left, waiting for an action to settle, and catching up after a crash of the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from homehelper.actors import Broadcast, ChildCrashed, ChildSpec, RestartPolicy, Supervisor
from homehelper.actors.app import AppActor, AppContext
from homehelper.actors.readmodel import AppRecord, AppsView
from homehelper.actors.registry import Registry
from homehelper.actors.scanner import Scanner
from homehelper.config import load_config
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
from tests.actors.test_scanner import make_app


class Lamp(AppActor):
    """An app actor whose start is instant: its state changes are what the test watches."""

    async def start(self, reason: str) -> Any:
        self.set_state("running", reason)
        self.ctx.emit(AppStarted(self.app_id, 8123, reason))
        return self.snapshot()


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


Tree = tuple[Any, Any, Supervisor, AppsView]  # registry, scanner, apps supervisor, view


async def _registry_tree(tmp_path: Path, nursery: trio.Nursery, broadcast: Broadcast) -> Tree:
    apps = tmp_path / "apps"
    make_app(apps, "lamp", {"id": "lamp", "name": "Lamp", "type": "service"})
    config = load_config(tmp_path / "state", environ={})
    root = Supervisor("root", RestartPolicy(backoff_initial=0.01), emit=broadcast.publish)
    app_sup = Supervisor("apps", emit=broadcast.publish)
    await nursery.start(root.run)
    await nursery.start(app_sup.run)
    ctx = AppContext(config=config, emit=broadcast.publish, ports=None)  # type: ignore[arg-type]
    view = AppsView()
    registry = root.start_child(ChildSpec("registry", lambda: Registry(app_sup, lambda m: Lamp(m, ctx), broadcast,
                                                                       tmp_path / "state" / "apps.json", view=view)))
    scanner = root.start_child(ChildSpec("scanner", lambda: Scanner(apps, registry, broadcast.publish)))
    with broadcast.subscribe(accept=lambda e: isinstance(e, ScanApplied)) as applied:
        await scanner.ask(Rescan())
        with trio.fail_after(5):
            await applied.receive()  # the registry has the app and its actor
    return registry, scanner, app_sup, view


async def test_the_view_is_current_when_the_actor_replies(tmp_path: Path) -> None:
    broadcast = Broadcast()
    async with trio.open_nursery() as n:
        _registry, _scanner, app_sup, view = await _registry_tree(tmp_path, n, broadcast)
        reply = await app_sup.ref("lamp").ask(StartApp("lamp"))
        # no yield between the reply and the read: the events were applied as they were published
        assert reply["state"] == "running" and view.app("lamp")["state"] == "running"
        assert view.app("lamp")["port"] == 8123 and view.app("lamp")["desired"] == "running"
        n.cancel_scope.cancel()


async def test_a_restarted_registry_catches_up_with_a_running_app(tmp_path: Path) -> None:
    broadcast = Broadcast()
    sub = broadcast.subscribe(accept=lambda e: isinstance(e, (ChildCrashed, ScanApplied)))
    async with trio.open_nursery() as n:
        registry, scanner, app_sup, view = await _registry_tree(tmp_path, n, broadcast)
        await app_sup.ref("lamp").ask(StartApp("lamp"))
        await registry.tell(ApplyScan((object(),), ()))  # a bug's worth of input crashes it
        with trio.fail_after(5):
            while not isinstance(await sub.receive(), ChildCrashed):
                pass
        await scanner.ask(Rescan())  # the restarted registry gets the app again; its actor still runs it
        with trio.fail_after(5):
            while not isinstance(await sub.receive(), ScanApplied):
                pass
        assert (await app_sup.ref("lamp").ask(GetApp("lamp")))["state"] == "running"
        assert view.app("lamp")["state"] == "running" and view.app("lamp")["port"] == 8123
        n.cancel_scope.cancel()


def test_a_crash_shows_the_app_actors_own_words() -> None:
    # one definition of what went wrong: the actor's (the CLI and the card said different things)
    view = AppsView()
    view.records["svc"] = _record("svc", "service", "running")
    view.apply(AppCrashed("svc", 3, 1, 2.0, "Traceback\nRuntimeError: bus lost\n", "exited: exit status 3 (exit-code)"))
    assert view.app("svc")["last_error"] == "exited: exit status 3 (exit-code)"
    view.apply(AppCrashed("svc", 3, 2, 2.0, "Traceback\nRuntimeError: bus lost\n"))  # an older sender: no words
    assert view.app("svc")["last_error"] == "exited with status 3: RuntimeError: bus lost"
