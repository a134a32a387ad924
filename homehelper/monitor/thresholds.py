"""Health levels with hysteresis and a minimum duration, so one spike does not flap.

Each level (careful < warning < critical) of a metric is debounced on its own:
it turns on once the value has stayed at or above its threshold for
`min_duration`, and off once the value has stayed below `threshold -
hysteresis` for `min_duration`. In between (the hysteresis band) nothing
changes and a pending change is dropped. A metric's level is its highest level
that is on. Time is `trio.current_time()`, so tests drive it with a MockClock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import trio

from ..config import MonitorConfig
from ..messages import AlertCleared, AlertRaised

LEVELS = ("careful", "warning", "critical")
RANK: dict[str | None, int] = {None: 0, "ok": 0, **{name: i + 1 for i, name in enumerate(LEVELS)}}


@attrs.define
class _Switch:
    on: bool = False
    pending_since: float | None = None  # when the raw reading first disagreed with `on`


@attrs.define
class LevelTracker:
    """One metric's level; `observe` returns the new level when it changes, else None."""

    metric: str
    thresholds: tuple[float, float, float]
    hysteresis: float
    min_duration: float
    level: str | None = None
    since: float | None = None  # when `level` was reached
    value: float | None = None
    switches: list[_Switch] = attrs.field(factory=lambda: [_Switch() for _ in LEVELS])

    def observe(self, value: float, now: float | None = None) -> tuple[str | None, str | None] | None:
        """Feed one reading; (previous, new) when the level changed."""
        now = trio.current_time() if now is None else now
        self.value = value
        for threshold, sw in zip(self.thresholds, self.switches, strict=True):
            raw: bool | None = True if value >= threshold else False if value < threshold - self.hysteresis else None
            if raw is None or raw == sw.on:
                sw.pending_since = None
                continue
            if sw.pending_since is None:
                sw.pending_since = now
            if now - sw.pending_since >= self.min_duration:
                sw.on, sw.pending_since = raw, None
        new = None
        for name, sw in zip(LEVELS, self.switches, strict=True):
            if sw.on:
                new = name
        if new == self.level:
            return None
        previous, self.level, self.since = self.level, new, now
        return previous, new

    def threshold_of(self, level: str) -> float:
        return self.thresholds[LEVELS.index(level)]

    def event(self, change: tuple[str | None, str | None], unit: str = "") -> AlertRaised | AlertCleared:
        previous, new = change
        value = round(self.value or 0.0, 1)
        if new is None:
            return AlertCleared(self.metric, previous or "", value)
        threshold = self.threshold_of(new)
        trend = "up from" if RANK[new] > RANK[previous] else "down from"
        note = f" ({trend} {previous})" if previous else ""
        return AlertRaised(self.metric, new, value, threshold,
                           f"{self.metric} at {value:g}{unit}, {new} level is {threshold:g}{unit}{note}")


def temperature_thresholds(config: tuple[float, float, float], high: float | None,
                           critical: float | None) -> tuple[float, float, float]:
    """The configured levels, lowered to the sensor's own limits where those are lower."""
    careful, warning, crit = config
    if critical is not None:
        crit = min(crit, critical)
    if high is not None:
        warning = min(warning, high)
    warning = min(warning, crit)
    careful = min(careful, warning)
    return careful, warning, crit


