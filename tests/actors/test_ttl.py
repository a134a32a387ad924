"""The TTL clock: deadlines fire to their owner unless touched or cancelled."""

from __future__ import annotations

import trio
import trio.testing

from homehelper.actors import open_mailbox
from homehelper.actors.ttl import TTLClock
from homehelper.messages import CancelDeadline, GetDeadlines, ScheduleDeadline, TouchDeadline


async def test_deadlines_fire_touch_and_cancel(autojump_clock: trio.testing.MockClock) -> None:
    clock_ref, clock_inbox = open_mailbox("ttl")
    owner, owner_inbox = open_mailbox("owner")
    fired: list[tuple[float, str]] = []

    async def collect() -> None:
        async for msg in owner_inbox:
            fired.append((trio.current_time(), msg))

    async with trio.open_nursery() as n:
        n.start_soon(TTLClock().run, clock_inbox)
        n.start_soon(collect)
        await clock_ref.tell(ScheduleDeadline("a", 10, owner, "a expired"))
        await clock_ref.tell(ScheduleDeadline("b", 20, owner, "b expired"))
        await clock_ref.tell(ScheduleDeadline("c", 5, owner, "c expired"))
        await trio.sleep(1)
        await clock_ref.tell(CancelDeadline("c"))
        await trio.sleep(7)  # t=8
        await clock_ref.tell(TouchDeadline("a"))  # a now due at 18
        left = await clock_ref.ask(GetDeadlines())
        assert round(left["a"]) == 10 and round(left["b"]) == 12 and "c" not in left
        await trio.sleep(30)
        n.cancel_scope.cancel()
    assert [(round(t), m) for t, m in fired] == [(18, "a expired"), (20, "b expired")]


async def test_touch_with_a_new_delay_and_reschedule(autojump_clock: trio.testing.MockClock) -> None:
    clock_ref, clock_inbox = open_mailbox("ttl")
    owner, owner_inbox = open_mailbox("owner")
    async with trio.open_nursery() as n:
        n.start_soon(TTLClock().run, clock_inbox)
        await clock_ref.tell(ScheduleDeadline("x", 100, owner, "late"))
        await clock_ref.tell(TouchDeadline("x", delay=3))
        await clock_ref.tell(ScheduleDeadline("y", 1, owner, "y"))
        await trio.sleep(2)
        assert owner_inbox.receive_nowait() == "y"
        await trio.sleep(2)
        assert owner_inbox.receive_nowait() == "late"
        n.cancel_scope.cancel()
