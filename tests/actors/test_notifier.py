"""The notifier, in a real supervisor on a real broadcast, sending through real apprise to a real HTTP
receiver on 127.0.0.1 (apprise's json:// webhook)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from homehelper.actors import ActorRef, Broadcast, ChildSpec, Supervisor
from homehelper.actors.notifier import Notifier
from homehelper.config import NotifyConfig
from homehelper.errors import Conflict, TooManyRequests
from homehelper.messages import (
    AlertRaised,
    AppCrashed,
    AppInstallFailed,
    AppQuarantined,
    AppStarted,
    NotificationFailed,
    SendTestNotification,
    StateFileDamaged,
)
from tests.fixtures.receiver import closed_port


@attrs.define
class Tree:
    broadcast: Broadcast
    ref: ActorRef[Any]
    actor: Notifier


@pytest.fixture
async def start(nursery: trio.Nursery) -> AsyncIterator[Any]:
    async def make(**config: Any) -> Tree:
        broadcast = Broadcast()
        sup = Supervisor("root", emit=broadcast.publish)
        await nursery.start(sup.run)
        notifier = Notifier(NotifyConfig(**config), broadcast)  # following from here, as serve.py builds it
        ref = sup.start_child(ChildSpec("notifier", lambda: notifier))
        return Tree(broadcast, ref, notifier)

    yield make


async def test_a_crash_reaches_a_real_receiver_naming_the_app_and_what_happened(start, receiver) -> None:
    tree = await start(urls=(receiver.url(),))
    tree.broadcast.publish(AppStarted("sensor-logger", 8100))  # routine: never a notification
    tree.broadcast.publish(AppCrashed("sensor-logger", exit_status=3, restarts=1, next_try_in=2.0))
    [(path, body)] = await receiver.wait(1)
    assert path == "/hook"
    assert "sensor-logger" in body["title"] and "crashed" in body["title"]
    assert "exit status 3" in body["message"] and body["type"] == "failure"


async def test_a_crash_loop_sends_one_message_then_one_summary_not_fifty(
        start, receiver, autojump_clock: trio.testing.MockClock) -> None:
    tree = await start(urls=(receiver.url(),), dedup_window=600.0)
    for n in range(50):
        tree.broadcast.publish(AppCrashed("flappy", exit_status=1, restarts=n, next_try_in=1.0))
    got = await receiver.wait(2)  # the clock jumps to the window's end: the summary goes
    assert len(got) == 2
    first, summary = got[0][1], got[1][1]
    assert "flappy crashed" in first["title"]
    assert "flappy" in summary["title"] and "49 more times in the last 10 min" in summary["message"]
    async with tree.actor.limiter:  # the send in flight (if any) has returned ...
        await trio.testing.wait_all_tasks_blocked()  # ... and the notifier has counted it
        assert tree.actor.sent == 2 and len(receiver.got) == 2
    assert tree.actor.throttle.next_due() is None  # nothing pending: no timer left running


async def test_past_the_rate_limit_one_summary_says_how_many_were_held_back(
        start, receiver, autojump_clock: trio.testing.MockClock) -> None:
    tree = await start(urls=(receiver.url(),), rate_limit=3, rate_window=600.0)
    for n in range(7):  # seven different apps: no deduplication, the rate limit alone
        tree.broadcast.publish(AppInstallFailed(f"app-{n}", "pip failed"))
    got = await receiver.wait(4)
    assert len(got) == 4
    assert [b["title"] for _, b in got[:3]] == [f"app-{n}: install failed" for n in range(3)]
    assert "4 more notifications were held back" in got[3][1]["message"]
    assert "4 app install failed" in got[3][1]["message"]


async def test_each_kind_goes_where_its_route_says(start, receiver) -> None:
    tree = await start(urls=(f"phone={receiver.url('phone')}", f"mail,archive={receiver.url('mail')}"),
                       routes=(("alert_raised", ("phone",)), ("state_file_damaged", ())))
    tree.broadcast.publish(AlertRaised("temperature:cpu", "careful", 50.0, 45.0, "cpu at 50"))  # below min_level
    tree.broadcast.publish(StateFileDamaged("/x/ports.json", None, "rebuilt"))  # routed nowhere: muted
    tree.broadcast.publish(AlertRaised("throttled", "warning", 2.0, 1.0, "under-voltage now: check the power supply"))
    tree.broadcast.publish(AppInstallFailed("weather", "no space left"))  # no route: every URL
    got = await receiver.wait(3)
    by_path: dict[str, list[str]] = {}
    for path, body in got:
        by_path.setdefault(path, []).append(body["message"])
    assert sorted(by_path["/phone"]) == sorted(["under-voltage now: check the power supply",
                                                "Installing app weather failed: no space left"])
    assert by_path["/mail"] == ["Installing app weather failed: no space left"]
    await tree.ref.ask(SendTestNotification(), timeout=30)  # everything before it has been sent
    assert not any("cpu at 50" in b["message"] or "ports.json" in b["message"] for _, b in receiver.got)


async def test_a_receiver_that_is_down_is_an_event_and_the_notifier_carries_on(start, receiver) -> None:
    down = f"json://user:hunter2@127.0.0.1:{closed_port()}/hook"
    tree = await start(urls=(down, receiver.url()))
    with tree.broadcast.subscribe(16, accept=lambda e: isinstance(e, NotificationFailed)) as failures:
        tree.broadcast.publish(AppQuarantined("flappy", restarts=5, retry_in=300.0, error="boom"))
        failed = await failures.receive()
    assert "hunter2" not in failed.url and "127.0.0.1" in failed.url  # the URL's secret stays out
    assert failed.error and "flappy" in failed.title
    [(_, body)] = await receiver.wait(1)  # the other URL still got it
    assert "held stopped" in body["message"] and "boom" in body["message"]
    reply = await tree.ref.ask(SendTestNotification(), timeout=30)  # alive, and says which URL failed
    assert reply["sent"] == 1
    assert [r["ok"] for r in reply["results"]] == [False, True]
    assert "hunter2" not in json.dumps(reply)


async def test_the_test_notification_without_urls_or_past_the_rate_limit_is_refused(start, receiver) -> None:
    tree = await start()
    with pytest.raises(Conflict, match=r"notify\.urls"):
        await tree.ref.ask(SendTestNotification(), timeout=10)
    tree = await start(urls=(receiver.url(),), rate_limit=1)
    assert (await tree.ref.ask(SendTestNotification(), timeout=30))["sent"] == 1
    with pytest.raises(TooManyRequests):
        await tree.ref.ask(SendTestNotification(), timeout=10)
    assert receiver.got[0][1]["title"] == "HomeHelper test notification"
