"""The TTL clock: named deadlines that fire a message to their owner.

One task sleeps until the earliest deadline; touching a deadline only moves a
number (the heap is cleaned lazily), so keep-alives on every request are cheap.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import trio

from ..errors import BadRequest
from ..messages import CancelDeadline, GetDeadlines, ScheduleDeadline, TouchDeadline
from . import Actor, ActorError


class _Deadline:
    __slots__ = ("delay", "due", "message", "owner")

    def __init__(self, delay: float, due: float, owner: Any, message: Any) -> None:
        self.delay, self.due, self.owner, self.message = delay, due, owner, message


class TTLClock(Actor):
    name = "ttl"

    def __init__(self) -> None:
        self.deadlines: dict[str, _Deadline] = {}
        self.heap: list[tuple[float, str]] = []
        self.wake = trio.Event()

    async def on_start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._timer)

    async def handle(self, msg: Any) -> Any:
        now = trio.current_time()
        match msg:
            case ScheduleDeadline(key, delay, owner, message):
                self.deadlines[key] = _Deadline(delay, now + delay, owner, message)
                self._push(key, now + delay)
            case TouchDeadline(key, delay):
                d = self.deadlines.get(key)
                if d is not None:
                    if delay is not None:
                        d.delay = delay
                    earlier = now + d.delay < d.due
                    d.due = now + d.delay
                    if earlier:
                        self._push(key, d.due)
                    # a later due needs no push: the timer re-queues it when the old entry comes up
            case CancelDeadline(key):
                self.deadlines.pop(key, None)
            case GetDeadlines():
                return {k: max(0.0, d.due - now) for k, d in self.deadlines.items()}
            case _:
                raise BadRequest(f"ttl: unknown message {type(msg).__name__}")

    def _push(self, key: str, due: float) -> None:
        if not self.heap or due < self.heap[0][0]:
            self.wake.set()
        heapq.heappush(self.heap, (due, key))

    async def _timer(self) -> None:
        while True:
            next_due = self.heap[0][0] if self.heap else math.inf
            with trio.move_on_at(next_due):
                await self.wake.wait()
            self.wake = trio.Event()
            now = trio.current_time()
            while self.heap and self.heap[0][0] <= now:
                _due, key = heapq.heappop(self.heap)
                d = self.deadlines.get(key)
                if d is None:
                    continue
                if d.due > now:  # touched since: re-queue at its new time
                    heapq.heappush(self.heap, (d.due, key))
                    continue
                del self.deadlines[key]
                try:
                    d.owner.tell_nowait(d.message)
                except ActorError:
                    pass  # the owner is gone or swamped; a deadline is not worth blocking the clock
