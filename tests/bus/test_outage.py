"""Redis absent, unreachable, killed with SIGKILL and back: HomeHelper carries on."""

from __future__ import annotations

import json

import pytest
import trio

from homehelper.errors import Unavailable
from homehelper.messages import AppStarted, BusConnected, BusDisconnected, ConfigChanged, GetBusState, GetEventHistory
from tests.fixtures.redis import free_port

from .conftest import bridge_tree, next_event, wait_until


def stream(r, node: str = "main") -> list[dict]:
    return [json.loads(f["data"]) for _, f in r.xrange(f"homehelper:{node}:stream")]


async def test_runs_without_redis_and_says_so():
    async with bridge_tree("none") as tree:  # the CLI's spelling of "no Redis"
        ev = await next_event(tree.events, lambda e: isinstance(e, BusDisconnected))
        assert ev.url == "" and "no Redis configured" in ev.error
        for i in range(20):
            tree.broadcast.publish(AppStarted(f"app{i}", 8100 + i))
        state = await tree.bridge.ask(GetBusState())
        assert state["enabled"] is False and state["connected"] is False
        assert state["buffered"] == 0 and state["dropped"] == 0  # nothing held for a Redis that is not coming
        with pytest.raises(Unavailable):
            await tree.bridge.ask(GetEventHistory(5))
        history = await tree.root.ref("eventlog").ask(GetEventHistory(3))
        assert [e["app_id"] for e in history] == ["app17", "app18", "app19"]


@pytest.mark.redis
async def test_unreachable_buffers_then_connects_when_configured(redis, rc):
    dead = f"redis://:secret@127.0.0.1:{free_port()}/0"
    async with bridge_tree(dead, buffer=10) as tree:
        down = await next_event(tree.events, lambda e: isinstance(e, BusDisconnected))
        assert "secret" not in down.url and ":***@" in down.url  # never show the password
        for i in range(25):
            tree.broadcast.publish(ConfigChanged({"i": i}))
        state = await tree.bridge.ask(GetBusState())
        # the ring holds the newest 10 of BusDisconnected + 25 events: oldest dropped first, counted
        assert (state["buffered"], state["dropped"], state["connected"]) == (10, 16, False)
        first = state["attempts"]
        await trio.sleep(1.0)  # backoff 0.05, 0.1, 0.2, 0.2, ... s: about 7 more attempts, not hundreds
        attempts = (await tree.bridge.ask(GetBusState()))["attempts"] - first
        assert 3 <= attempts <= 12
        seen = [tree.events._queue.popleft() for _ in range(tree.events.pending())]
        assert not any(isinstance(e, BusDisconnected) for e in seen)  # one BusDisconnected per outage, not per try
        tree.broadcast.publish(ConfigChanged({"redis_url": redis.url}))
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        r = rc
        await wait_until(lambda: any("redis_url" in e.get("changes", {}) for e in stream(r)))
        changes = [e["changes"] for e in stream(r) if e["kind"] == "config_changed"]
        assert changes == [{"i": i} for i in range(16, 25)] + [{"redis_url": redis.url}]  # in order
        await wait_until(lambda: any(e["kind"] == "bus_connected" for e in stream(r)))
        state = await tree.bridge.ask(GetBusState())
        assert state["buffered"] == 0 and state["connected"] is True


@pytest.mark.redis
async def test_kill_9_mid_stream_then_restart(redis, rc):
    r = rc
    async with bridge_tree(redis.url, buffer=1000) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        sent = 0
        first_after_down: list[int] = []
        reached = {100: trio.Event(), 250: trio.Event()}  # the producer says when it has sent so many

        async def producer() -> None:  # a steady stream of events, Redis killed in the middle of it
            nonlocal sent
            for i in range(400):
                tree.broadcast.publish(ConfigChanged({"i": i}))
                sent = i + 1
                if sent in reached:
                    reached[sent].set()
                await trio.sleep(0.002)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            with trio.fail_after(15):
                await reached[100].wait()
            redis.kill()
            await next_event(tree.events, lambda e: isinstance(e, BusDisconnected))
            first_after_down.append(sent)
            state = await tree.bridge.ask(GetBusState())
            assert state["connected"] is False
            unacked = state["published"] - 1  # Redis took BusConnected and events 0 .. this one - 1
            with pytest.raises(Unavailable):
                await tree.bridge.ask(GetEventHistory(5))
            # the rest of the tree does not notice
            assert len(await tree.root.ref("eventlog").ask(GetEventHistory(50))) == 50
            with trio.fail_after(15):
                await reached[250].wait()
            redis.start()  # empty: no persistence
            await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        await wait_until(lambda: any(e.get("changes") == {"i": 399} for e in stream(r)))
        events = stream(r)
        got = [e["changes"]["i"] for e in events if e["kind"] == "config_changed"]
        # what Redis had before the kill died with it; everything from the outage on arrives, once, in order
        assert got == list(range(unacked, 400))
        assert unacked <= first_after_down[0]
        assert "bus_disconnected" in [e["kind"] for e in events]
        assert (await tree.bridge.ask(GetBusState()))["dropped"] == 0
        assert tree.root.children()["bridge"]["starts"] == 1  # never crashed, never restarted
        history = await tree.bridge.ask(GetEventHistory(3, kind="config_changed"))
        assert [e["changes"]["i"] for e in history] == [397, 398, 399]


@pytest.mark.redis
async def test_url_changes_at_run_time_and_threads_end(redis, rc):
    def bridge_clients() -> list[str]:
        return [c["name"] for c in rc.client_list() if c["name"].startswith("homehelper-bridge")]

    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        assert "homehelper-bridge-sub" in bridge_clients()
        tree.broadcast.publish(ConfigChanged({"redis_url": None}))  # e.g. PATCH /api/config
        down = await next_event(tree.events, lambda e: isinstance(e, BusDisconnected))
        assert "changed" in down.error
        # the subscriber thread was woken and let go of its connection: nothing lingers
        await wait_until(lambda: not bridge_clients())
        state = await tree.bridge.ask(GetBusState())
        assert (state["enabled"], state["connected"]) == (False, False)
        tree.broadcast.publish(ConfigChanged({"redis_url": redis.url}))
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        assert (await tree.bridge.ask(GetBusState()))["connected"] is True
    await wait_until(lambda: not bridge_clients())  # and stopping the actor lets go too


@pytest.mark.redis
async def test_a_batch_cut_off_by_the_kill_is_sent_again(redis, rc):
    """Killed while a large pipeline is on its way: nothing Redis did not acknowledge is lost."""
    n = 20_000
    async with bridge_tree(redis.url, buffer=n + 100, history=n + 100) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        for i in range(n):
            tree.broadcast.publish(ConfigChanged({"i": i}))
        await wait_until(lambda: rc.xlen("homehelper:main:stream") > 2000, every=0.001)
        redis.kill()  # the publisher is busy with pipelines of 512: this cuts one off
        await next_event(tree.events, lambda e: isinstance(e, BusDisconnected))
        unacked = (await tree.bridge.ask(GetBusState()))["published"] - 1
        assert unacked < n
        redis.start()
        await next_event(tree.events, lambda e: isinstance(e, BusConnected), timeout=20)
        await wait_until(lambda: (rc.xrevrange("homehelper:main:stream", count=1) or [("", {"kind": ""})])[0][1]
                         ["kind"] == "bus_connected", timeout=20)
        got = [json.loads(f["data"])["changes"]["i"] for _, f in rc.xrange("homehelper:main:stream")
               if f["kind"] == "config_changed"]
        assert got == list(range(unacked, n))
