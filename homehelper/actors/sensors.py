"""The sensor actor: machine health, per-app resources, alerts and a short history.

It samples in the background every `monitor.interval` seconds (alerts and the
history ring need a steady series) and takes a fresh sample when asked (a
refresh click). It follows AppProcessChanged / AppStopped / AppRemoved on the
broadcast to know each app's process or cgroup, and measures the CPU its own
sampling costs. It never writes to disk. Each reading, as the panel shows it,
goes to the machine's read model (machineview.py), which the web reads.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ..config import Config, MonitorConfig
from ..errors import BadRequest
from ..messages import (
    AppProcessChanged,
    AppRemoved,
    AppStopped,
    GetHistory,
    GetSystemSnapshot,
    SetMonitorConfig,
    SystemSampled,
)
from ..monitor.apps import ProcessTable
from ..monitor.metrics import install_space
from ..monitor.pi import PiPaths
from ..monitor.system import SystemSampler, history_point
from ..monitor.thresholds import MachineAlerts
from . import Actor, Broadcast, Subscription
from .machineview import MachineView

log = logging.getLogger(__name__)

def _follows(event: object) -> bool:
    return isinstance(event, ProcessTable.FOLLOWED)


class SensorActor(Actor):
    name = "sensors"
    sampler: SystemSampler  # built in on_start: its first CPU reading is the baseline

    def __init__(self, config: Config, emit: Callable[[object], None], broadcast: Broadcast | None = None,
                 table: ProcessTable | None = None, pi: PiPaths | None = None, proc: Path = Path("/proc"),
                 view: MachineView | None = None) -> None:
        self.config = config
        self.monitor: MonitorConfig = config.monitor
        self.emit = emit
        self.broadcast = broadcast
        self.table = table if table is not None else ProcessTable()
        self.pi_paths = pi
        self.proc = proc
        self.view = view if view is not None else MachineView()  # serve.py's outlives a restarted actor
        self.health = MachineAlerts(self.monitor)
        self.history: deque[tuple[Any, ...]] = deque(maxlen=max(1, self.monitor.history))
        self.last: dict[str, Any] | None = None
        self.last_at = 0.0  # trio time of `last`
        self.cost = 0.0  # CPU seconds spent sampling (this thread's time)
        self.samples = 0
        self.started_at = 0.0
        self._proc_cpu: tuple[float, float] | None = None  # (process CPU s, monotonic) at the last snapshot
        self._reschedule = trio.Event()

    async def on_start(self, nursery: trio.Nursery) -> None:
        self.started_at = time.monotonic()
        self.sampler = self._timed(lambda: SystemSampler(self.table, self.pi_paths, self.proc))
        if self.table.subscription is not None:  # serve.py's: it outlives this actor
            nursery.start_soon(self._follow, self.table.subscription)
        elif self.broadcast is not None:
            nursery.start_soon(self._follow_own, self.broadcast.subscribe(maxlen=1024, accept=_follows))
        nursery.start_soon(self._background)

    async def _follow(self, sub: Subscription) -> None:
        async for event in sub:
            self.table.apply(event)

    async def _follow_own(self, sub: Subscription) -> None:
        with sub:
            await self._follow(sub)

    async def _background(self) -> None:
        """One sample per interval; interval 0 turns background sampling (and alerts) off."""
        while True:
            interval = self.monitor.interval
            with trio.move_on_after(interval if interval > 0 else float("inf")):
                await self._reschedule.wait()
                self._reschedule = trio.Event()
                continue
            self.sample(background=True)

    def _timed(self, fn: Callable[[], Any]) -> Any:
        started = time.thread_time()
        try:
            return fn()
        finally:
            self.cost += time.thread_time() - started

    def sample(self, background: bool) -> dict[str, Any]:
        """Take a sample; a background one also feeds the alerts and the history."""
        data = self._timed(self.sampler.sample)
        self.samples += 1
        self.last, self.last_at = data, trio.current_time()
        if background:
            self.history.append(history_point(data))
            self.view.show_ring(tuple(self.history))
            for event in self._timed(lambda: self.health.update(data, self.last_at)):
                log.log(logging.INFO if event.kind == "alert_cleared" else logging.WARNING, "%s", event)
                self.emit(event)
        self._show()
        if background:  # a plain record (not an Event): the history actor keeps it on disk; tests wait on it
            self.emit(SystemSampled(data, self.samples, len(self.history)))
        return data

    def _show(self) -> None:
        """The last reading as the panel shows it, with the alerts and install space as of now."""
        if self.last is not None:
            self.view.show({**self.last, "status": self.health.status(), "levels": self.health.levels(),
                            "alerts": self.health.alerts(self.last_at), "installs": install_space(self.config),
                            "monitor": self.self_cost()}, self.last_at)

    def snapshot(self, fresh: bool) -> dict[str, Any]:
        take = fresh or self.last is None
        if take:
            self.sample(background=False)
        reading = self.view.reading()
        assert reading is not None  # _show wrote it
        return {**reading, "fresh": take}

    def self_cost(self) -> dict[str, Any]:
        """What the monitor costs: its own sampling CPU, and the whole HomeHelper process."""
        now = time.monotonic()
        times = os.times()
        proc_cpu = times.user + times.system
        process_percent = None
        if self._proc_cpu is not None and now - self._proc_cpu[1] > 0.25:
            process_percent = round((proc_cpu - self._proc_cpu[0]) / (now - self._proc_cpu[1]) * 100.0, 2)
        if self._proc_cpu is None or process_percent is not None:
            self._proc_cpu = (proc_cpu, now)
        running = max(now - self.started_at, 1e-9)
        return {"samples": self.samples, "cpu_seconds": round(self.cost, 4),
                "cpu_percent": round(self.cost / running * 100.0, 4),  # of one core, since the actor started
                "last_sample_ms": self.last["sample_ms"] if self.last else None,
                "interval": self.monitor.interval, "history": len(self.history),
                "process_cpu_percent": process_percent}  # HomeHelper as a whole, since the previous snapshot

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetSystemSnapshot(fresh):
                return self.snapshot(fresh)
            case GetHistory():
                return {"interval": self.monitor.interval, "points": self.view.ring()}
            case SetMonitorConfig(monitor):
                self.apply_config(monitor)
            case AppProcessChanged() | AppStopped() | AppRemoved():
                self.table.apply(msg)
            case _:
                raise BadRequest(f"sensors: unknown message {type(msg).__name__}")

    def apply_config(self, monitor: MonitorConfig) -> None:
        """New thresholds take effect at the next sample; the history keeps its newest points."""
        old, self.monitor = self.monitor, monitor
        self.config = attrs.evolve(self.config, monitor=monitor)
        self.health.config = monitor
        if monitor.history != old.history:
            self.history = deque(self.history, maxlen=max(1, monitor.history))
            self.view.show_ring(tuple(self.history))
        self._show()  # install space against the new minimum
        if monitor.interval != old.interval:
            self._reschedule.set()
