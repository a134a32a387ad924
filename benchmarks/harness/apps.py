"""Starting a tree's service apps all at once and waiting until each is healthy, as the startup
and starting benchmarks both do; and the bare side's wait: /health polled every 5 ms."""

from __future__ import annotations

from typing import Any

import httpx
import trio

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


async def all_healthy(http: httpx.AsyncClient, ports: list[int]) -> None:
    """Until each port's /health answers 200, polled every POLL seconds (the baselines' readiness)."""
    async def healthy(port: int) -> None:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(POLL)

    async with trio.open_nursery() as polls:
        for port in ports:
            polls.start_soon(healthy, port)
