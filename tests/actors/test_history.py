"""The history actor in a real supervisor: batched writes, a flush at a clean stop, a restart keeps the data."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.history import HistoryActor
from homehelper.config import Config, HistoryConfig
from homehelper.errors import BadRequest
from homehelper.messages import FlushHistory, GetHistoryState, GetMetricHistory, StateFileDamaged, SystemSampled
from homehelper.monitor.history import HistoryStore


def config(tmp_path: Path, **history: Any) -> Config:
    return Config(root=tmp_path / "state", apps_dir=tmp_path / "apps", history=HistoryConfig(**history))


def sample(at: float, cpu: float, apps: tuple[str, ...] = ("app-a",)) -> dict[str, Any]:
    return {"at": at, "cpu": {"percent": cpu, "load": [0.1, 0, 0]}, "memory": {"percent": 40.0}, "swap": None,
            "disks": [{"mount": "/", "percent": 30.0}], "temperature": 50.0,
            "net": {"recv_per_s": 1.0, "sent_per_s": 1.0},
            "apps": {a: {"source": "process", "cpu_percent": cpu / 2, "memory": 5_000_000} for a in apps}}


async def start(nursery: trio.Nursery, cfg: Config) -> tuple[Broadcast, Supervisor, Any, list[HistoryActor]]:
    broadcast = Broadcast()
    sup = Supervisor("root", emit=broadcast.publish)
    await nursery.start(sup.run)
    made: list[HistoryActor] = []

    def make() -> HistoryActor:
        made.append(HistoryActor(cfg, broadcast.publish, broadcast))
        return made[-1]

    ref = sup.start_child(ChildSpec("history", make))
    await trio.testing.wait_all_tasks_blocked()
    await made[-1].opened.wait()
    return broadcast, sup, ref, made


async def test_samples_are_written_in_one_batch_per_flush_interval(tmp_path: Path,
                                                                   autojump_clock: trio.testing.MockClock) -> None:
    cfg = config(tmp_path, flush_every=300)
    base = time.time() - 1200
    base -= base % 30
    async with trio.open_nursery() as nursery:
        broadcast, _, ref, (actor,) = await start(nursery, cfg)
        for i in range(10):  # five minutes of samples at 30 s
            broadcast.publish(SystemSampled(sample(base + 30 * i, float(i))))
        await trio.testing.wait_all_tasks_blocked()
        assert actor.store is not None and actor.store.writes == 0  # nothing written yet
        began, flushed = trio.current_time(), actor.flushed
        await trio.sleep(299)
        assert actor.store.writes == 0
        await flushed.wait()
        assert actor.store.writes == 1 and trio.current_time() - began >= 300
        await trio.sleep(3600)  # idle: no samples, no writes, no timer firing
        assert actor.store.writes == 1
        for i in range(10, 20):
            broadcast.publish(SystemSampled(sample(base + 30 * i, float(i))))
        began, flushed = trio.current_time(), actor.flushed
        await flushed.wait()
        assert actor.store.writes == 2 and trio.current_time() - began >= 300
        reply = await ref.ask(GetMetricHistory("machine", "1h", 360), timeout=math.inf)
        assert reply["resolution"] == "fine" and reply["step"] == 30
        # every bucket but the open one was written; the open one is shown from memory
        assert [p["cpu"] for p in reply["points"]] == [float(i) for i in range(20)]
        app = await ref.ask(GetMetricHistory("app:app-a", "1h", 360), timeout=math.inf)
        assert [p["cpu"] for p in app["points"]][:3] == [0.0, 0.5, 1.0]
        long = await ref.ask(GetMetricHistory("machine", "30d", 360), timeout=math.inf)
        assert long["resolution"] == "coarse" and long["step"] == 600
        assert 1 <= len(long["points"]) <= 3
        state = await ref.ask(GetHistoryState(), timeout=math.inf)  # the clock jumps during thread work
        assert state["series"] == ["app:app-a", "machine"] and state["size"] > 0
        nursery.cancel_scope.cancel()


async def test_a_restart_keeps_the_charts_data(tmp_path: Path) -> None:
    cfg = config(tmp_path, flush_every=300)
    now = time.time()
    ats = [now - 30 * (10 - i) for i in range(10)]
    async with trio.open_nursery() as nursery:
        broadcast, _, ref, (actor,) = await start(nursery, cfg)
        for i, at in enumerate(ats):
            broadcast.publish(SystemSampled(sample(at, float(i))))
        await trio.testing.wait_all_tasks_blocked()
        before = (await ref.ask(GetMetricHistory("machine", "1h", 360)))["points"]
        assert actor.store is not None and actor.store.writes == 0
        nursery.cancel_scope.cancel()  # a clean stop: what waited is written now
    assert actor.store is None or actor.store.db is None
    async with trio.open_nursery() as nursery:
        _, _, ref, _ = await start(nursery, cfg)
        after = (await ref.ask(GetMetricHistory("machine", "1h", 360)))["points"]
        assert after == before and len(after) == 10
        nursery.cancel_scope.cancel()


async def test_a_chart_is_read_from_the_file_once_per_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty dashboards refreshing read the chart from the read model; a sample or a write that
    changes it makes the next query read the file again, and never shows what it was before."""
    reads: list[str] = []
    real = HistoryStore.read
    monkeypatch.setattr(HistoryStore, "read", lambda self, series, *a: reads.append(series) or real(self, series, *a))
    now = time.time()
    async with trio.open_nursery() as nursery:
        broadcast, _, ref, (actor,) = await start(nursery, config(tmp_path))
        broadcast.publish(SystemSampled(sample(now - 90, 1.0)))
        await trio.testing.wait_all_tasks_blocked()
        first = await ref.ask(GetMetricHistory("machine", "1h", 120))
        for _ in range(20):
            assert await ref.ask(GetMetricHistory("machine", "1h", 120)) == first
        assert actor.view.chart(("machine", "1h", 120)) == first and reads == ["machine"]
        broadcast.publish(SystemSampled(sample(now - 30, 2.0)))  # a new point: the kept chart is dropped
        await trio.testing.wait_all_tasks_blocked()
        assert actor.view.chart(("machine", "1h", 120)) is None
        after = await ref.ask(GetMetricHistory("machine", "1h", 120))
        assert [p["cpu"] for p in after["points"]] == [1.0, 2.0] and reads == ["machine"] * 2
        assert await ref.ask(FlushHistory()) == 2  # written: read again from the file, the same points
        assert actor.view.chart(("machine", "1h", 120)) is None
        assert (await ref.ask(GetMetricHistory("machine", "1h", 120)))["points"] == after["points"]
        assert reads == ["machine"] * 3
        nursery.cancel_scope.cancel()


