"""A failed tell is said out loud and the actor carries on; a crash reaches the event log as an Event."""

from __future__ import annotations

import json
from typing import Any

import trio

from homehelper.actors import Actor, Broadcast, ChildCrashed, ChildSpec, CommandFailed, RestartPolicy, Supervisor
from homehelper.actors.eventlog import EventLog
from homehelper.errors import Unavailable
from homehelper.messages import ChildQuarantined, ChildRestarting, Event, GetEventHistory, OpenUI


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


async def _wait_for(sub: Any, cls: type) -> Any:
    with trio.fail_after(5):
        async for ev in sub:
            if isinstance(ev, cls):
                return ev
    raise AssertionError("subscription ended")


async def test_a_tell_that_raises_a_domain_error_is_published_and_the_actor_carries_on() -> None:
    bus = Broadcast()
    sub = bus.subscribe()
    async with trio.open_nursery() as nursery:
        sup = Supervisor("apps", emit=bus.publish)
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("lamp", Refuser))
        assert await ref.ask("count") == 1
        await ref.tell(OpenUI("lamp"))
        ev = await _wait_for(sub, CommandFailed)
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
    bus = Broadcast()
    log = EventLog(bus, 100)
    policy = RestartPolicy(intensity=1, period=60, backoff_initial=0.01, quarantine_retry=3600)
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=bus.publish)
        await nursery.start(root.run)
        events = root.start_child(ChildSpec("eventlog", lambda: log))
        sup = Supervisor("apps", policy, emit=bus.publish)
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("lamp", Refuser))
        sub = bus.subscribe()
        await ref.tell("boom")
        crashed = await _wait_for(sub, ChildCrashed)
        assert (crashed.supervisor, crashed.child, crashed.start) == ("apps", "lamp", 1)
        assert "a bug" in crashed.error
        await _wait_for(sub, ChildRestarting)
        assert await ref.ask("count") == 1  # restarted, fresh state
        await ref.tell("boom")
        await _wait_for(sub, ChildQuarantined)  # past the intensity
        history = await events.ask(GetEventHistory(50))
        kinds = [e["kind"] for e in history]
        assert kinds.count("child_crashed") == 2
        assert "child_restarting" in kinds and "child_quarantined" in kinds
        assert "child_started" not in kinds  # routine lifecycle stays out of the history
        record = next(e for e in history if e["kind"] == "child_crashed")
        assert json.loads(json.dumps(record)) == record
        assert record["child"] == "lamp" and "a bug" in record["error"] and isinstance(record["at"], float)
        nursery.cancel_scope.cancel()
