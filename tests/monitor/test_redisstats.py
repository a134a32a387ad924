"""Redis performance figures against a real redis-server: they move under load, and alerts fire."""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

import pytest
import redis as redis_py
import trio
import trio.testing

from homehelper.actors import ChildSpec
from homehelper.actors.history import HistoryActor
from homehelper.config import Config, HistoryConfig, MonitorConfig
from homehelper.messages import (
    AlertRaised,
    AppStarted,
    BusConnected,
    GetHistoryState,
    GetMetricHistory,
    GetRedisStats,
    SystemSampled,
)
from homehelper.monitor.redisstats import LatencyWindow, RedisHealth, history_row
from tests.bus.conftest import bridge_tree, next_event

pytestmark = pytest.mark.redis


def benchmark(port: int, *args: str) -> None:
    """redis-benchmark, the load tool that ships with redis-server."""
    subprocess.run(["redis-benchmark", "-p", str(port), "-q", *args], check=True, stdout=subprocess.DEVNULL,
                   timeout=120)


def sample(at: float) -> dict[str, Any]:
    return {"at": at, "cpu": {"percent": 1.0, "load": [0.1, 0, 0]}, "memory": {"percent": 40.0}, "swap": None,
            "disks": [], "temperature": None, "net": {"recv_per_s": 0.0, "sent_per_s": 0.0}, "apps": {}}


async def test_redis_figures_move_when_redis_is_loaded(redis: Any) -> None:
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        for i in range(20):
            tree.broadcast.publish(AppStarted(f"app-{i}", 8100 + i, reason="test"))
        before = await tree.bridge.ask(GetRedisStats())
        r, b = before["redis"], before["bridge"]
        assert before["error"] is None and b["connected"] is True
        assert r["pubsub_patterns"] >= 1  # the bridge's own inbound subscriptions
        assert r["connected_clients"] >= 2 and r["used_memory"] > 0
        assert r["maxmemory"] == 0 and r["memory_percent"] is None  # no limit set on this server
        # 100 000 SETs of 512 random keys' values, 1 KB each
        await trio.to_thread.run_sync(benchmark, redis.port, "-t", "set", "-n", "100000", "-r", "100000", "-d", "1024")
        after = await tree.bridge.ask(GetRedisStats())
        ra = after["redis"]
        assert ra["total_commands"] - r["total_commands"] >= 100_000
        assert ra["used_memory"] > r["used_memory"] + 10 * 1024 * 1024  # tens of thousands of 1 KB values
        # ops/s is Redis's own running estimate (sampled every 100 ms): it moves while the load runs
        load = await trio.lowlevel.open_process(["redis-benchmark", "-p", str(redis.port), "-q", "-t", "get", "-n",
                                                 "10000000", "-c", "4"], stdout=subprocess.DEVNULL)
        try:
            async def busy() -> dict[str, Any]:
                with trio.fail_after(20):
                    while True:
                        stats = await tree.bridge.ask(GetRedisStats())
                        fig = stats["redis"]
                        if fig["ops_per_sec"] > 1000 and fig["connected_clients"] >= r["connected_clients"] + 4:
                            return stats
                        await trio.sleep(0.1)  # Redis's own estimate: nothing can wake us when it moves

            await busy()
        finally:
            load.kill()
            await load.wait()
        # the bridge's own: its publishes were timed, the stream holds its events
        assert after["bridge"]["publishes"] >= 1 and after["bridge"]["publish_p99_ms"] is not None
        assert after["bridge"]["publish_p50_ms"] <= after["bridge"]["publish_p99_ms"]
        assert ra["stream_length"] >= 20


async def test_memory_near_maxmemory_raises_an_alert_and_evictions_count(redis: Any, tmp_path: Any) -> None:
    client = redis_py.Redis.from_url(redis.url)
    cfg = Config(root=tmp_path / "state", apps_dir=tmp_path / "apps", history=HistoryConfig(enabled=False),
                 monitor=MonitorConfig(min_duration=0, redis_memory=(50.0, 60.0, 99.5)))
    try:
        async with bridge_tree(redis.url) as tree:
            await next_event(tree.events, lambda e: isinstance(e, BusConnected))
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", str(used + 4 * 1024 * 1024))
            client.config_set("maxmemory-policy", "allkeys-lru")
            history = tree.root.start_child(ChildSpec("history", lambda: HistoryActor(
                cfg, tree.broadcast.publish, tree.broadcast, tree.bridge)))
            await history.ask(GetHistoryState())  # started: it follows the samples from now on
            await trio.to_thread.run_sync(benchmark, redis.port, "-t", "set", "-n", "30000", "-r", "100000",
                                          "-d", "1024")
            tree.broadcast.publish(SystemSampled(sample(time.time())))
            alert = await next_event(tree.events, lambda e: isinstance(e, AlertRaised) and e.metric == "redis_memory")
            # LRU eviction keeps it below the limit, well above half of it
            assert alert.level == "warning" and 60 <= alert.value < 99.5
            stats = await history.ask(GetRedisStats())
            assert stats["redis"]["evicted_keys"] > 0  # the limit was reached: Redis evicted keys
            assert {a["metric"] for a in stats["alerts"]} >= {"redis_memory"}
            point = (await history.ask(GetMetricHistory("redis", "1h", 10)))["points"][-1]
            assert point["memory"] >= 60 and point["evicted"] > 0
    finally:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


