"""The in-process event history: the last `config.event_history` events in a ring.

It runs whether or not Redis does, so the dashboard always has history; the
bridge's Redis stream adds history that outlives a restart and spans nodes.
`recent(n)` is safe to call directly from trio code (the web layer does); the
GetEventHistory ask gives the same. Give its ChildSpec the one instance
(`lambda: event_log`) so a restart keeps the ring.
Heartbeats and apps' custom messages are left out (channels.NOT_HISTORY): they
are frequent enough to push everything else out of the ring.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from ..bus.channels import NOT_HISTORY
from ..errors import BadRequest
from ..messages import Event, GetEventHistory
from . import Actor, Broadcast

MAX_COUNT = 10_000


class EventLog(Actor):
    name = "eventlog"

    def __init__(self, broadcast: Broadcast, size: int = 1000) -> None:
        self.broadcast = broadcast
        # Each event with its JSON form, made at its first read and kept: the dashboard shows the
        # last 50 at every refresh, and events do not change (frozen).
        self.ring: deque[list[Any]] = deque(maxlen=max(size, 1))
        self.seq = 0  # events recorded since construction: lets a reader tell how many it missed
        # Recording starts now, not when the supervisor gets round to on_start, so the
        # events of the actors started just before are kept too. The filter records each
        # event as it is published and queues nothing: no task, no wake-up per event.
        self.sub = broadcast.subscribe(1, accept=self._record)

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.sub.closed:  # restarted (the same instance): record again, the ring is kept
            self.sub = self.broadcast.subscribe(1, accept=self._record)

    async def on_stop(self) -> None:
        self.sub.close()

    def _record(self, event: Any) -> bool:
        if isinstance(event, Event) and event.kind not in NOT_HISTORY:
            self.seq += 1
            self.ring.append([event, None])
        return False

    def recent(self, n: int = 100, app_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest `n` events (matching the filters) as dicts, newest last."""
        events = self.ring
        out: list[dict[str, Any]] = []
        for entry in reversed(events):
            event = entry[0]
            if (app_id is None or event.subject == app_id) and (kind is None or event.kind == kind):
                if entry[1] is None:
                    entry[1] = event.to_json()
                out.append(dict(entry[1]))  # a copy: what a reader changes is not kept
                if len(out) >= n:
                    break
        out.reverse()
        return out

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetEventHistory(count, app_id, kind):
                if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
                    raise BadRequest(f"count must be an integer from 1 to {MAX_COUNT}, got {count!r}")
                return self.recent(count, app_id, kind)
            case _:
                raise BadRequest(f"eventlog: unknown message {type(msg).__name__}")

