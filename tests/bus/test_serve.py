"""HomeHelper as a whole, with no Redis at all and through a Redis outage."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from homehelper.actors import Broadcast
from homehelper.config import load_config
from homehelper.messages import BusConnected, BusDisconnected, BusIdentityKnown, GetBusState
from homehelper.serve import Overrides, serve
from tests.fixtures.redis import free_port
from tests.fixtures.tree import Recorder

from .conftest import next_event, wait_until


async def health(url: str) -> int:
    async with httpx.AsyncClient() as c:
        return (await c.get(f"{url}/api/health")).status_code


async def history(url: str, source: str) -> httpx.Response:
    async with httpx.AsyncClient() as c:  # loopback without login: set by these tests' config
        return await c.get(f"{url}/api/events", params={"source": source, "limit": 50})


def settings(state_root, redis_url):
    return load_config(state_root, overrides={"port": free_port(), "redis_url": redis_url,
                                              "auth": {"loopback_without_login": True}}, environ={})


async def test_serves_with_no_redis_at_all(state_root):
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, settings(state_root, None))
        assert await health(rt.url) == 200
        state = await rt.refs["bridge"].ask(GetBusState())
        assert (state["enabled"], state["connected"]) == (False, False)
        assert (await history(rt.url, "redis")).status_code == 409
        local = await history(rt.url, "local")
        assert local.status_code == 200 and "server_started" in [e["kind"] for e in local.json()]
        nursery.cancel_scope.cancel()


@pytest.mark.redis
async def test_keeps_serving_while_redis_is_killed(state_root, redis):
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, settings(state_root, redis.url))
        events = rt.broadcast.subscribe(1000)
        state = await rt.refs["bridge"].ask(GetBusState())
        if not state["connected"]:
            await next_event(events, lambda e: isinstance(e, BusConnected))

        async def in_redis() -> bool:  # what happened before the connection reaches the stream too
            return "server_started" in [e["kind"] for e in (await history(rt.url, "redis")).json()]

        await wait_until(in_redis, timeout=10)  # the one poller: the condition lives in Redis
        redis.kill()
        await next_event(events, lambda e: isinstance(e, BusDisconnected))
        assert await health(rt.url) == 200
        gone = await history(rt.url, "redis")
        assert gone.status_code == 409 and "in-process history" in gone.json()["message"]
        redis.start()
        await next_event(events, lambda e: isinstance(e, BusConnected))
        assert rt.root.children()["bridge"]["starts"] == 1
        assert await health(rt.url) == 200
        nursery.cancel_scope.cancel()


@pytest.mark.redis
@pytest.mark.parametrize(("acl", "identity"), [("off", "shared"), ("auto", "per-app")])
async def test_the_bus_state_says_whether_apps_share_one_identity(state_root, clean_users, acl, identity):
    config = load_config(state_root, overrides={"port": free_port(), "redis_url": clean_users.url, "redis_acl": acl,
                                                "auth": {"loopback_without_login": True}}, environ={})
    broadcast = Broadcast()
    recorder = Recorder(broadcast)
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(partial(serve, config, overrides=Overrides(broadcast=broadcast)))
        assert rt.ctx.identities is not None and rt.ctx.identities.mode == acl
        [known] = await recorder.wait(BusIdentityKnown, timeout=10)
        state = await rt.refs["bridge"].ask(GetBusState())
        assert known.identity == state["identity"] == identity
        assert ("share one Redis identity" in state["identity_note"]) == (identity == "shared")
        nursery.cancel_scope.cancel()
