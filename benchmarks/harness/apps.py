"""Starting a tree's service apps all at once and waiting until each is healthy, as the startup
and starting benchmarks both do; and the bare side's wait: /health polled every 5 ms (or on a
schedule given) with the cheapest correct check, HomeHelper's own (backends/httpprobe.probe: one
HTTP/1.0 GET on a bare socket; an httpx request costs its caller about 2 ms of CPU, and a baseline
polling twenty apps with it every 5 ms would spend a core the measured side does not)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import trio

from homehelper.backends.httpprobe import probe
from homehelper.messages import AppHealthChanged, StartApp, StopApp

POLL = 0.005


class StartAll:
    """Asks every app's actor to start at once (as that many clicks would) and waits for each
    app's first healthy event on the broadcast; `stop` asks them all to stop."""

    def __init__(self, broadcast: Any, apps: Any, ids: list[str]) -> None:
        self.apps, self.ids = apps, ids
        self.healthy: set[str] = set()
        self._changed = trio.Event()
        broadcast.subscribe(1, accept=self._seen)

    def _seen(self, ev: Any) -> bool:
        if isinstance(ev, AppHealthChanged) and ev.healthy:
            self.healthy.add(ev.app_id)
            self._changed.set()
        return False

    async def start(self) -> None:
        self.healthy.clear()
        async with trio.open_nursery() as asks:
            for app_id in self.ids:
                asks.start_soon(lambda a=app_id: self.apps.ref(a).ask(StartApp(a), timeout=300))
        while len(self.healthy) < len(self.ids):
            self._changed = trio.Event()
            await self._changed.wait()

    def missing(self) -> str:
        return f"{len(self.healthy)} of {len(self.ids)} apps healthy: not {sorted(set(self.ids) - self.healthy)[:5]}"

    async def stop(self) -> None:
        async with trio.open_nursery() as asks:
            for app_id in self.ids:
                asks.start_soon(lambda a=app_id: self.apps.ref(a).ask(StopApp(a), timeout=60))


def every_poll() -> Iterator[float]:
    return itertools.repeat(POLL)


async def all_healthy(ports: list[int], pauses: Callable[[], Iterator[float]] = every_poll,
                      procs: Sequence[trio.Process] = ()) -> None:
    """Until each port's /health answers a 2xx (as HomeHelper's check), polled every POLL seconds or
    after each of `pauses()` (the baselines' readiness). `procs[i]` serves `ports[i]`: one that exits
    first is an error."""
    async def healthy(i: int, port: int) -> None:
        for pause in pauses():
            if (await probe(port, "/health", timeout=1.0))[0]:
                return
            if i < len(procs) and procs[i].poll() is not None:
                raise RuntimeError(f"the bare app on port {port} exited ({procs[i].returncode}) before it answered")
            await trio.sleep(pause)

    async with trio.open_nursery() as polls:
        for i, port in enumerate(ports):
            polls.start_soon(healthy, i, port)
