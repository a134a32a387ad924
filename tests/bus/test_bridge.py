"""The bridge against a real redis-server: out, in, history, health hashes."""

from __future__ import annotations

import json
import subprocess

import pytest
import trio

from homehelper.actors import Actor, Broadcast, ChildSpec, Supervisor
from homehelper.actors.bridge import RedisBridge
from homehelper.errors import BadRequest
from homehelper.messages import (
    AppDiscovered,
    AppHealthChanged,
    AppHeartbeat,
    AppRemoved,
    AppStarted,
    AppStateChanged,
    AppStatusReported,
    BusConnected,
    BusMessage,
    ConfigChanged,
    GetBusState,
    GetEventHistory,
    ListApps,
)

from .conftest import bridge_tree, next_event, wait_until

pytestmark = pytest.mark.redis


def is_connected(ev: object) -> bool:
    return isinstance(ev, BusConnected)


async def test_events_reach_a_redis_cli_subscriber(redis):
    """A real `redis-cli` sees each event on its kind channel and its app channel, as JSON."""
    proc = await trio.lowlevel.open_process(
        ["stdbuf", "-oL", "redis-cli", "-p", str(redis.port), "psubscribe",
         "homehelper:main:events:app_started", "homehelper:main:apps:lamp:events"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    buf = bytearray()

    async def lines(n: int) -> list[str]:
        with trio.fail_after(10):
            while buf.count(b"\n") < n:
                buf.extend(await proc.stdout.receive_some())
        out = []
        for _ in range(n):
            i = buf.index(b"\n")
            out.append(buf[:i].decode())
            del buf[: i + 1]
        return out

    try:
        assert (await lines(6))[::3] == ["psubscribe", "psubscribe"]  # both patterns are live
        async with bridge_tree(redis.url) as tree:
            await next_event(tree.events, is_connected)
            tree.broadcast.publish(AppStarted("lamp", 8101, reason="test"))
            got = await lines(8)
        assert got[0::4] == ["pmessage", "pmessage"]
        assert sorted(got[2::4]) == ["homehelper:main:apps:lamp:events", "homehelper:main:events:app_started"]
        payloads = [json.loads(x) for x in got[3::4]]
        assert payloads[0] == payloads[1]
        assert payloads[0]["kind"] == "app_started"
        assert (payloads[0]["app_id"], payloads[0]["port"], payloads[0]["reason"]) == ("lamp", 8101, "test")
    finally:
        proc.kill()
        await proc.wait()
        await proc.stdout.aclose()


async def test_app_publications_enter_the_tree(redis, rc):
    r = rc
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, is_connected)
        r.publish("homehelper:main:apps:sensor-1:pub:temperature", json.dumps({"c": 21.5}))
        r.publish("homehelper:main:apps:sensor-1:status", json.dumps({"status": "ok", "reading": 3}))
        r.publish("homehelper:main:apps:sensor-1:heartbeat", "")
        r.publish("homehelper:main:apps:sensor-1:pub:note", "not json")
        msg = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
        assert (msg.app_id, msg.channel, msg.data) == (
            "sensor-1", "homehelper:main:apps:sensor-1:pub:temperature", {"c": 21.5})
        status = await next_event(tree.events, lambda e: isinstance(e, AppStatusReported))
        assert (status.app_id, status.status, status.detail) == ("sensor-1", "ok", {"reading": 3})
        beat = await next_event(tree.events, lambda e: isinstance(e, AppHeartbeat))
        assert beat.app_id == "sensor-1"
        text = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
        assert text.data == "not json"  # plain text is kept, not refused
        state = await tree.bridge.ask(GetBusState())
        assert state["received"] == 4 and state["connected"] is True
        # status and heartbeat land in the app's health hash
        health = await wait_until(lambda: r.hgetall("homehelper:main:health:sensor-1").get("heartbeat_at") and
                                  r.hgetall("homehelper:main:health:sensor-1"))
        assert health["status"] == "ok" and json.loads(health["status_detail"]) == {"reading": 3}
        # inbound messages are not echoed back on HomeHelper's channels
        assert r.pubsub_numsub("homehelper:main:events:bus_message")  # (query works)
        assert await tree.bridge.ask(GetEventHistory(10, kind="bus_message")) == []


async def test_each_publication_enters_once_even_if_two_patterns_match(redis, rc):
    r = rc
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, is_connected)
        # 'pub:status' also matches the status pattern (a glob '*' spans ':')
        r.publish("homehelper:main:apps:a1:pub:status", "1")
        r.publish("homehelper:main:apps:a1:pub:last", "2")
        await next_event(tree.events, lambda e: isinstance(e, BusMessage) and e.data == 2)
        state = await tree.bridge.ask(GetBusState())
        assert state["received"] == 2


async def test_bad_inbound_is_counted_and_dropped(redis, rc):
    r = rc
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, is_connected)
        r.publish("homehelper:main:apps:a1:status", json.dumps([1, 2]))  # not a status
        r.publish("homehelper:main:apps:a1:pub:big", "x" * (70 * 1024))  # over the limit
        r.publish("homehelper:main:apps:Bad_Id:status", "ok")  # not an app id: ignored
        r.publish("homehelper:main:apps:a1:pub:fine", "1")
        await next_event(tree.events, lambda e: isinstance(e, BusMessage) and e.data == 1)
        state = await tree.bridge.ask(GetBusState())
        assert state["rejected"] == 2 and state["received"] == 1


