"""The history actor: the sensor samples and Redis figures, kept in `<root>/history.sqlite`.

It follows the sensor actor's background samples (SystemSampled records on the broadcast: no
timer of its own for sampling) and, at each, asks the Redis bridge for Redis's figures, so Redis
is read at the history's resolution or when a page asks (GET /api/redis), never faster. Rows wait
in memory and are written as one transaction every `history.flush_every` seconds (five minutes
by default) and at a clean stop, by one worker thread at a time: an SD card sees a few pages
written per batch, the trio thread never waits for SQLite. Reads merge the file with what still
waits, so a chart shows the newest point and, after a restart, everything written before it.
The points read are kept in the machine's read model (machineview.py) until a sample or a write
changes them: a dashboard's refresh reads its chart there, and the file once per change.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import trio

from ..config import Config, MonitorConfig
from ..errors import BadRequest
from ..manifest import ID_RE
from ..messages import (
    FlushHistory,
    GetHistoryState,
    GetMetricHistory,
    GetRedisStats,
    SetMonitorConfig,
    StateFileDamaged,
    SystemSampled,
)
from ..monitor.history import COARSE, FINE, Bucketer, HistoryStore, Row, mean_rows, sample_rows
from ..monitor.redisstats import RedisHealth, history_row
from . import Actor, ActorRef, Broadcast
from .machineview import MachineView

log = logging.getLogger(__name__)

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SERIES_RE = re.compile(rf"^(machine|redis|app:{ID_RE.pattern})$")
MAX_PENDING = 20_000  # rows held while the file cannot be written (a full disk): the oldest go first
MAX_POINTS = 2000


class HistoryActor(Actor):
    name = "history"

    def __init__(self, config: Config, emit: Callable[[object], None], broadcast: Broadcast,
                 bridge: ActorRef[Any] | None = None, view: MachineView | None = None) -> None:
        self.config = config
        self.hc = config.history
        self.emit = emit
        self.broadcast = broadcast
        self.bridge = bridge
        self.view = view if view is not None else MachineView()  # serve.py's: the web reads the charts there
        self.changes = 0  # bumped whenever what a query answers may change: a read during one is not kept
        self.store: HistoryStore | None = None
        self.bucketer = Bucketer(self.hc.step)
        self.pending: list[Row] = []
        self.redis = RedisHealth(config.monitor)
        self.redis_last: dict[str, Any] | None = None
        self._redis_step: int | None = None  # the history step Redis was last read for
        self.limiter = trio.CapacityLimiter(1)  # the one thread that touches the file
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self.flushes = 0
        self.failures = 0
        self.lost = 0  # rows dropped because the file could not be written for too long
        self.last_error: str | None = None
        self.opened = trio.Event()  # the file is open (or known unusable): for tests and the benchmark
        self.flushed = trio.Event()  # set (and replaced) at each write

    # --- lifecycle ---------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self.sub = self.broadcast.subscribe(64, accept=lambda e: isinstance(e, SystemSampled))
        self.view.charts_changed()  # a restarted actor: what its predecessor read may not hold
        if self.hc.enabled:
            hc = self.hc
            store = HistoryStore(self.config.history_file, step=hc.step, coarse_step=hc.coarse_step,
                                 keep_fine=int(hc.keep_hours * 3600), keep_coarse=int(hc.keep_days * 86400))
            try:
                await self._in_thread(store.open)
                self.store = store
            except Exception as exc:  # an unwritable root: charts for this run only, said once
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("history: cannot open %s (%s); keeping this run's history in memory",
                            self.config.history_file, exc)
            self._report_damage(store)
        self.opened.set()
        nursery.start_soon(self._follow)
        nursery.start_soon(self._flusher)

    async def on_stop(self) -> None:
        self.sub.close()
        self.pending.extend(self.bucketer.close())
        await self.flush()
        if self.store is not None:
            await self._in_thread(self.store.close)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def _report_damage(self, store: HistoryStore) -> None:
        if store.damage is not None:
            self.emit(StateFileDamaged(str(store.path), str(store.set_aside_as) if store.set_aside_as else None,
                                       f"{store.damage}; a new history was started"))
            store.damage = None

    # --- taking samples ------------------------------------------------------
    async def _follow(self) -> None:
        async for record in self.sub:
            await self.take(record.sample)

    async def take(self, sample: dict[str, Any]) -> None:
        at = float(sample.get("at") or time.time())
        # The machine's and apps' rows first: a page asking now sees them without waiting on Redis.
        self.pending.extend(self.bucketer.add(at, sample_rows(sample)))
        step = int(at) - int(at) % self.hc.step
        if self.bridge is not None and step != self._redis_step:  # Redis at most once per history point
            self._redis_step = step
            stats = await self.redis_stats()
            if stats is not None and stats.get("enabled"):
                self.pending.extend(self.bucketer.add(at, [("redis", history_row(stats))]))
        self._trim()
        self._changed()
        if self.pending:
            self._wake.set()

    def _changed(self) -> None:
        self.changes += 1
        self.view.charts_changed()

    async def redis_stats(self) -> dict[str, Any] | None:
        """The bridge's figures now, with their alert levels (alerts are emitted here)."""
        assert self.bridge is not None
        try:
            stats: dict[str, Any] = await self.bridge.ask(GetRedisStats(), timeout=10)
        except Exception as exc:  # the bridge restarting: no Redis point this time
            log.debug("history: no Redis figures: %s", exc)
            return None
        for event in self.redis.update(stats):
            log.log(logging.INFO if event.kind == "alert_cleared" else logging.WARNING, "%s", event)
            self.emit(event)
        stats["alerts"] = self.redis.alerts()
        self.redis_last = stats
        return stats

    def _trim(self) -> None:
        if len(self.pending) > MAX_PENDING:
            self.lost += len(self.pending) - MAX_PENDING
            del self.pending[: len(self.pending) - MAX_PENDING]

    # --- writing -------------------------------------------------------------
    async def _flusher(self) -> None:
        """A write every flush_every seconds while there is something to write; asleep otherwise."""
        while True:
            await self._wake.wait()
            await trio.sleep(self.hc.flush_every)
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> int:
        """Write what waits (one transaction, off the trio thread); the rows written."""
        async with self._lock:
            store = self.store
            if store is None or not self.pending:
                return 0
            rows, self.pending = self.pending, []
            try:
                await self._in_thread(store.write, rows, time.time())
            except Exception as exc:  # a full disk, an I/O error: keep the rows, try at the next flush
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("history: writing %d rows to %s failed (%s); trying again later", len(rows),
                            store.path, self.last_error)
                self.pending[:0] = rows
                self._trim()
                self._wake.set()
                return 0
            finally:
                self._report_damage(store)
            self.flushes += 1
            self._changed()  # the write also dropped what fell out of the kept span
            self.flushed.set()
            self.flushed = trio.Event()
            return len(rows)

    # --- reading -------------------------------------------------------------
    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetMetricHistory(series, range_, points):
                return await self.query(series, range_, points)
            case GetRedisStats():
                return await self.redis_stats() if self.bridge is not None else {"enabled": False}
            case FlushHistory():
                return await self.flush()
            case GetHistoryState():
                return await self.state()
            case SetMonitorConfig(monitor):
                self.apply_config(monitor)
            case _:
                raise BadRequest(f"history: unknown message {type(msg).__name__}")

    def apply_config(self, monitor: MonitorConfig) -> None:
        self.redis.config = monitor

    async def state(self) -> dict[str, Any]:
        series: set[str] = {s for _, s, _ in (*self.pending, *self.bucketer.current())}
        size = None
        if self.store is not None:
            try:
                series.update(await self._in_thread(self.store.series, time.time() - self.hc.keep_days * 86400))
                size = await self._in_thread(self.store.size)
            except Exception as exc:
                log.warning("history: listing the series failed: %s", exc)
        return {"available": True, "series": sorted(series), "size": size, "enabled": self.hc.enabled,
                "file": str(self.config.history_file) if self.store else None,
                "pending": len(self.pending), "flushes": self.flushes, "failures": self.failures, "lost": self.lost,
                "last_error": self.last_error, "step": self.hc.step, "coarse_step": self.hc.coarse_step,
                "flush_every": self.hc.flush_every, "ranges": list(RANGES)}

    async def query(self, series: Any, range_: Any, points: Any) -> dict[str, Any]:
        if not isinstance(series, str) or not SERIES_RE.fullmatch(series):
            raise BadRequest(f"series must be machine, redis or app:<id>, got {str(series)[:60]!r}", param="series")
        if range_ not in RANGES:
            raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {str(range_)[:20]!r}", param="range")
        if not isinstance(points, int) or isinstance(points, bool) or not 2 <= points <= MAX_POINTS:
            raise BadRequest(f"points must be an integer from 2 to {MAX_POINTS}", param="points")
        key = (series, range_, points)
        kept = self.view.chart(key)
        if kept is not None:
            return kept
        changes = self.changes
        span = RANGES[range_]
        since = time.time() - span
        res = FINE if span <= self.hc.keep_hours * 3600 else COARSE
        step = self.hc.step if res == FINE else self.hc.coarse_step
        # What waits is taken before the read: a flush running meanwhile puts it in the file, never nowhere.
        waiting = [(at, data) for at, s, data in (*self.pending, *self.bucketer.current())
                   if s == series and at >= since]
        stored: list[tuple[int, dict[str, Any]]] = []
        if self.store is not None:
            try:
                stored = await self._in_thread(self.store.read, series, since, res)
            except Exception as exc:  # a damaged file is set aside at the next write; show what waits
                log.warning("history: reading %s failed: %s", series, exc)
        if res == COARSE:  # what waits, averaged into the coarse buckets the file has not got yet
            have = {at for at, _ in stored}
            buckets: dict[int, list[tuple[str, dict[str, Any]]]] = {}
            for at, data in waiting:
                buckets.setdefault(at - at % step, []).append((series, data))
            waiting = [(b, mean_rows(rows)[series]) for b, rows in buckets.items() if b not in have]
        merged = dict(stored)
        merged.update(waiting)
        ordered = sorted(merged.items())
        chart = {"series": series, "range": range_, "resolution": "fine" if res == FINE else "coarse",
                 "step": step, "points": downsample(ordered, points)}
        if changes == self.changes:  # nothing changed while the file was read
            self.view.keep_chart(key, chart)
        return chart


def downsample(rows: list[tuple[int, dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """At most `limit` points: consecutive rows averaged together, each point at its group's start."""
    size = max(1, -(-len(rows) // limit))
    out = []
    for i in range(0, len(rows), size):
        group = rows[i : i + size]
        figures = mean_rows(("s", data) for _, data in group).get("s", {}) if size > 1 else dict(group[0][1])
        out.append({"at": group[0][0], **figures})
    return out
