"""Inbound messages reach trio in as few hops as the trio side allows: a burst that arrives while
trio is busy rides one hop, in order, none lost; a lone message still gets a hop of its own at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.bridge import RedisBridge
from homehelper.messages import BusConnected, BusMessage

from .conftest import FAST, next_event

pytestmark = pytest.mark.redis
N = 200
CHANNEL = "homehelper:main:apps:sensor-1:pub:n"


def hold_trio_until(pred: Any, timeout: float = 10) -> None:
    """Block the calling (trio) thread on purpose: trio cannot take a hop meanwhile."""
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.005)


@asynccontextmanager
async def bridge(url: str) -> AsyncIterator[tuple[RedisBridge, Any]]:
    bus = Broadcast()
    events = bus.subscribe(10_000)
    made: list[RedisBridge] = []
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=bus.publish)
        await nursery.start(root.run)
        root.start_child(ChildSpec("bridge", lambda: made.append(RedisBridge(bus, url, backoff=FAST)) or made[-1]))
        await next_event(events, lambda e: isinstance(e, BusConnected))
        yield made[-1], events
        nursery.cancel_scope.cancel()


async def test_a_burst_while_trio_is_busy_rides_one_hop_in_order(redis: Any, rc: Any) -> None:
    async with bridge(redis.url) as (actor, events):
        handoff = actor.handoff
        assert handoff is not None
        before = handoff.hops
        # trio is busy (this test holds its thread): each message is its own read on the subscriber
        # thread, and all of them wait for the one hop the first one scheduled
        for i in range(N):
            rc.publish(CHANNEL, str(i))
        hold_trio_until(lambda: len(handoff.pending) >= N)
        assert len(handoff.pending) == N
        got = [(await next_event(events, lambda e: isinstance(e, BusMessage))).data for _ in range(N)]
        assert got == list(range(N))  # in order, none lost
        assert handoff.hops - before == 1  # one hop for the whole burst, not N


async def test_one_message_at_a_time_each_goes_at_once(redis: Any, rc: Any) -> None:
    async with bridge(redis.url) as (actor, events):
        handoff = actor.handoff
        assert handoff is not None
        before = handoff.hops
        for i in range(5):
            rc.publish(CHANNEL, str(i))
            assert (await next_event(events, lambda e: isinstance(e, BusMessage))).data == i
        assert handoff.hops - before == 5 and handoff.pending == []