async def test_the_file_is_only_touched_off_the_trio_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trio_thread = threading.get_ident()
    seen: list[str] = []
    for name in ("open", "write", "read", "close"):
        real = getattr(HistoryStore, name)

        def spy(self: HistoryStore, *args: Any, _real: Any = real, _name: str = name) -> Any:
            if threading.get_ident() == trio_thread:
                seen.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(HistoryStore, name, spy)
    cfg = config(tmp_path)
    async with trio.open_nursery() as nursery:
        broadcast, _, ref, _ = await start(nursery, cfg)
        broadcast.publish(SystemSampled(sample(time.time() - 60, 1.0)))
        broadcast.publish(SystemSampled(sample(time.time(), 2.0)))
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask(FlushHistory()) == 2
        await ref.ask(GetMetricHistory("machine", "24h", 100))
        nursery.cancel_scope.cancel()
    assert seen == []


async def test_a_damaged_file_is_reported_and_history_starts_anew(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.root.mkdir(parents=True)
    cfg.history_file.write_bytes(b"\x00garbage" * 1000)
    async with trio.open_nursery() as nursery:
        broadcast = Broadcast()
        with broadcast.subscribe(accept=lambda e: isinstance(e, StateFileDamaged)) as damaged:
            sup = Supervisor("root", emit=broadcast.publish)
            await nursery.start(sup.run)
            ref = sup.start_child(ChildSpec("history", lambda: HistoryActor(cfg, broadcast.publish, broadcast)))
            with trio.fail_after(10):
                event = await damaged.receive()
        assert event.path == str(cfg.history_file) and event.set_aside_as and "new history" in event.what
        kept = await trio.to_thread.run_sync(Path(event.set_aside_as).read_bytes)
        assert kept == b"\x00garbage" * 1000
        broadcast.publish(SystemSampled(sample(time.time(), 3.0)))
        await trio.testing.wait_all_tasks_blocked()
        assert len((await ref.ask(GetMetricHistory("machine", "1h", 10)))["points"]) == 1
        nursery.cancel_scope.cancel()


async def test_an_unwritable_root_keeps_the_history_in_memory(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.root.parent.mkdir(parents=True, exist_ok=True)
    cfg.root.write_text("a file where the state root should be")
    async with trio.open_nursery() as nursery:
        broadcast, _, ref, (actor,) = await start(nursery, cfg)
        assert actor.store is None and actor.last_error
        broadcast.publish(SystemSampled(sample(time.time(), 3.0)))
        await trio.testing.wait_all_tasks_blocked()
        assert len((await ref.ask(GetMetricHistory("machine", "1h", 10)))["points"]) == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("ask", [GetMetricHistory("../etc", "1h", 10), GetMetricHistory("machine", "1y", 10),
                                 GetMetricHistory("machine", "1h", 0), GetMetricHistory("app:A B", "1h", 10)])
async def test_bad_queries_are_refused_by_name(tmp_path: Path, ask: GetMetricHistory) -> None:
    async with trio.open_nursery() as nursery:
        _, _, ref, _ = await start(nursery, config(tmp_path))
        with pytest.raises(BadRequest):
            await ref.ask(ask)
        nursery.cancel_scope.cancel()