async def test_history_stream_and_health_hashes(redis, rc):
    r = rc
    async with bridge_tree(redis.url, history=50) as tree:
        await next_event(tree.events, is_connected)
        tree.broadcast.publish(AppDiscovered("lamp", "Lamp", "service", "/apps/lamp"))
        tree.broadcast.publish(AppStateChanged("lamp", "running", "starting", "user"))
        tree.broadcast.publish(AppHealthChanged("lamp", False, "HTTP 500"))
        tree.broadcast.publish(AppDiscovered("fan", "Fan", "service", "/apps/fan"))
        for i in range(120):
            tree.broadcast.publish(ConfigChanged({"n": i}))
        await wait_until(lambda: r.hget("homehelper:main:health:lamp", "healthy") == "0")
        health = r.hgetall("homehelper:main:health:lamp")
        assert health["state"] == "running" and health["name"] == "Lamp" and health["health_detail"] == "HTTP 500"
        assert r.smembers("homehelper:main:app-ids") == {"lamp", "fan"}

        def newest() -> dict:
            entries = r.xrevrange("homehelper:main:stream", count=1)
            return json.loads(entries[0][1]["data"]) if entries else {}

        await wait_until(lambda: newest().get("changes") == {"n": 119})
        assert r.xlen("homehelper:main:stream") < 200  # MAXLEN ~ trims (approximately)
        last = await tree.bridge.ask(GetEventHistory(3))
        assert [e["changes"]["n"] for e in last] == [117, 118, 119]  # newest last
        assert all("id" in e for e in last)
        lamp = await tree.bridge.ask(GetEventHistory(5, app_id="lamp"))
        assert lamp == [] or all(e["app_id"] == "lamp" for e in lamp)  # may be trimmed already
        with pytest.raises(BadRequest):
            await tree.bridge.ask(GetEventHistory(0))
        tree.broadcast.publish(AppRemoved("lamp"))
        await wait_until(lambda: not r.exists("homehelper:main:health:lamp"))
        assert r.smembers("homehelper:main:app-ids") == {"fan"}


async def test_two_nodes_share_one_redis(redis, rc):
    r = rc
    async with bridge_tree(redis.url, node_id="kitchen") as a, bridge_tree(redis.url, node_id="garage") as b:
        await next_event(a.events, is_connected)
        await next_event(b.events, is_connected)
        r.publish("homehelper:garage:apps:door:status", "open")
        ev = await next_event(b.events, lambda e: isinstance(e, AppStatusReported))
        assert ev.status == "open"
        a.bus.publish(AppStarted("door", 8100))
        await wait_until(lambda: r.exists("homehelper:kitchen:stream"))
        assert (await a.bridge.ask(GetBusState()))["received"] == 0
        assert not any(f["kind"] == "app_started" for _, f in r.xrange("homehelper:garage:stream"))


class FakeRegistry(Actor):
    """Answers ListApps like the registry does (a real actor; the registry has its own tests)."""

    async def handle(self, msg):
        assert isinstance(msg, ListApps)
        return [{"id": "lamp", "state": "running", "port": 8101, "type": "service", "errors": ["x"]},
                {"id": "fan", "state": "stopped", "port": None, "type": "service"}]


async def test_health_hashes_are_refilled_on_connect(redis, rc):
    r = rc
    broadcast = Broadcast()
    events = broadcast.subscribe(100)
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=broadcast.publish)
        await nursery.start(root.run)
        registry = root.start_child(ChildSpec("registry", FakeRegistry))
        root.start_child(ChildSpec("bridge", lambda: RedisBridge(broadcast, redis.url, registry=registry, backoff=(0.05, 0.2))))
        await next_event(events, is_connected)
        await wait_until(lambda: r.exists("homehelper:main:health:fan"))
        assert r.hgetall("homehelper:main:health:lamp") | {"updated_at": "t"} == {
            "state": "running", "port": "8101", "type": "service", "updated_at": "t"}
        assert r.hget("homehelper:main:health:fan", "port") == ""
        assert r.smembers("homehelper:main:app-ids") == {"lamp", "fan"}
        nursery.cancel_scope.cancel()


async def test_a_burst_arrives_complete_and_in_order(redis, rc):
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, is_connected)
        sub = tree.broadcast.subscribe(10_000, accept=lambda e: isinstance(e, BusMessage))

        def burst() -> None:
            pipe = rc.pipeline(transaction=False)
            for i in range(5000):
                pipe.publish("homehelper:main:apps:sensor:pub:n", str(i))
            pipe.execute()

        await trio.to_thread.run_sync(burst)
        got: list[int] = []
        with trio.fail_after(10):
            while len(got) < 5000:
                got += [e.data for e in await sub.receive_batch(10_000)]
        assert got == list(range(5000))
        assert sub.dropped == 0


async def test_a_refused_command_is_counted_not_retried_forever(redis, rc):
    rc.set("homehelper:main:health:lamp", "not a hash")  # someone else's key in our way
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, is_connected)
        tree.broadcast.publish(AppStateChanged("lamp", "running", "starting"))
        tree.broadcast.publish(AppStarted("fan", 8102))
        await wait_until(lambda: rc.hget("homehelper:main:health:fan", "port") == "8102")
        state = await tree.bridge.ask(GetBusState())
        assert state["refused"] == 1 and state["connected"] is True and state["buffered"] == 0
        kinds = [f["kind"] for _, f in rc.xrange("homehelper:main:stream")]
        assert "app_state_changed" in kinds and "app_started" in kinds  # the rest of the batch went out
