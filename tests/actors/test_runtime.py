"""tell / ask / mailbox semantics of the actor runtime."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from homehelper.actors import (
    Actor,
    ActorCrashed,
    ActorTimeout,
    ChildSpec,
    MailboxClosed,
    MailboxFull,
    Supervisor,
    open_mailbox,
)
from homehelper.errors import NotFound


class Echo(Actor):
    name = "echo"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def handle(self, msg: Any) -> Any:
        match msg:
            case ("sleep", seconds):
                await trio.sleep(seconds)
                return "slept"
            case "missing":
                raise NotFound("no such thing")
            case "boom":
                raise RuntimeError("boom")
            case "seen":
                return list(self.seen)
            case _:
                self.seen.append(msg)
                return msg


async def test_tell_then_ask_sees_messages_in_order() -> None:
    ref, inbox = open_mailbox("echo", 8)
    async with trio.open_nursery() as n:
        n.start_soon(Echo().run, inbox)
        for i in range(5):
            await ref.tell(i)
        assert await ref.ask("seen") == [0, 1, 2, 3, 4]
        n.cancel_scope.cancel()


async def test_domain_error_goes_to_the_asker_and_the_actor_carries_on() -> None:
    ref, inbox = open_mailbox("echo", 8)
    async with trio.open_nursery() as n:
        n.start_soon(Echo().run, inbox)
        with pytest.raises(NotFound, match="no such thing"):
            await ref.ask("missing")
        assert await ref.ask("still here") == "still here"
        n.cancel_scope.cancel()


async def test_ask_times_out(autojump_clock: trio.testing.MockClock) -> None:
    ref, inbox = open_mailbox("echo", 8)
    async with trio.open_nursery() as n:
        n.start_soon(Echo().run, inbox)
        with pytest.raises(ActorTimeout, match="within 1 s"):
            await ref.ask(("sleep", 5), timeout=1)
        n.cancel_scope.cancel()


async def test_crash_is_reported_to_the_asker_and_the_supervisor_restarts() -> None:
    sup = Supervisor("t")
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        ref = sup.start_child(ChildSpec("echo", Echo))
        await ref.tell("kept?")
        with pytest.raises(ActorCrashed, match="boom"):
            await ref.ask("boom")
        # the same ref reaches the restarted actor, which starts with fresh state
        with trio.fail_after(5):
            assert await ref.ask("seen") == []
        n.cancel_scope.cancel()


async def test_tell_nowait_reports_a_full_mailbox() -> None:
    ref, _inbox = open_mailbox("slow", 2)
    ref.tell_nowait(1)
    ref.tell_nowait(2)
    with pytest.raises(MailboxFull):
        ref.tell_nowait(3)


async def test_tell_blocks_while_the_mailbox_is_full() -> None:
    ref, inbox = open_mailbox("slow", 1)
    await ref.tell(1)
    with trio.move_on_after(0.05) as scope:
        await ref.tell(2)
    assert scope.cancelled_caught  # back-pressure, not an unbounded queue
    assert inbox.receive_nowait() == 1


async def test_a_stopped_child_refuses_messages() -> None:
    sup = Supervisor("t")
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        ref = sup.start_child(ChildSpec("echo", Echo))
        assert await ref.ask(1) == 1
        await sup.stop_child("echo")
        with pytest.raises(MailboxClosed):
            await ref.tell(2)
        n.cancel_scope.cancel()


def test_mailboxes_are_bounded() -> None:
    with pytest.raises(ValueError):
        open_mailbox("x", float("inf"))  # type: ignore[arg-type]


async def test_an_ask_into_a_full_mailbox_waits_for_room_within_its_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    ref, inbox = open_mailbox("slow", 1)
    await ref.tell("first")  # full, and nobody reads
    with pytest.raises(ActorTimeout, match="within 2 s"):
        await ref.ask("second", timeout=2)
    assert inbox.receive_nowait() == "first"
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()  # the timed-out ask left nothing behind


async def test_an_already_cancelled_caller_sends_no_ask() -> None:
    ref, inbox = open_mailbox("echo", 8)
    with trio.CancelScope() as scope:
        scope.cancel()
        await ref.ask("never")
    assert scope.cancelled_caught
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_an_ask_to_a_closed_mailbox_is_refused_at_once() -> None:
    ref, inbox = open_mailbox("gone", 8)
    await inbox.aclose()
    with pytest.raises(MailboxClosed):
        await ref.ask("anyone?")
