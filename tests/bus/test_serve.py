"""HomeHelper as a whole, with no Redis at all and through a Redis outage."""

from __future__ import annotations

import httpx
import pytest
import trio

from homehelper.config import load_config
from homehelper.messages import BusConnected, BusDisconnected, GetBusState
from homehelper.serve import serve
from tests.fixtures.redis import free_port

from .conftest import next_event


async def health(url: str) -> int:
    async with httpx.AsyncClient() as c:
        return (await c.get(f"{url}/api/health")).status_code


async def test_serves_with_no_redis_at_all(state_root):
    config = load_config(state_root, overrides={"port": free_port(), "redis_url": None}, environ={})
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        assert await health(rt.url) == 200
        if "bridge" in rt.refs:  # wired by serve.py
            state = await rt.refs["bridge"].ask(GetBusState())
            assert (state["enabled"], state["connected"]) == (False, False)
        nursery.cancel_scope.cancel()


@pytest.mark.redis
async def test_keeps_serving_while_redis_is_killed(state_root, redis):
    config = load_config(state_root, overrides={"port": free_port(), "redis_url": redis.url}, environ={})
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        events = rt.bus.subscribe(1000)
        wired = "bridge" in rt.refs
        if wired:
            state = await rt.refs["bridge"].ask(GetBusState())
            if not state["connected"]:
                await next_event(events, lambda e: isinstance(e, BusConnected))
        redis.kill()
        if wired:
            await next_event(events, lambda e: isinstance(e, BusDisconnected))
        assert await health(rt.url) == 200
        redis.start()
        if wired:
            await next_event(events, lambda e: isinstance(e, BusConnected))
            assert rt.root.children()["bridge"]["starts"] == 1
        assert await health(rt.url) == 200
        nursery.cancel_scope.cancel()
