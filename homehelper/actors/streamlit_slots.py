"""The Streamlit slots: how many Streamlit apps may run at once, and who makes room.

Every StreamlitApp asks it for a slot before it spawns. At the cap, the least
recently used idle app is stopped with reason `evicted`; if every running app
was used within `busy_window`, the open is refused with a reason a person can
act on. Low available memory evicts idle apps too (checked on each open, and
every `MEMORY_CHECK` seconds only while some Streamlit app runs).

Apps found running after a HomeHelper restart are the backend's (a unit, or a
process backend record): their actors adopt them and take their slots with
`ReserveSlot(adopted=True)`, which never evicts nor refuses. A manager restarted by
its supervisor asks the app actors which of them run, before it answers anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psutil
import trio

from ..actors.runtime import Actor, ActorError
from ..config import Config
from ..errors import BadRequest, Unavailable
from ..messages import GetApp, GetSlots, ReleaseSlot, ReserveSlot, StopApp

log = logging.getLogger(__name__)

MEMORY_CHECK = 30.0
SNAPSHOT_TIMEOUT = 2.0


def available_mb() -> float:
    return psutil.virtual_memory().available / (1024 * 1024)


class StreamlitSlots(Actor):
    name = "slots"

    def __init__(self, config: Config, memory: Callable[[], float] = available_mb,
                 memory_check: float = MEMORY_CHECK, apps: Any = None,
                 live: Callable[[], Config] | None = None) -> None:
        self._config = config
        self.live = live  # where a config changed at run time is read from (serve.py's AppContext)
        self.apps = apps  # the apps Supervisor: after a restart, the running apps get their slots back
        self.memory = memory
        self.memory_check = memory_check
        self.slots: dict[str, tuple[Any, float]] = {}  # app_id -> (ref, reserved at)
        self.some_running = trio.Event()
        self.lock = trio.Lock()  # the memory watcher and the mailbox both evict: one at a time

    @property
    def config(self) -> Config:
        return self.live() if self.live is not None else self._config

    @property
    def cfg(self) -> Any:
        return self.config.streamlit

    async def on_start(self, nursery: trio.Nursery) -> None:
        for app_id in list(self.apps.children()) if self.apps is not None else []:
            # this manager restarted while these ran: they still count (none at HomeHelper's start)
            ref = self.apps.ref(app_id)
            try:
                snap = await ref.ask(GetApp(app_id), timeout=SNAPSHOT_TIMEOUT)
            except ActorError:
                continue  # busy starting (it asks us for its slot next) or gone
            if snap.get("type") == "streamlit" and snap.get("state") in ("starting", "running", "stopping"):
                self.slots[app_id] = (ref, trio.current_time())
                self.some_running.set()
        nursery.start_soon(self._watch_memory)

    async def handle(self, msg: Any) -> Any:
        match msg:
            case ReserveSlot(app_id, ref, adopted=True):
                self.slots.setdefault(app_id, (ref, trio.current_time()))
                self.some_running.set()
            case ReserveSlot(app_id, ref):
                async with self.lock:
                    await self._reserve(app_id, ref)
            case ReleaseSlot(app_id):
                self.slots.pop(app_id, None)
            case GetSlots():
                now = trio.current_time()
                return {a: now - t for a, (_, t) in self.slots.items()}
            case _:
                raise BadRequest(f"slots: unknown message {type(msg).__name__}")

    async def _reserve(self, app_id: str, ref: Any) -> None:
        if app_id in self.slots:
            return
        await self._relieve_memory(exclude=app_id)
        free = self.memory()
        if free < self.cfg.min_available_mb:
            raise Unavailable(f"cannot open {app_id}: only {free:.0f} MB of memory available "
                              f"(floor {self.cfg.min_available_mb} MB) and no idle Streamlit app to stop",
                              app=app_id, available_mb=round(free))
        while len(self.slots) >= self.cfg.max_running:
            victim = await self._least_recently_used(exclude=app_id)
            if victim is None:
                names = ", ".join(sorted(self.slots))
                raise Unavailable(
                    f"cannot open {app_id}: {len(self.slots)} Streamlit apps are running ({names}), the most "
                    f"allowed (streamlit.max_running), and each was used in the last "
                    f"{self.cfg.busy_window:g} s; close one first", app=app_id, running=sorted(self.slots))
            await self._evict(victim)
        self.slots[app_id] = (ref, trio.current_time())
        self.some_running.set()

    async def _idle_for(self) -> dict[str, float]:
        """Seconds since each slot holder's last user activity (from its snapshot)."""
        out: dict[str, float] = {}
        for app_id, (ref, _) in list(self.slots.items()):
            try:
                snap = await ref.ask(GetApp(app_id), timeout=SNAPSHOT_TIMEOUT)
            except ActorError:
                continue  # busy (starting, stopping) or gone: not a candidate
            if snap.get("state") == "running" and snap.get("idle_for") is not None:
                out[app_id] = float(snap["idle_for"])
        return out

    async def _least_recently_used(self, exclude: str) -> str | None:
        idle = {a: t for a, t in (await self._idle_for()).items()
                if a != exclude and t >= self.cfg.busy_window}
        return max(idle, key=lambda a: idle[a]) if idle else None

    async def _evict(self, app_id: str) -> None:
        ref, _ = self.slots.pop(app_id)
        log.info("evicting Streamlit app %s", app_id)
        try:
            await ref.ask(StopApp(app_id, reason="evicted"), timeout=self.cfg.stop_grace + 5)
        except ActorError as exc:
            log.warning("evicting %s: %s", app_id, exc)

    async def _relieve_memory(self, exclude: str | None = None) -> None:
        while self.slots and self.memory() < self.cfg.min_available_mb:
            victim = await self._least_recently_used(exclude=exclude or "")
            if victim is None:
                return
            log.warning("available memory below %s MB: stopping idle Streamlit app %s",
                        self.cfg.min_available_mb, victim)
            await self._evict(victim)

    async def _watch_memory(self) -> None:
        while True:
            await self.some_running.wait()
            await trio.sleep(self.memory_check)
            if not self.slots:
                self.some_running = trio.Event()  # sleep until an app runs again: no idle timer
                continue
            async with self.lock:
                await self._relieve_memory()
