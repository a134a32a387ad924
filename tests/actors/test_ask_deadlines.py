"""Asks share one deadline keeper (runtime/_ask.py) instead of a cancel scope each."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from homehelper.actors import Actor, ActorTimeout, open_mailbox
from homehelper.actors.runtime import _ask


class Gate(Actor):
    """Answers ("wait", key) when the test opens that key's gate; anything else at once."""

    name = "gate"

    def __init__(self) -> None:
        self.gates: dict[str, trio.Event] = {}
        self.answered: list[Any] = []

    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, tuple) and msg[0] == "wait":
            await self.gates.setdefault(msg[1], trio.Event()).wait()
        self.answered.append(msg)
        return msg


async def test_each_pending_ask_times_out_at_its_own_deadline(autojump_clock: trio.testing.MockClock) -> None:
    # A long ask is pending when a shorter one arrives: the keeper must wake for the earlier deadline.
    ref, inbox = open_mailbox("gate", 8)
    ended: dict[str, float] = {}

    async def ask(key: str, timeout: float) -> None:
        with pytest.raises(ActorTimeout, match=f"within {timeout:g} s"):
            await ref.ask(("wait", key), timeout=timeout)
        ended[key] = trio.current_time()

    async with trio.open_nursery() as n:
        n.start_soon(Gate().run, inbox)
        start = trio.current_time()
        n.start_soon(ask, "long", 30)
        await trio.sleep(1)
        n.start_soon(ask, "short", 2)
        await trio.sleep(40)
        n.cancel_scope.cancel()
    assert ended["short"] - start == pytest.approx(3)
    assert ended["long"] - start == pytest.approx(30)


async def test_a_cancelled_asker_leaves_and_the_late_reply_is_dropped() -> None:
    gate = Gate()
    ref, inbox = open_mailbox("gate", 8)
    async with trio.open_nursery() as n:
        n.start_soon(gate.run, inbox)
        with trio.move_on_after(0.01) as scope:
            await ref.ask(("wait", "a"))
        assert scope.cancelled_caught
        gate.gates["a"].set()  # the actor answers nobody, and goes on
        assert await ref.ask("next") == "next"
        assert gate.answered == [("wait", "a"), "next"]
        n.cancel_scope.cancel()


async def test_an_answered_ask_does_not_time_out_later(autojump_clock: trio.testing.MockClock) -> None:
    gate = Gate()
    ref, inbox = open_mailbox("gate", 8)
    async with trio.open_nursery() as n:
        n.start_soon(gate.run, inbox)
        assert await ref.ask("quick", timeout=1) == "quick"
        await trio.sleep(5)  # past its deadline: the keeper finds nobody waiting
        assert await ref.ask("again", timeout=1) == "again"
        n.cancel_scope.cancel()


async def test_the_deadline_heap_stays_bounded_while_asks_are_answered() -> None:
    ref, inbox = open_mailbox("gate", 8)
    async with trio.open_nursery() as n:
        n.start_soon(Gate().run, inbox)
        for i in range(2000):
            await ref.ask(i)
        assert len(_ask._KEEPER.get()._pending) <= 64  # answered asks' entries are dropped, not kept for 10 s
        n.cancel_scope.cancel()
