"""Actors: a trio task that owns a bounded mailbox, reached through an ActorRef.

The mailbox outlives the actor object: a supervisor that restarts a child keeps
its channel, so every ActorRef handed out stays valid across restarts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio
from trio.lowlevel import current_task, wait_task_rescheduled

from ._ask import _PARKED, _SENT, _Ask, keeper
from ._errors import ActorCrashed, ActorTimeout, MailboxClosed, MailboxFull
from ._events import CommandFailed

log = logging.getLogger(__name__)

M = TypeVar("M")

DEFAULT_MAILBOX = 256
DEFAULT_ASK_TIMEOUT = 10.0


class ActorRef(Generic[M]):
    """The address of an actor: `tell` to send, `ask` to request a reply."""

    __slots__ = ("_send", "name")

    def __init__(self, name: str, send: trio.MemorySendChannel[Any]) -> None:
        self.name = name
        self._send = send

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"

    async def tell(self, msg: M) -> None:
        """Send and forget; waits while the mailbox is full (back-pressure)."""
        try:
            await self._send.send(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise MailboxClosed(self.name) from None

    def tell_nowait(self, msg: M) -> None:
        """Send without waiting, for callers that must never block (callbacks, threads)."""
        try:
            self._send.send_nowait(msg)
        except trio.WouldBlock:
            raise MailboxFull(self.name) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise MailboxClosed(self.name) from None

    async def ask(self, msg: M, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send and wait for the reply; the actor's error is raised here."""
        # The hot path of every snapshot: a mailbox with room takes the request at once, and the wait
        # needs no cancel scope of its own (_ask.py: one deadline keeper for all pending asks).
        await trio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller sends nothing
        deadline = trio.current_time() + timeout
        req = _Ask(msg, self.name, timeout, deadline)
        try:
            try:
                self._send.send_nowait(req)
            except trio.WouldBlock:  # full: wait for room (back-pressure), within the timeout
                with trio.CancelScope(deadline=deadline) as scope:
                    await self._send.send(req)
                if scope.cancelled_caught:
                    raise ActorTimeout(self.name, msg, timeout) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise MailboxClosed(self.name) from None
        if req.state == _SENT:  # not answered while a full mailbox made us wait
            if deadline < math.inf:
                keeper().add(req)
            req.task = current_task()
            req.state = _PARKED
            await wait_task_rescheduled(req.abort)
        if req.error is not None:
            raise req.error
        return req.value


def _no_emit(event: object) -> None:
    pass


class Actor:
    """Base class: override `handle`; optionally `on_start` and `on_stop`.

    `handle` returns the reply to an `ask` (ignored for a `tell`). An exception
    that is an `ActorError` (a domain error, see `is_reply_error`) goes back to
    the asker and the actor carries on; for a `tell`, nobody waits for it, so it
    is logged and published as a `CommandFailed` event through `emit_event`
    (its supervisor's `emit`). Any other exception crashes the actor, so its
    supervisor can restart it with fresh state.
    """

    name: str = "actor"
    mailbox_size: int = DEFAULT_MAILBOX
    emit_event: Callable[[object], None] = staticmethod(_no_emit)  # set by the supervisor before `run`

    async def on_start(self, nursery: trio.Nursery) -> None:
        """Called once per (re)start, before the first message."""

    async def on_stop(self) -> None:
        """Called when the actor ends normally or is cancelled (shielded, keep it short)."""

    async def handle(self, msg: Any) -> Any:
        raise NotImplementedError

    def is_reply_error(self, exc: BaseException) -> bool:
        """Errors that answer one request rather than break the actor."""
        return getattr(exc, "reply_error", False) is True

    async def run(self, inbox: trio.MemoryReceiveChannel[Any]) -> None:
        async with trio.open_nursery() as nursery:
            try:
                await self.on_start(nursery)
                async for item in inbox:
                    if type(item) is _Ask:
                        try:
                            item.reply(await self.handle(item.msg))
                        except Exception as exc:
                            if self.is_reply_error(exc):
                                item.fail(exc)
                                continue
                            item.fail(ActorCrashed(self.name, exc))
                            raise
                    else:
                        try:
                            await self.handle(item)
                        except Exception as exc:
                            if not self.is_reply_error(exc):
                                raise
                            self._tell_failed(item, exc)
                nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await self.on_stop()

    def _tell_failed(self, msg: object, exc: Exception) -> None:
        command = type(msg).__name__
        log.warning("%s: %s failed: %s", self.name, command, exc)
        detail = getattr(exc, "detail", None)
        app_id = getattr(msg, "app_id", None)
        self.emit_event(CommandFailed(
            self.name, command, str(exc) or type(exc).__name__,
            dict(detail) if isinstance(detail, dict) and detail else None,
            app_id if isinstance(app_id, str) else None))


def open_mailbox(name: str, size: int = DEFAULT_MAILBOX) -> tuple[ActorRef[Any], trio.MemoryReceiveChannel[Any]]:
    """A mailbox and its address; size 0 means unbuffered, math.inf is refused."""
    if size == math.inf:
        raise ValueError("mailboxes are bounded")
    send, recv = trio.open_memory_channel[Any](size)
    return ActorRef(name, send), recv
