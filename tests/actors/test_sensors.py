"""The sensor actor, in a real supervisor with a real broadcast and real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
import trio
import trio.testing

from homehelper.actors import ActorRef, Broadcast, ChildSpec, Supervisor
from homehelper.actors.sensors import SensorActor
from homehelper.config import Config, MonitorConfig
from homehelper.errors import BadRequest
from homehelper.messages import (
    AlertCleared,
    AlertRaised,
    AppProcessChanged,
    AppStopped,
    GetHistory,
    GetSystemSnapshot,
    SetMonitorConfig,
)
from homehelper.monitor.apps import ProcessTable
from homehelper.monitor.pi import PiPaths
from tests.monitor.pi5_tree import build_tree


@attrs.define
class Tree:
    broadcast: Broadcast
    sup: Supervisor
    ref: ActorRef[Any]
    table: ProcessTable


def config(tmp_path: Path, **monitor: Any) -> Config:
    return Config(root=tmp_path / "state", apps_dir=tmp_path / "apps", monitor=MonitorConfig(**monitor))


@pytest.fixture
def nothing(tmp_path: Path) -> PiPaths:
    return PiPaths.under(tmp_path / "no-pi")  # this machine's own /sys may have sensors; tests want none


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    # Each says when it has settled (loaded, idle), so its memory does not move under the test's feet.
    procs = [subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    yield procs
    for p in procs:
        p.kill()
        p.wait()
        assert p.stdout is not None
        p.stdout.close()


@pytest.fixture
def sleeper(sleepers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    return sleepers[0]


async def start(nursery: trio.Nursery, cfg: Config, pi: PiPaths) -> Tree:
    broadcast = Broadcast()
    sup = Supervisor("root", emit=broadcast.publish)
    await nursery.start(sup.run)
    table = ProcessTable()
    ref = sup.start_child(ChildSpec("sensors", lambda: SensorActor(cfg, broadcast.publish, broadcast, table, pi)))
    await trio.testing.wait_all_tasks_blocked()
    return Tree(broadcast, sup, ref, table)


@pytest.fixture
async def tree(tmp_path: Path, nothing: PiPaths) -> AsyncIterator[Tree]:
    async with trio.open_nursery() as n:
        yield await start(n, config(tmp_path), nothing)
        n.cancel_scope.cancel()


async def test_fresh_snapshot_is_live_and_json_ready(tree: Tree) -> None:
    snap = await tree.ref.ask(GetSystemSnapshot(fresh=True))
    data = json.loads(json.dumps(snap))
    assert data["memory"]["total"] == psutil.virtual_memory().total
    assert data["cpu"]["count"] == psutil.cpu_count()
    assert data["fresh"] is True and data["age_s"] == 0.0
    assert data["status"] == "ok" and data["alerts"] == []
    assert data["board"] == {"model": None, "is_pi": False}
    assert {"model", "temperatures", "fans", "throttled"} <= set(data["absent"])
    assert data["monitor"]["samples"] == 1 and data["monitor"]["cpu_seconds"] > 0
    assert data["installs"]["required_mb"] == 2048 and data["installs"]["free_mb"] > 0
    assert (data["installs"]["blocked"] is None) == (data["installs"]["free_mb"] >= 2048)
    again = await tree.ref.ask(GetSystemSnapshot(fresh=False))
    assert again["fresh"] is False and again["at"] == snap["at"]  # the last sample, not a new one
    assert again["monitor"]["samples"] == 1


async def test_follows_app_processes_on_the_bus(tree: Tree, sleeper: subprocess.Popen[bytes]) -> None:
    tree.broadcast.publish(AppProcessChanged("logger", sleeper.pid))
    await trio.testing.wait_all_tasks_blocked()
    snap = await tree.ref.ask(GetSystemSnapshot(fresh=True))
    fig = snap["apps"]["logger"]
    assert fig["source"] == "process" and fig["pid"] == sleeper.pid and fig["tasks"] == 1
    assert abs(fig["memory"] - psutil.Process(sleeper.pid).memory_info().rss) < 1024 * 1024
    assert snap["top"]["memory"][0]["app_id"] == "logger"
    tree.broadcast.publish(AppStopped("logger", "user"))
    await trio.testing.wait_all_tasks_blocked()
    assert (await tree.ref.ask(GetSystemSnapshot(fresh=True)))["apps"] == {}


async def test_a_bad_message_is_refused_and_the_actor_carries_on(tree: Tree) -> None:
    with pytest.raises(BadRequest):
        await tree.ref.ask("what?")
    assert (await tree.ref.ask(GetSystemSnapshot()))["memory"]["total"] > 0


async def test_background_alerts_history_and_config(tmp_path: Path, nothing: PiPaths,
                                                    autojump_clock: trio.testing.MockClock) -> None:
    cfg = config(tmp_path, interval=10.0, min_duration=30.0, history=3, memory=(0.0, 0.0, 0.0))
    async with trio.open_nursery() as n:
        t = await start(n, cfg, nothing)
        begin = trio.current_time()
        with t.bus.subscribe(accept=lambda e: isinstance(e, (AlertRaised, AlertCleared))) as alerts:
            await trio.sleep(35)  # samples at 10, 20, 30: memory has been over 0 % for 20 s only
            assert alerts.pending() == 0
            raised = await alerts.receive()  # the sample at 40 completes the 30 s
            assert isinstance(raised, AlertRaised) and (raised.metric, raised.level) == ("memory", "critical")
            assert trio.current_time() - begin == pytest.approx(40.0, abs=0.01)
            history = await t.ref.ask(GetHistory())
            assert history["interval"] == 10.0 and len(history["points"]) == 3  # 4 samples, ring of 3
            assert all(p["memory"] == pytest.approx(psutil.virtual_memory().percent, abs=5) for p in history["points"])
            snap = await t.ref.ask(GetSystemSnapshot(fresh=False))
            assert snap["status"] == "critical" and [a["metric"] for a in snap["alerts"]] == ["memory"]
            assert snap["levels"] == {"memory": "critical"}
            assert snap["monitor"]["samples"] == 4 and snap["fresh"] is False

            huge = 1 << 40  # MB: no disk has that much free
            await t.ref.tell(SetMonitorConfig(attrs.evolve(cfg.monitor, memory=(99.0, 99.5, 99.9),
                                                           min_free_disk_mb=huge)))
            blocked = (await t.ref.ask(GetSystemSnapshot(fresh=False)))["installs"]["blocked"]
            assert "not enough free disk to install" in blocked
            cleared = await alerts.receive()
            assert isinstance(cleared, AlertCleared) and (cleared.metric, cleared.previous) == ("memory", "critical")
            assert trio.current_time() - begin == pytest.approx(80.0, abs=0.01)  # clear held 30 s too

            await t.ref.tell(SetMonitorConfig(attrs.evolve(cfg.monitor, interval=0.0)))  # off: no more samples
            await trio.sleep(3600)
            assert (await t.ref.ask(GetSystemSnapshot(fresh=False)))["monitor"]["samples"] == 8
            before = (await t.ref.ask(GetHistory()))["points"]
            await t.ref.tell(SetMonitorConfig(attrs.evolve(cfg.monitor, interval=0.0, history=2)))
            assert (await t.ref.ask(GetHistory()))["points"] == before[-2:]  # the newest kept
        n.cancel_scope.cancel()


async def test_pi5_board_and_throttling_reach_the_bus(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    pi = PiPaths.under(build_tree(tmp_path / "pi5"))
    async with trio.open_nursery() as n:
        t = await start(n, config(tmp_path), pi)
        with t.bus.subscribe(accept=lambda e: isinstance(e, AlertRaised)) as alerts:
            snap = await t.ref.ask(GetSystemSnapshot(fresh=True))
            assert snap["board"] == {"model": "Raspberry Pi 5 Model B Rev 1.0", "is_pi": True}
            assert snap["temperature"] == 55.384 and snap["fans"][0]["rpm"] == 2350
            assert snap["throttled"]["now"]["under_voltage"] and snap["throttled"]["raw"] == "0x50005"
            assert set(snap["absent"]) <= {"swap"}  # swap depends on this machine, the rest is in the tree
            assert alerts.pending() == 0  # a fresh sample does not feed the alerts
            await trio.sleep(30)  # the first background sample: throttling warns at once
            ev = await alerts.receive()
            assert (ev.metric, ev.level) == ("throttled", "warning") and "under voltage" in ev.message
            assert ev.to_json()["kind"] == "alert_raised"
        n.cancel_scope.cancel()


async def test_a_restarted_actor_keeps_the_apps(tmp_path: Path, nothing: PiPaths,
                                                sleepers: list[subprocess.Popen[bytes]]) -> None:
    first, second = sleepers
    async with trio.open_nursery() as n:
        broadcast = Broadcast()
        sup = Supervisor("root", emit=broadcast.publish)
        await n.start(sup.run)
        table = ProcessTable.following(broadcast)  # as serve.py builds it: before any app starts

        def make() -> SensorActor:
            return SensorActor(config(tmp_path), broadcast.publish, broadcast, table, nothing)

        broadcast.publish(AppProcessChanged("early", first.pid))  # before the actor even runs
        ref = sup.start_child(ChildSpec("sensors", make))
        await trio.testing.wait_all_tasks_blocked()
        assert set((await ref.ask(GetSystemSnapshot()))["apps"]) == {"early"}
        await sup.stop_child("sensors")
        broadcast.publish(AppProcessChanged("meanwhile", second.pid))  # while no sensor actor runs
        ref = sup.start_child(ChildSpec("sensors", make))
        await trio.testing.wait_all_tasks_blocked()
        apps = (await ref.ask(GetSystemSnapshot()))["apps"]
        assert {a: f["pid"] for a, f in apps.items()} == {"early": first.pid, "meanwhile": second.pid}
        n.cancel_scope.cancel()
