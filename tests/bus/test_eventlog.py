"""The in-process event history."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.eventlog import EventLog
from homehelper.errors import BadRequest
from homehelper.messages import AppHeartbeat, AppStarted, AppStopped, BusMessage, GetEventHistory


async def test_ring_keeps_the_newest_events_newest_last():
    broadcast = Broadcast()
    async with trio.open_nursery() as nursery:
        root = Supervisor("root")
        await nursery.start(root.run)
        ref = root.start_child(ChildSpec("eventlog", lambda: EventLog(broadcast, 5)))
        await trio.testing.wait_all_tasks_blocked()
        for i in range(8):
            broadcast.publish(AppStarted(f"a{i}", 8100 + i))
        broadcast.publish(AppHeartbeat("a7"))  # too frequent for history
        broadcast.publish(BusMessage("c", "a7", 1))
        broadcast.publish(object())  # not an event (runtime records): ignored
        got = await ref.ask(GetEventHistory(10))
        assert [e["app_id"] for e in got] == ["a3", "a4", "a5", "a6", "a7"]
        assert got[-1] == {"kind": "app_started", "app_id": "a7", "port": 8107, "reason": "user", "at": got[-1]["at"]}
        broadcast.publish(AppStopped("a5", "user"))
        assert [e["kind"] for e in await ref.ask(GetEventHistory(2))] == ["app_started", "app_stopped"]
        assert [e["kind"] for e in await ref.ask(GetEventHistory(10, app_id="a5"))] == ["app_started", "app_stopped"]
        assert [e["app_id"] for e in await ref.ask(GetEventHistory(10, kind="app_stopped"))] == ["a5"]
        for bad in (0, -1, 10_001, "5", True):
            with pytest.raises(BadRequest):
                await ref.ask(GetEventHistory(bad))  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()


async def test_records_from_construction_and_across_restarts():
    broadcast = Broadcast()
    log = EventLog(broadcast, 3)
    broadcast.publish(AppStarted("early", None))  # before the supervisor started it
    async with trio.open_nursery() as nursery:
        root = Supervisor("root")
        await nursery.start(root.run)
        root.start_child(ChildSpec("eventlog", lambda: log))
        await trio.testing.wait_all_tasks_blocked()
        for i in range(100):
            broadcast.publish(AppStarted(f"a{i}", None))
        assert log.sub.pending() == 0 and log.seq == 101  # nothing queued, no task woken per event
        assert [e["app_id"] for e in log.recent(5)] == ["a97", "a98", "a99"]
        await root.stop_child("eventlog")
        assert broadcast.subscribers == 0
        broadcast.publish(AppStarted("while-stopped", None))
        root.start_child(ChildSpec("eventlog", lambda: log))
        await trio.testing.wait_all_tasks_blocked()
        broadcast.publish(AppStarted("after", None))
        assert [e["app_id"] for e in log.recent(5)] == ["a98", "a99", "after"]  # the ring survived the restart
        nursery.cancel_scope.cancel()


def test_each_events_json_is_made_once_and_a_reader_cannot_change_the_ring(monkeypatch):
    made = []
    to_json = AppStarted.to_json

    def counted(self):
        made.append(self.app_id)
        return to_json(self)

    monkeypatch.setattr(AppStarted, "to_json", counted)
    broadcast = Broadcast()
    log = EventLog(broadcast, 10)
    for i in range(3):
        broadcast.publish(AppStarted(f"a{i}", None))
    first = log.recent(50)
    first[0]["app_id"] = "changed by a reader"
    again = log.recent(50)
    assert [e["app_id"] for e in again] == ["a0", "a1", "a2"]
    assert made == ["a2", "a1", "a0"]  # once each, at the first read; the second read made none
    broadcast.publish(AppStarted("a3", None))
    assert [e["app_id"] for e in log.recent(2)] == ["a2", "a3"] and made[-1] == "a3" and len(made) == 4
