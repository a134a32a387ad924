"""Redis performance figures: Redis's own (INFO, LATENCY LATEST, the event stream's length), the
bridge's (publish latency, events buffered and dropped, reconnects), and their alert levels.

`read_redis` blocks (redis-py is sync): the bridge runs it in a worker thread, only when asked (a
page looking, or the history's sample), never on a timer of its own. `RedisHealth` feeds the
same LevelTrackers as the machine's figures (homehelper/monitor/thresholds.py): hysteresis and a
minimum duration, so a spike does not flap.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..config import MonitorConfig
from ..messages import AlertCleared, AlertRaised
from .thresholds import LevelTracker

LATENCY_WINDOW = 300.0  # seconds of publishes the p50/p99 cover
LATENCY_SAMPLES = 2048  # at most this many kept (a bounded ring)
MB = 1024 * 1024


def _int(info: dict[str, Any], key: str) -> int | None:
    value = info.get(key)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_redis(client: Any, stream: str | None = None) -> dict[str, Any]:
    """INFO's figures that matter to HomeHelper, LATENCY LATEST's spikes, and the stream's length."""
    info: dict[str, Any] = client.info()
    used, limit = _int(info, "used_memory"), _int(info, "maxmemory")
    latency: list[dict[str, Any]] = []
    try:
        for entry in client.execute_command("LATENCY", "LATEST") or ():
            # [event, last spike (unix s), last ms, max ms]
            latency.append({"event": str(entry[0]), "at": int(entry[1]), "last_ms": int(entry[2]),
                            "max_ms": int(entry[3])})
    except Exception:  # LATENCY may be renamed or refused by an ACL: the rest still counts
        latency = []
    stream_len = None
    if stream:
        try:
            stream_len = int(client.xlen(stream))
        except Exception:  # the key may be missing or of another type
            stream_len = None
    return {
        "version": info.get("redis_version"),
        "used_memory": used,
        "maxmemory": limit,
        "memory_percent": round(used / limit * 100.0, 1) if used is not None and limit else None,
        "maxmemory_policy": info.get("maxmemory_policy"),
        "ops_per_sec": _int(info, "instantaneous_ops_per_sec"),
        "connected_clients": _int(info, "connected_clients"),
        "blocked_clients": _int(info, "blocked_clients"),
        "pubsub_channels": _int(info, "pubsub_channels"),
        "pubsub_patterns": _int(info, "pubsub_patterns"),
        "evicted_keys": _int(info, "evicted_keys"),
        "total_commands": _int(info, "total_commands_processed"),
        "stream_length": stream_len,
        "latency": latency,
        "latency_max_ms": max((int(e["max_ms"]) for e in latency), default=None),
    }


class LatencyWindow:
    """Publish round trips (one per pipeline) of the last LATENCY_WINDOW seconds; p50 and p99 in ms."""

    def __init__(self, window: float = LATENCY_WINDOW, size: int = LATENCY_SAMPLES) -> None:
        self.window = window
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)  # (monotonic s, ms)
        self.count = 0

    def add(self, seconds: float, now: float | None = None) -> None:
        self.samples.append((time.monotonic() if now is None else now, seconds * 1000.0))
        self.count += 1

    def percentiles(self, now: float | None = None) -> tuple[float | None, float | None]:
        now = time.monotonic() if now is None else now
        values = sorted(ms for at, ms in self.samples if now - at <= self.window)
        if not values:
            return None, None

        def pick(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))], 3)

        return pick(0.5), pick(0.99)


def history_row(stats: dict[str, Any]) -> dict[str, Any]:
    """The Redis figures the history keeps (short names: one row every `history.step` seconds)."""
    r = stats.get("redis") or {}
    b = stats.get("bridge") or {}
    used = r.get("used_memory")
    return {"memory_mb": round(used / MB, 2) if isinstance(used, int) else None,
            "memory": r.get("memory_percent"), "ops": r.get("ops_per_sec"), "clients": r.get("connected_clients"),
            "channels": r.get("pubsub_channels"), "patterns": r.get("pubsub_patterns"),
            "stream": r.get("stream_length"), "evicted": r.get("evicted_keys"),
            "p50": b.get("publish_p50_ms"), "p99": b.get("publish_p99_ms"), "buffered": b.get("buffered"),
            "dropped": b.get("dropped"), "reconnects": b.get("reconnects")}


class RedisHealth:
    """Alert levels of Redis memory against maxmemory, publish latency and dropped events."""

    UNITS = {"redis_memory": " %", "redis_latency": " ms", "redis_dropped": " events"}

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.trackers: dict[str, LevelTracker] = {}
        self._dropped: int | None = None  # the bridge's drop count at the previous reading

    def _tracker(self, metric: str, thresholds: tuple[float, float, float], hysteresis: float,
                 min_duration: float) -> LevelTracker:
        t = self.trackers.get(metric)
        if t is None:
            t = self.trackers[metric] = LevelTracker(metric, thresholds, hysteresis, min_duration)
        else:  # the config may have changed at run time
            t.thresholds, t.hysteresis, t.min_duration = thresholds, hysteresis, min_duration
        return t

    def readings(self, stats: dict[str, Any]) -> list[tuple[str, float, tuple[float, float, float], float, float]]:
        c = self.config
        out = []
        r, b = stats.get("redis") or {}, stats.get("bridge") or {}
        if r.get("memory_percent") is not None:
            out.append(("redis_memory", float(r["memory_percent"]), c.redis_memory, c.hysteresis, c.min_duration))
        if b.get("connected") is not None:
            p99 = b.get("publish_p99_ms")
            out.append(("redis_latency", float(p99 or 0.0), c.redis_latency_ms, c.redis_latency_ms[0] * 0.2,
                        c.min_duration))
        dropped = b.get("dropped")
        if isinstance(dropped, int):
            # Drops since the previous reading: a drop is a fact, so no debounce (like throttling).
            fresh = dropped - self._dropped if self._dropped is not None and dropped >= self._dropped else dropped
            self._dropped = dropped
            out.append(("redis_dropped", float(fresh), c.redis_drops, 0.0, 0.0))
        return out

    def update(self, stats: dict[str, Any], now: float | None = None) -> list[AlertRaised | AlertCleared]:
        events: list[AlertRaised | AlertCleared] = []
        for metric, value, thresholds, hysteresis, min_duration in self.readings(stats):
            tracker = self._tracker(metric, thresholds, hysteresis, min_duration)
            change = tracker.observe(value, now)
            if change is not None:
                event = tracker.event(change, self.UNITS[metric])
                if isinstance(event, AlertRaised) and metric == "redis_dropped":
                    event = AlertRaised(metric, event.level, event.value, event.threshold,
                                        f"the Redis bridge dropped {value:g} events: its buffer "
                                        f"({(stats.get('bridge') or {}).get('buffer_size')}) overflowed "
                                        "while Redis was slow or away")
                events.append(event)
        return events

    def alerts(self) -> list[dict[str, Any]]:
        return [{"metric": t.metric, "level": t.level, "value": t.value, "threshold": t.threshold_of(t.level)}
                for t in self.trackers.values() if t.level]
