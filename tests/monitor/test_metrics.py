"""Live metrics on this machine, checked against psutil's own figures."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest
import trio

from homehelper.monitor.metrics import MachineSampler, cpu_percents, disks, memory
from homehelper.monitor.system import SystemSampler, history_dicts, history_point


def test_memory_is_total_minus_available() -> None:
    mem, swap = memory()
    vm = psutil.virtual_memory()
    assert mem["total"] == vm.total
    assert mem["used"] == mem["total"] - mem["available"]
    assert abs(mem["available"] - vm.available) < 0.05 * vm.total  # read a moment apart
    assert abs(mem["percent"] - vm.percent) < 5.0
    sw = psutil.swap_memory()
    assert (swap is None) == (sw.total == 0)
    if swap is not None:
        assert swap["total"] == sw.total


def test_disks_match_psutil() -> None:
    got = disks()
    assert got, "this machine has at least a root filesystem"
    mounts = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    for d in got:
        assert d["mount"] in mounts
        usage = psutil.disk_usage(d["mount"])
        assert d["total"] == usage.total
        assert 0.0 <= d["percent"] <= 100.0
    assert len({d["device"] for d in got}) == len(got)


def test_cpu_percents_from_two_readings() -> None:
    before = psutil.cpu_times(percpu=True)
    a = before[0]
    busy = a._replace(user=a.user + 3.0, idle=a.idle + 1.0)
    idle = a._replace(idle=a.idle + 4.0)
    assert cpu_percents([a, a], [busy, idle]) == [75.0, 0.0]
    assert cpu_percents([a], [a]) == [0.0]  # no time passed: no division by zero


async def test_sampler_reports_cpu_after_an_interval() -> None:
    s = MachineSampler()
    first = s.sample()  # within MIN_CPU_INTERVAL of the baseline: not measured yet
    assert first["cpu"]["percent"] is None and first["cpu"]["per_core"] is None
    await trio.sleep(0.3)
    got = s.sample()
    assert got["cpu"]["count"] == psutil.cpu_count()
    assert len(got["cpu"]["per_core"]) == psutil.cpu_count()
    assert 0.0 <= got["cpu"]["percent"] <= 100.0
    assert all(abs(a - b) < 1.0 for a, b in zip(got["cpu"]["load"], os.getloadavg(), strict=True))
    assert abs(got["uptime"] - (time.time() - psutil.boot_time())) < 5.0
    assert got["net"]["bytes_recv"] >= 0 and got["net"]["recv_per_s"] is not None


async def test_a_busy_core_shows() -> None:
    s = MachineSampler()
    await trio.sleep(0.3)
    s.sample()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this thread keeps one core busy
        pass
    got = s.sample()
    # this thread was busy all along; the scheduler may move it between cores, so count them all
    assert sum(got["cpu"]["per_core"]) > 40.0
    assert got["cpu"]["percent"] == pytest.approx(sum(got["cpu"]["per_core"]) / psutil.cpu_count(), abs=0.1)


def test_full_sample_is_json_ready() -> None:
    data = SystemSampler().sample()
    text = json.dumps(data)
    assert json.loads(text)["memory"]["total"] == psutil.virtual_memory().total
    assert data["apps"] == {} and data["top"] == {"cpu": [], "memory": []}
    (point,) = history_dicts([history_point(data)])
    assert point["memory"] == data["memory"]["percent"] and point["at"] == round(data["at"], 1)
    assert set(point) == {"at", "cpu", "memory", "swap", "disk", "temperature", "load", "recv_per_s", "sent_per_s"}
