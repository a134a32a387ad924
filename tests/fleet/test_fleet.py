"""Three HomeHelpers over one real redis-server: presence, the fleet view, actions across nodes."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis as redis_py
import trio

from homehelper.bus import commands, presence
from homehelper.messages import AppStateChanged, FleetAway, FleetCommandHandled, FleetJoined
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.tree import wait_until

from .conftest import FAST, ChildNode, get_fleet, node_config, open_node, statuses

pytestmark = pytest.mark.redis


async def post(url: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{url}{path}", timeout=60, **kw)  # type: ignore[arg-type]


async def test_three_nodes_see_each_other_a_stop_crosses_and_a_killed_node_goes_offline(state_root, redis):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    write_app(state_root / "c" / "apps", "gate", HEALTHY_APP)
    child = ChildNode(state_root / "c", "c", redis.url)
    try:
        async with open_node(node_config(state_root / "a", "a", redis.url)) as a, \
                open_node(node_config(state_root / "b", "b", redis.url)) as b:
            await child.start()
            for node in (a, b):  # each sees the other two (and itself)
                seen = await wait_until(lambda n=node: _all_online(n.url, {"a", "b", "c"}), timeout=30)
                assert set(statuses(seen)) == {"a", "b", "c"}
            fleet = await get_fleet(a.url)
            card = next(n for n in fleet["nodes"] if n["node"] == "b")["summary"]
            assert card["url"] == b.url and card["version"] and card["apps"][0]["id"] == "lamp"
            assert card["counts"] == {"stopped": 1}

            # A stop issued on node A reaches node B's app, and the result shows on A.
            assert (await post(b.url, "/api/apps/lamp/start")).status_code == 200
            await b.recorder.wait(AppStateChanged, "lamp", state="running", timeout=60)
            mark = len(b.recorder.events)
            reply = await post(a.url, "/api/fleet/b/apps/lamp/stop")
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["ok"] is True and body["timeout"] is False and body["app"]["state"] == "stopped"
            handled = await b.recorder.wait_after(mark, FleetCommandHandled, "lamp")
            assert (handled.action, handled.asker, handled.ok) == ("stop", "a", True)
            assert handled.user.startswith("loopback@")
            assert a.recorder.of(FleetCommandHandled) == []  # A asked; only B acted

            # kill -9 of node C: shown offline within the TTL, by nobody writing on its behalf.
            child.kill9()
            killed = time.time()
            gone = await wait_until(lambda: _status_of(a.url, "c", "offline"), timeout=FAST["ttl"] + 5)
            assert time.time() - killed <= FAST["ttl"] + 1.0
            c_node = next(n for n in gone["nodes"] if n["node"] == "c")
            assert c_node["since"] <= killed + 0.5  # offline since its last summary
            assert statuses(gone)["b"] == "online"
            assert [x["id"] for x in c_node["summary"]["apps"]] == ["gate"]  # its last report, kept
            for node in (a, b):  # nobody acts for a dead node
                assert node.recorder.of(FleetCommandHandled, "gate") == []
    finally:
        child.stop()


async def _all_online(url: str, nodes: set[str]) -> dict | None:
    fleet = await get_fleet(url)
    return fleet if {n for n, s in statuses(fleet).items() if s == "online"} >= nodes else None


async def _status_of(url: str, node: str, status: str) -> dict | None:
    fleet = await get_fleet(url)
    return fleet if statuses(fleet).get(node) == status else None


async def test_a_clean_leave_removes_the_node_at_once(state_root, redis):
    async with open_node(node_config(state_root / "a", "a", redis.url)) as a:
        async with open_node(node_config(state_root / "b", "b", redis.url, ttl=600)):
            assert "b" in statuses(await wait_until(lambda: _status_of(a.url, "b", "online")))
        fleet = await get_fleet(a.url)  # right after B stopped, well within its 600 s TTL
        assert statuses(fleet) == {"a": "online"}
        rc = redis_py.Redis.from_url(redis.url, decode_responses=True)
        assert rc.exists(presence.alive_key("b"), presence.last_key("b")) == 0
        rc.close()


async def test_a_timeout_is_named_and_the_late_node_does_not_act(state_root, redis):
    async with open_node(node_config(state_root / "a", "a", redis.url, command_timeout=0.5)) as a:
        reply = await post(a.url, "/api/fleet/sleepy/apps/lamp/stop")
        assert reply.status_code == 200
        body = reply.json()
        assert body["ok"] is False and body["timeout"] is True
        assert "sleepy did not answer within 0.5 s" in body["error"]
        # The command waits on sleepy's stream with its expiry: when sleepy comes, it refuses it.
        write_app(state_root / "s" / "apps", "lamp", HEALTHY_APP)
        async with open_node(node_config(state_root / "s", "sleepy", redis.url)) as sleepy:
            handled = (await sleepy.recorder.wait(FleetCommandHandled, "lamp"))[0]
            assert handled.ok is False and "expired" in handled.error
            assert sleepy.recorder.of(AppStateChanged, "lamp", state="stopping") == []


async def test_a_repeated_command_is_answered_again_not_acted_on_twice(state_root, redis):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    rc = redis_py.Redis.from_url(redis.url, decode_responses=True)
    async with open_node(node_config(state_root / "b", "b", redis.url)) as b:
        cmd = commands.FleetCommand(uuid.uuid4().hex, "b", "lamp", "start", "x", "tester", time.time() + 60)
        commands.send(rc, cmd)
        first = await trio.to_thread.run_sync(commands.wait_reply, rc, "x", cmd.id, 60)
        assert first["ok"] is True and first["app"]["state"] in ("starting", "running")
        commands.send(rc, cmd)  # the same id again: a retry, a redelivery
        second = await trio.to_thread.run_sync(commands.wait_reply, rc, "x", cmd.id, 30)
        assert second == first
        await b.recorder.wait(FleetCommandHandled, "lamp")
        assert len(b.recorder.of(FleetCommandHandled, "lamp")) == 1
        assert len(b.recorder.of(AppStateChanged, "lamp", state="starting")) == 1
        assert rc.xpending(commands.stream_key("b"), commands.GROUP)["pending"] == 0
        await post(b.url, "/api/apps/lamp/stop")
    rc.close()


async def test_damaged_entries_are_skipped_and_the_node_goes_on(state_root, redis):
    rc = redis_py.Redis.from_url(redis.url, decode_responses=True)
    async with open_node(node_config(state_root / "b", "b", redis.url)) as b:
        for junk in ("{", json.dumps([1]), json.dumps({"id": "../x", "action": "stop"}), "x" * 20000):
            rc.xadd(commands.stream_key("b"), {"cmd": junk})
        rc.xadd(commands.stream_key("b"), {"other": "field"})
        cmd = commands.FleetCommand(uuid.uuid4().hex, "b", "nosuch", "stop", "x", "tester", time.time() + 60)
        commands.send(rc, cmd)
        reply = await trio.to_thread.run_sync(commands.wait_reply, rc, "x", cmd.id, 30)
        assert reply["ok"] is False and "nosuch" in reply["error"]
        await wait_until(lambda: rc.xpending(commands.stream_key("b"), commands.GROUP)["pending"] == 0)
        assert b.rt.root.children()["fleet"]["starts"] == 1
    rc.close()


async def test_redis_away_the_fleet_is_unknown_and_the_node_rejoins(state_root, redis):
    async with open_node(node_config(state_root / "a", "a", redis.url)) as a:
        assert statuses(await get_fleet(a.url)) == {"a": "online"}  # a person looked once
        mark = len(a.recorder.events)
        redis.kill()
        await a.recorder.wait_after(mark, FleetAway, timeout=30)
        fleet = await get_fleet(a.url)
        assert fleet["redis"] == "unknown" and statuses(fleet) == {"a": "unknown"}
        async with httpx.AsyncClient() as c:  # the node itself goes on
            assert (await c.get(f"{a.url}/api/apps")).status_code == 200
        mark = len(a.recorder.events)
        redis.start()
        await a.recorder.wait_after(mark, FleetJoined, timeout=60)
        assert statuses(await get_fleet(a.url)) == {"a": "online"}
        assert a.rt.root.children()["fleet"]["starts"] == 1  # no restart: the same actor rejoined


def test_the_summary_of_a_node_is_small(state_root: Path) -> None:
    # 200 apps' states in one summary stay well under the reader's limit.
    summary = {"apps": [{"id": f"app-{i}", "name": f"App {i}", "state": "running", "healthy": True,
                         "type": "service", "approved": True, "last_error": ""} for i in range(200)]}
    assert len(json.dumps(summary)) < presence.MAX_SUMMARY


async def test_the_fleet_follows_redis_url_changed_at_run_time(state_root, redis):
    async with open_node(node_config(state_root / "a", "a", None)) as a:
        assert (await get_fleet(a.url))["enabled"] is False
        async with httpx.AsyncClient() as c:
            r = await c.patch(f"{a.url}/api/config", json={"redis_url": redis.url}, timeout=30)
            assert r.status_code == 200, r.text
            await a.recorder.wait(FleetJoined)
            assert statuses(await get_fleet(a.url)) == {"a": "online"}
            r = await c.patch(f"{a.url}/api/config", json={"redis_url": None}, timeout=30)
            assert r.status_code == 200, r.text
        rc = redis_py.Redis.from_url(redis.url, decode_responses=True)
        await wait_until(lambda: rc.exists(presence.alive_key("a")) == 0)  # it left at once, not by TTL
        assert rc.smembers(presence.NODES) == set()
        rc.close()
        assert a.rt.root.children()["fleet"]["starts"] == 1