class MachineAlerts:
    """Levels of every metric of a sample; returns the alert events to emit."""

    UNITS = {"cpu": " %", "memory": " %", "swap": " %", "disk": " %", "temperature": " °C"}

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.trackers: dict[str, LevelTracker] = {}

    def _tracker(self, metric: str, thresholds: tuple[float, float, float], min_duration: float | None = None,
                 hysteresis: float | None = None) -> LevelTracker:
        hysteresis = self.config.hysteresis if hysteresis is None else hysteresis
        min_duration = self.config.min_duration if min_duration is None else min_duration
        t = self.trackers.get(metric)
        if t is None:
            t = self.trackers[metric] = LevelTracker(metric, thresholds, hysteresis, min_duration)
        else:  # the config may have changed at run time
            t.thresholds, t.hysteresis, t.min_duration = thresholds, hysteresis, min_duration
        return t

    def readings(self, sample: dict[str, Any]) -> Iterable[tuple[str, float, tuple[float, float, float], dict]]:
        """(metric, value, thresholds, tracker options) for each health figure in a sample."""
        c = self.config
        if sample["cpu"]["percent"] is not None:
            yield "cpu", sample["cpu"]["percent"], c.cpu, {}
        yield "memory", sample["memory"]["percent"], c.memory, {}
        if sample["swap"] is not None:
            yield "swap", sample["swap"]["percent"], c.swap, {}
        for d in sample["disks"]:
            yield f"disk:{d['mount']}", d["percent"], c.disk, {}
        for t in sample["temperatures"]:
            yield (f"temperature:{t['name']}" + (f":{t['label']}" if t.get("label") else ""), t["celsius"],
                   temperature_thresholds(c.temperature, t.get("high"), t.get("critical")), {})
        thr = sample.get("throttled")
        if thr is not None:
            # The firmware latches these bits itself: one event is a fact, no debounce needed.
            value = 2.0 if thr["any_now"] else 1.0 if thr["any_since_boot"] else 0.0
            yield "throttled", value, (1.0, 1.0, 3.0), {"min_duration": 0.0, "hysteresis": 0.0}

    def update(self, sample: dict[str, Any], now: float | None = None) -> list[AlertRaised | AlertCleared]:
        events: list[AlertRaised | AlertCleared] = []
        seen = set()
        for metric, value, thresholds, opts in self.readings(sample):
            seen.add(metric)
            tracker = self._tracker(metric, thresholds, **opts)
            change = tracker.observe(value, now)
            if change is not None:
                events.append(self._event(tracker, change, sample))
        for metric in [m for m in self.trackers if m not in seen]:  # a disk unmounted, a sensor gone
            tracker = self.trackers.pop(metric)
            if tracker.level is not None:
                events.append(AlertCleared(metric, tracker.level, round(tracker.value or 0.0, 1)))
        return events

    def _event(self, tracker: LevelTracker, change: tuple[str | None, str | None],
               sample: dict[str, Any]) -> AlertRaised | AlertCleared:
        if tracker.metric != "throttled" or change[1] is None:
            return tracker.event(change, self.UNITS.get(tracker.metric.split(":")[0], ""))
        thr = sample["throttled"]
        flags = thr["now"] if thr["any_now"] else thr["since_boot"]
        names = ", ".join(k.replace("_", " ") for k, v in flags.items() if v) or "throttling"
        when = "now" if thr["any_now"] else "since boot"
        return AlertRaised("throttled", change[1], tracker.value or 0.0, tracker.threshold_of(change[1]),
                           f"{names} {when} (get_throttled {thr['raw']}): check the power supply and cooling")

    def status(self) -> str:
        """The worst level of any metric: ok, careful, warning or critical."""
        worst = max((t.level for t in self.trackers.values()), key=lambda lv: RANK[lv], default=None)
        return worst or "ok"

    def levels(self) -> dict[str, str]:
        """The worst level per kind of metric (cpu, memory, swap, disk, temperature, throttled), for the panel."""
        out: dict[str, str] = {}
        for t in self.trackers.values():
            kind = t.metric.split(":", 1)[0]
            if RANK[t.level] > RANK[out.get(kind, "ok")]:
                out[kind] = t.level or "ok"
        return out

    def alerts(self, now: float | None = None) -> list[dict[str, Any]]:
        """Active alerts, worst first; `for_s` is how long each has held its level."""
        now = trio.current_time() if now is None else now
        return [{"metric": t.metric, "level": t.level, "value": t.value,
                 "threshold": t.threshold_of(t.level), "for_s": round(now - t.since, 1) if t.since is not None else 0.0}
                for t in sorted(self.trackers.values(), key=lambda t: (-RANK[t.level], t.metric)) if t.level]
