"""The broadcast: fan-out, bounded rings, batches, filters."""

from __future__ import annotations

import trio
import trio.testing

from homehelper.actors import Broadcast


async def test_every_subscriber_gets_every_event_in_order() -> None:
    broadcast = Broadcast()
    a, b = broadcast.subscribe(), broadcast.subscribe()
    for i in range(3):
        broadcast.publish(i)
    assert [await a.receive() for _ in range(3)] == [0, 1, 2]
    assert await b.receive_batch() == [0, 1, 2]


async def test_a_slow_subscriber_loses_its_oldest_events_and_counts_them() -> None:
    broadcast = Broadcast()
    slow = broadcast.subscribe(maxlen=4)
    for i in range(10):
        broadcast.publish(i)  # never blocks the publisher
    assert slow.dropped == 6
    assert await slow.receive_batch() == [6, 7, 8, 9]


async def test_receive_waits_for_the_next_event() -> None:
    broadcast = Broadcast()
    sub = broadcast.subscribe()
    got: list[int] = []

    async def reader() -> None:
        got.append(await sub.receive())

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()  # the reader waits on the empty subscription
        assert got == []
        broadcast.publish(7)
    assert got == [7]


async def test_filters_and_close() -> None:
    broadcast = Broadcast()
    with broadcast.subscribe(accept=lambda e: e % 2 == 0) as evens:
        for i in range(6):
            broadcast.publish(i)
        assert await evens.receive_batch(limit=2) == [0, 2]
        assert await evens.receive_batch() == [4]
    assert broadcast.subscribers == 0
    async for _ in evens:  # a closed, drained subscription ends iteration
        raise AssertionError("nothing should remain")
