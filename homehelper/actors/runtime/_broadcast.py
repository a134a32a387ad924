"""Fan-out of events to any number of subscribers, never blocking the publisher.

Each subscription is a bounded ring: a slow subscriber loses its oldest events
(counted in `dropped`), it never slows the actors that publish.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import trio
from trio.lowlevel import ParkingLot

DEFAULT_RING = 1024


class Subscription:
    """One subscriber's view of a Broadcast: iterate it, or take batches."""

    def __init__(self, broadcast: Broadcast, maxlen: int, accept: Callable[[Any], bool] | None) -> None:
        self._bus = broadcast
        self._queue: deque[Any] = deque(maxlen=maxlen)
        self._lot = ParkingLot()
        self._accept = accept
        self.dropped = 0
        self.closed = False

    def _push(self, event: Any) -> None:
        if self._accept is not None and not self._accept(event):
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)
        if self._lot:
            self._lot.unpark_all()

    def pending(self) -> int:
        return len(self._queue)

    async def receive(self) -> Any:
        while not self._queue:
            if self.closed:
                raise trio.EndOfChannel
            await self._lot.park()
        return self._queue.popleft()

    async def receive_batch(self, limit: int = 1000) -> list[Any]:
        """Wait for at least one event, then take up to `limit` queued ones."""
        while not self._queue:
            if self.closed:
                raise trio.EndOfChannel
            await self._lot.park()
        q = self._queue
        if len(q) <= limit:
            batch = list(q)
            q.clear()
            return batch
        return [q.popleft() for _ in range(limit)]

    def close(self) -> None:
        self.closed = True
        self._bus._subs.discard(self)
        self._lot.unpark_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Broadcast:
    """Publish from trio code; every open subscription gets each event."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    def publish(self, event: Any) -> None:
        self.published += 1
        for sub in tuple(self._subs):
            sub._push(event)

    def subscribe(self, maxlen: int = DEFAULT_RING, accept: Callable[[Any], bool] | None = None) -> Subscription:
        sub = Subscription(self, maxlen, accept)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)
