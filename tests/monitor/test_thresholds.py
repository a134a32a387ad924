"""Levels with hysteresis and minimum duration, on trio's MockClock (the `autojump_clock` fixture)."""

from __future__ import annotations

from typing import Any

import trio

from homehelper.config import MonitorConfig
from homehelper.messages import AlertCleared, AlertRaised
from homehelper.monitor.thresholds import LevelTracker, MachineAlerts, temperature_thresholds


def cpu_tracker() -> LevelTracker:
    return LevelTracker("cpu", (65.0, 75.0, 85.0), hysteresis=5.0, min_duration=60.0)


async def feed(tracker: LevelTracker, values: list[float], every: float = 10.0) -> list[tuple[float, Any]]:
    """Observe each value `every` seconds apart; (time, change) for each change."""
    changes = []
    for v in values:
        change = tracker.observe(v)
        if change is not None:
            changes.append((trio.current_time(), change))
        await trio.sleep(every)
    return changes


async def test_one_spike_does_not_raise(autojump_clock: trio.testing.MockClock) -> None:
    t = cpu_tracker()
    assert await feed(t, [95, 95, 20, 95, 95, 95, 20, 20]) == []
    assert t.level is None


async def test_a_level_held_for_min_duration_raises_once(autojump_clock: trio.testing.MockClock) -> None:
    t = cpu_tracker()
    start = trio.current_time()
    changes = await feed(t, [90] * 10)
    assert changes == [(start + 60.0, (None, "critical"))]
    assert t.level == "critical"


async def test_hysteresis_band_holds_the_level(autojump_clock: trio.testing.MockClock) -> None:
    t = cpu_tracker()
    await feed(t, [90] * 7)
    assert t.level == "critical"
    # 83 is under 85 but above 85 - 5: the alert stays however long it lasts
    assert await feed(t, [83] * 20) == []
    start = trio.current_time()
    changes = await feed(t, [78] * 8)  # under 80: down to warning after 60 s
    assert changes == [(start + 60.0, ("critical", "warning"))]
    start = trio.current_time()
    changes = await feed(t, [69] * 8)  # under 75 - 5, above 65: careful
    assert changes == [(start + 60.0, ("warning", "careful"))]
    start = trio.current_time()
    changes = await feed(t, [10] * 8)
    assert changes == [(start + 60.0, ("careful", None))]


async def test_flapping_across_a_threshold_does_not_flap_the_alert(autojump_clock: trio.testing.MockClock) -> None:
    t = cpu_tracker()
    changes = await feed(t, [86, 84] * 30)  # critical is never held; warning is, all along
    assert [c for _, c in changes] == [(None, "warning")]


async def test_a_dip_resets_the_pending_clear(autojump_clock: trio.testing.MockClock) -> None:
    t = LevelTracker("memory", (50.0, 70.0, 90.0), 5.0, 30.0)
    await feed(t, [60] * 4)
    assert t.level == "careful"
    # under 45 for 20 s, back up, under again: the clear needs 30 s in a row
    assert await feed(t, [40, 40, 60, 40, 40, 60]) == []
    assert t.level == "careful"


def test_events_name_the_level_and_threshold() -> None:
    t = cpu_tracker()
    t.observe(91.0, now=0.0)
    change = t.observe(91.0, now=60.0)
    assert change == (None, "critical")
    ev = t.event(change, " %")
    assert isinstance(ev, AlertRaised)
    assert (ev.metric, ev.level, ev.value, ev.threshold) == ("cpu", "critical", 91.0, 85.0)
    assert ev.kind == "alert_raised" and "85 %" in ev.message
    t.observe(10.0, now=100.0)
    change = t.observe(10.0, now=160.0)
    ev = t.event(change)  # type: ignore[arg-type]
    assert isinstance(ev, AlertCleared) and ev.previous == "critical" and ev.value == 10.0


def test_sensor_limits_lower_the_temperature_levels() -> None:
    assert temperature_thresholds((45.0, 65.0, 80.0), None, 110.0) == (45.0, 65.0, 80.0)  # Pi 5: 110 °C trip
    assert temperature_thresholds((45.0, 65.0, 80.0), 60.0, 70.0) == (45.0, 60.0, 70.0)
    assert temperature_thresholds((45.0, 65.0, 80.0), None, 40.0) == (40.0, 40.0, 40.0)


def sample(cpu: float | None = 10.0, memory: float = 20.0, disks: tuple[tuple[str, float], ...] = (("/", 30.0),),
           temps: tuple[float, ...] = (), throttled: int | None = None) -> dict[str, Any]:
    from homehelper.monitor.pi import decode_throttled

    return {"cpu": {"percent": cpu}, "memory": {"percent": memory}, "swap": None,
            "disks": [{"mount": m, "percent": p} for m, p in disks],
            "temperatures": [{"name": "cpu-thermal", "celsius": c, "high": None, "critical": 110.0} for c in temps],
            "throttled": None if throttled is None else decode_throttled(throttled)}


def test_throttling_since_boot_warns_at_once() -> None:
    h = MachineAlerts(MonitorConfig())
    events = h.update(sample(throttled=0x50000), now=0.0)
    assert len(events) == 1 and isinstance(events[0], AlertRaised)
    ev = events[0]
    assert (ev.metric, ev.level) == ("throttled", "warning")
    assert "under voltage" in ev.message and "since boot" in ev.message and "0x50000" in ev.message
    assert h.status() == "warning"
    assert h.update(sample(throttled=0x50005), now=30.0) == []  # still a warning: no new event
    (cleared,) = h.update(sample(throttled=0), now=60.0)  # only a reboot clears the bits
    assert isinstance(cleared, AlertCleared) and (cleared.metric, cleared.previous) == ("throttled", "warning")


def test_status_is_the_worst_level_and_gone_metrics_clear() -> None:
    h = MachineAlerts(MonitorConfig(min_duration=0.0))
    events = h.update(sample(disks=(("/", 95.0), ("/boot/firmware", 20.0)), temps=(70.0,)), now=0.0)
    assert sorted((e.metric, e.level) for e in events) == [("disk:/", "critical"),  # type: ignore[union-attr]
                                                           ("temperature:cpu-thermal", "warning")]
    assert h.status() == "critical"
    assert [a["metric"] for a in h.alerts(now=5.0)] == ["disk:/", "temperature:cpu-thermal"]
    assert h.alerts(now=5.0)[0]["for_s"] == 5.0
    assert h.levels() == {"disk": "critical", "temperature": "warning"}  # / at 95 %, /boot/firmware ok
    events = h.update(sample(disks=(("/boot/firmware", 20.0),), temps=(70.0,)), now=10.0)  # / unmounted
    assert events == [AlertCleared("disk:/", "critical", 95.0, at=events[0].at)]
    assert h.status() == "warning"


def test_cpu_not_measured_yet_is_skipped() -> None:
    h = MachineAlerts(MonitorConfig(min_duration=0.0, cpu=(0.0, 0.0, 0.0)))
    assert h.update(sample(cpu=None), now=0.0) == []
    assert "cpu" not in h.trackers