async def test_a_drop_alert_fires_when_the_bridge_buffer_overflows(redis: Any, tmp_path: Any) -> None:
    cfg = Config(root=tmp_path / "state", apps_dir=tmp_path / "apps", history=HistoryConfig(enabled=False))
    async with bridge_tree(redis.url, buffer=5) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        history = tree.root.start_child(ChildSpec("history", lambda: HistoryActor(
            cfg, tree.broadcast.publish, tree.broadcast, tree.bridge)))
        await history.ask(GetHistoryState())  # started: it follows the samples from now on
        first = await history.ask(GetRedisStats())
        assert first["bridge"]["dropped"] == 0 and first["alerts"] == []
        redis.kill()  # Redis gone: events wait in the bridge's ring of 5, then the oldest are dropped
        for i in range(40):
            tree.broadcast.publish(AppStarted(f"app-{i}", 8100, reason="test"))
        await trio.testing.wait_all_tasks_blocked()
        tree.broadcast.publish(SystemSampled(sample(time.time())))
        alert = await next_event(tree.events, lambda e: isinstance(e, AlertRaised) and e.metric == "redis_dropped")
        assert alert.level == "warning" and alert.value >= 30
        assert "buffer (5) overflowed" in alert.message
        stats = await history.ask(GetRedisStats())
        assert stats["redis"] is None and stats["bridge"]["dropped"] >= 30
        assert stats["bridge"]["buffered"] <= 5 + 5  # the ring, and the batch (one ring at most) on its way
        redis.start()  # back: the bridge reconnects and says so in its figures
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        back = await history.ask(GetRedisStats())
        assert back["bridge"]["reconnects"] == 1 and back["redis"] is not None


def test_percentiles_cover_the_recent_window_only() -> None:
    w = LatencyWindow(window=10)
    for i in range(100):
        w.add((i + 1) / 1000, now=100.0)
    assert w.percentiles(now=105.0) == (51.0, 100.0)
    assert w.percentiles(now=200.0) == (None, None)
    assert w.count == 100


def test_latency_and_drops_levels_follow_the_config() -> None:
    health = RedisHealth(MonitorConfig(min_duration=0, redis_latency_ms=(10.0, 20.0, 30.0)))
    stats = {"redis": None, "bridge": {"connected": True, "publish_p99_ms": 25.0, "dropped": 0}}
    (raised,) = health.update(stats, now=0.0)
    assert (raised.metric, raised.level) == ("redis_latency", "warning")
    stats["bridge"] = {"connected": True, "publish_p99_ms": 1.0, "dropped": 0}
    (cleared,) = health.update(stats, now=1.0)
    assert cleared.metric == "redis_latency" and cleared.kind == "alert_cleared"
    stats["bridge"] = {"connected": True, "publish_p99_ms": 1.0, "dropped": 3}
    (drop,) = health.update(stats, now=2.0)
    assert drop.metric == "redis_dropped" and drop.value == 3
    stats["bridge"] = {"connected": True, "publish_p99_ms": 1.0, "dropped": 3}  # no new drops: it clears
    assert [e.kind for e in health.update(stats, now=3.0)] == ["alert_cleared"]
    assert history_row(stats)["dropped"] == 3 and not math.isnan(history_row(stats)["p99"])


async def test_redis_is_read_once_per_history_point_however_often_the_sensors_sample(redis: Any, tmp_path: Any) -> None:
    cfg = Config(root=tmp_path / "state", apps_dir=tmp_path / "apps", history=HistoryConfig(enabled=False, step=30))
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        made: list[HistoryActor] = []
        history = tree.root.start_child(ChildSpec("history", lambda: made.append(HistoryActor(
            cfg, tree.broadcast.publish, tree.broadcast, tree.bridge)) or made[-1]))
        await history.ask(GetHistoryState())
        client = redis_py.Redis.from_url(redis.url)
        try:
            def info_calls() -> int:
                return int(client.info("commandstats").get("cmdstat_info", {}).get("calls", 0))

            before = await trio.to_thread.run_sync(info_calls)
            t0 = 1_800_000_000 - 1_800_000_000 % 30
            for i in range(12):  # a sample every 5 s for a minute: two history points
                await made[-1].take(sample(t0 + 5 * i))
            assert await trio.to_thread.run_sync(info_calls) - before - 1 == 2  # the first count was an INFO too
        finally:
            client.close()


async def test_latency_spikes_reach_the_figures(redis: Any) -> None:
    client = redis_py.Redis.from_url(redis.url)
    try:
        client.config_set("latency-monitor-threshold", "10")
        client.latency_reset()
        async with bridge_tree(redis.url) as tree:
            await next_event(tree.events, lambda e: isinstance(e, BusConnected))
            # a script that keeps Redis busy for a while: a real slow command, as Redis sees it
            await trio.to_thread.run_sync(client.eval, "local i = 0 while i < 20000000 do i = i + 1 end return i", 0)
            stats = await tree.bridge.ask(GetRedisStats())
            events = {e["event"]: e for e in stats["redis"]["latency"]}
            assert "command" in events and events["command"]["max_ms"] >= 10
            assert stats["redis"]["latency_max_ms"] >= 10
    finally:
        client.config_set("latency-monitor-threshold", "0")
        client.latency_reset()
        client.close()
