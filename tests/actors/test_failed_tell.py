"""A failed tell is said out loud and the actor carries on; a crash reaches the event log as an Event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from homehelper.actors import Actor, Broadcast, ChildCrashed, ChildSpec, CommandFailed, RestartPolicy, Supervisor
from homehelper.actors.app import AppActor
from homehelper.actors.eventlog import EventLog
from homehelper.backends import ProcessBackend
from homehelper.config import load_config
from homehelper.errors import Unavailable
from homehelper.messages import (
    ApplyScan,
    ChildQuarantined,
    ChildRestarting,
    Event,
    GetApp,
    GetEventHistory,
    ListApps,
    OpenUI,
    Rescan,
    ScanApplied,
)
from homehelper.serve import Runtime
from tests.actors.test_scanner import make_app
from tests.fixtures.tree import Recorder, next_event, open_tree


class Refuser(Actor):
    """Refuses every OpenUI with a domain error (as a Streamlit app at the cap does), counts the rest."""

    name = "refuser"

    def __init__(self) -> None:
        self.seen = 0

    async def handle(self, msg: Any) -> Any:
        match msg:
            case OpenUI(app_id):
                raise Unavailable(f"cannot open {app_id}: 3 Streamlit apps are running", app=app_id, running=["x"])
            case "boom":
                raise RuntimeError("a bug")
            case _:
                self.seen += 1
                return self.seen


async def test_a_tell_that_raises_a_domain_error_is_published_and_the_actor_carries_on() -> None:
    broadcast = Broadcast()
    sub = broadcast.subscribe()
    async with trio.open_nursery() as nursery:
        sup = Supervisor("apps", emit=broadcast.publish)
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("lamp", Refuser))
        assert await ref.ask("count") == 1
        await ref.tell(OpenUI("lamp"))
        ev = await next_event(sub, lambda e: isinstance(e, CommandFailed))
        assert isinstance(ev, Event) and ev.kind == "command_failed"
        assert (ev.actor, ev.command, ev.app_id) == ("refuser", "OpenUI", "lamp")
        assert "3 Streamlit apps are running" in ev.error
        assert ev.detail == {"app": "lamp", "running": ["x"]}
        assert ev.subject == "lamp"  # shown under the app, published on its channel
        # the same actor, its state kept: never restarted
        assert await ref.ask("count") == 2
        assert sup.children()["lamp"]["starts"] == 1
        data = json.loads(json.dumps(ev.to_json()))
        assert data["kind"] == "command_failed" and data["command"] == "OpenUI"
        nursery.cancel_scope.cancel()


async def test_a_crash_is_an_event_in_the_event_log_and_json_for_the_bridge() -> None:
    broadcast = Broadcast()
    log = EventLog(broadcast, 100)
    policy = RestartPolicy(intensity=1, period=60, backoff_initial=0.01, quarantine_retry=3600)
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=broadcast.publish)
        await nursery.start(root.run)
        events = root.start_child(ChildSpec("eventlog", lambda: log))
        sup = Supervisor("apps", policy, emit=broadcast.publish)
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("lamp", Refuser))
        sub = broadcast.subscribe()
        await ref.tell("boom")
        crashed = await next_event(sub, lambda e: isinstance(e, ChildCrashed))
        assert (crashed.supervisor, crashed.child, crashed.start) == ("apps", "lamp", 1)
        assert "a bug" in crashed.error
        await next_event(sub, lambda e: isinstance(e, ChildRestarting))
        assert await ref.ask("count") == 1  # restarted, fresh state
        await ref.tell("boom")
        await next_event(sub, lambda e: isinstance(e, ChildQuarantined))  # past the intensity
        history = await events.ask(GetEventHistory(50))
        kinds = [e["kind"] for e in history]
        assert kinds.count("child_crashed") == 2
        assert "child_restarting" in kinds and "child_quarantined" in kinds
        assert "child_started" not in kinds  # routine lifecycle stays out of the history
        record = next(e for e in history if e["kind"] == "child_crashed")
        assert json.loads(json.dumps(record)) == record
        assert record["child"] == "lamp" and "a bug" in record["error"] and isinstance(record["at"], float)
        nursery.cancel_scope.cancel()


async def test_a_boot_start_that_fails_leaves_the_app_actor_running(tmp_path: Path) -> None:
    """The registry tells StartApp(reason="boot") to what the user left running: a refusal is an event."""
    apps = tmp_path / "apps"
    make_app(apps, "lamp", {"id": "lamp", "name": "Lamp", "type": "service"})
    state = tmp_path / "state" / "registry" / "apps.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"lamp": {"name": "Lamp", "type": "service", "folder": "lamp", "digest": "old",
                                          "desired": "running", "port": None}}))
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    # the base AppActor refuses every start with a Conflict (a HomeHelperError)
    async with open_tree(config, scans=0, backend=ProcessBackend(config.run_dir / "procs"),
                         app_factory=lambda ctx: lambda m: AppActor(m, ctx)) as (rt, recorder):
        [failed] = await recorder.wait(CommandFailed)
        assert (failed.actor, failed.command, failed.app_id) == ("app:lamp", "StartApp", "lamp")
        assert (await rt.apps.ref("lamp").ask(GetApp("lamp")))["state"] == "stopped"
        assert rt.apps.children()["lamp"]["starts"] == 1


@asynccontextmanager
async def _crashed_registry(tmp_path: Path, follow: bool) -> AsyncIterator[tuple[Runtime, Recorder]]:
    """`serve`'s tree with one app, its registry crashed once by a bug's worth of input."""
    apps = tmp_path / "apps"
    make_app(apps, "lamp", {"id": "lamp", "name": "Lamp", "type": "service"})
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs"),
                         policy=RestartPolicy(backoff_initial=0.01), scanner_follows=follow) as (rt, recorder):
        await rt.refs["registry"].tell(ApplyScan((object(),), ()))
        await recorder.wait(ChildCrashed)
        yield rt, recorder


async def test_a_registry_restarted_after_a_crash_takes_over_the_app_actors(tmp_path: Path) -> None:
    async with _crashed_registry(tmp_path, follow=False) as (rt, _recorder):
        registry = rt.refs["registry"]
        await rt.refs["scanner"].ask(Rescan())  # the restarted registry gets the apps again
        assert [a["id"] for a in await registry.ask(ListApps())] == ["lamp"]
        assert (await rt.apps.ref("lamp").ask(GetApp("lamp")))["state"] == "stopped"
        assert rt.apps.children()["lamp"]["starts"] == 1  # the same app actor, taken over
        reg = rt.root.children()["registry"]
        assert (reg["state"], reg["starts"]) == ("running", 2)  # restarted once, not crash-looping


async def test_a_restarted_registry_gets_the_apps_again_without_a_rescan(tmp_path: Path) -> None:
    async with _crashed_registry(tmp_path, follow=True) as (rt, recorder):
        # the scanner saw the restart and handed the new registry its apps: nobody asked for a rescan
        assert (await recorder.wait(ScanApplied, count=2))[1].apps == 1
        assert [a["id"] for a in await rt.refs["registry"].ask(ListApps())] == ["lamp"]
