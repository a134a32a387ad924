"""The ask's one-shot reply and the one deadline keeper that all pending asks share.

A cancel scope per ask halves the rate of asks (a scope registers its deadline with the scheduler
and a cancel status with the task, on every ask). Instead the asker parks itself
(`wait_task_rescheduled`), the actor's reply reschedules it directly, and the deadlines of all
pending asks of a trio run sit in one list watched by one system task: it sleeps until the
earliest deadline and fails the asks still waiting then. It is woken only by a deadline earlier
than the one it sleeps towards (with one ask timeout in use, only the first ask after it went
idle), and sleeps for good once no ask waits: no timer nobody needs.
"""

from __future__ import annotations

import math
from typing import Any

import trio
from trio.lowlevel import Abort, RunVar, reschedule, spawn_system_task

from ._errors import ActorTimeout

# The states of a request.
_SENT = 0  # in the mailbox; the asker is not parked (yet)
_PARKED = 1  # the asker waits for the reply
_DONE = 2  # answered, failed or timed out: a later reply is dropped
_ABANDONED = 3  # the asker was cancelled: a later reply is dropped


class _Ask:
    """A request waiting for one reply."""

    __slots__ = ("deadline", "error", "msg", "name", "state", "task", "timeout", "value")

    def __init__(self, msg: object, name: str, timeout: float, deadline: float) -> None:
        self.msg = msg
        self.name = name
        self.timeout = timeout
        self.deadline = deadline
        self.state = _SENT
        self.task: Any = None
        self.value: Any = None
        self.error: BaseException | None = None

    def reply(self, value: object) -> None:
        state = self.state
        if state < _DONE:
            self.value = value
            self.state = _DONE
            if state == _PARKED:
                reschedule(self.task)

    def fail(self, error: BaseException) -> None:
        state = self.state
        if state < _DONE:
            self.error = error
            self.state = _DONE
            if state == _PARKED:
                reschedule(self.task)

    def abort(self, _raise_cancel: object) -> Abort:
        # The asker is cancelled (its own scope): it leaves; a reply coming later is dropped.
        self.state = _ABANDONED
        return Abort.SUCCEEDED


class _Keeper:
    """The pending asks of one trio run that have a deadline, and the task that enforces them."""

    def __init__(self) -> None:
        self._pending: list[_Ask] = []  # in the order asked; answered ones are dropped now and then
        self._compact_at = 64
        self._wake_at = math.inf  # the deadline of the keeper's sleep: the earliest pending one
        self._scope = trio.CancelScope()

    def add(self, req: _Ask) -> None:
        pending = self._pending
        pending.append(req)
        if len(pending) >= self._compact_at:  # answered asks leave their entries behind: drop them
            pending[:] = [r for r in pending if r.state == _PARKED or r.state == _SENT]
            self._compact_at = max(64, 2 * len(pending))
        if req.deadline < self._wake_at:
            self._wake_at = self._scope.deadline = req.deadline

    async def run(self) -> None:
        while True:
            with self._scope:
                await trio.sleep_forever()
            now = trio.current_time()
            waiting = []
            for req in self._pending:
                if req.state != _PARKED:
                    continue
                if req.deadline <= now:
                    req.fail(ActorTimeout(req.name, req.msg, req.timeout))
                else:
                    waiting.append(req)
            self._pending = waiting
            self._compact_at = max(64, 2 * len(waiting))
            self._wake_at = min((r.deadline for r in waiting), default=math.inf)
            self._scope = trio.CancelScope(deadline=self._wake_at)


_KEEPER: RunVar[_Keeper] = RunVar("homehelper_ask_keeper")


def keeper() -> _Keeper:
    try:
        return _KEEPER.get()
    except LookupError:
        keeper = _Keeper()
        _KEEPER.set(keeper)
        spawn_system_task(keeper.run, name="homehelper ask deadlines")
        return keeper
