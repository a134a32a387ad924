"""The subscriber's RESP reader (bus/_resp.py): any split of the bytes, bounded by its limit, strict."""

from __future__ import annotations

import json
import random

import pytest

from homehelper.bus._resp import MAX_LINE, TOO_BIG, ProtocolError, Reader
from homehelper.messages import BusConnected, BusMessage, GetBusState

from .conftest import bridge_tree, next_event


def frame(*items: bytes, push: bool = False) -> bytes:
    out = [(b">" if push else b"*") + str(len(items)).encode() + b"\r\n"]
    out += [b"$%d\r\n%s\r\n" % (len(i), i) for i in items]
    return b"".join(out)


def test_frames_come_out_whole_however_the_bytes_are_split() -> None:
    rng = random.Random(7)
    frames = [[b"pmessage", b"p:*", b"p:a", bytes(rng.randrange(256) for _ in range(rng.randrange(300)))]
              for _ in range(100)]
    data = b"".join(frame(*f, push=i % 2 == 0) for i, f in enumerate(frames))  # RESP2 arrays and RESP3 pushes
    for _ in range(20):
        reader, got, pos = Reader(1000), [], 0
        while pos < len(data):
            step = rng.randint(1, 600)
            got += reader.feed(data[pos:pos + step])
            pos += step
        assert got == frames


def test_a_bulk_string_over_the_limit_is_skipped_unread_and_the_next_frame_follows() -> None:
    reader = Reader(100)
    big = frame(b"pmessage", b"p", b"c", b"x" * 100_000)
    got = reader.feed(big[:50])
    for pos in range(50, len(big), 4096):
        got += reader.feed(big[pos:pos + 4096])
        assert len(reader._buf) <= 200  # never holds the big one
    got += reader.feed(frame(b"message", b"c", b"after"))
    assert got == [[b"pmessage", b"p", b"c", TOO_BIG], [b"message", b"c", b"after"]]


def test_subscription_confirmations_nulls_and_a_lone_pong() -> None:
    data = b"*3\r\n$10\r\npsubscribe\r\n$3\r\np:*\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+PONG\r\n*0\r\n"
    assert Reader(10).feed(data) == [[b"psubscribe", b"p:*", b"1"], [b"a", None], [b"PONG"], []]


@pytest.mark.parametrize("data", [b"-NOPERM no\r\n", b"*1\r\n%2\r\n", b"*x\r\n", b"*1\r\n$y\r\n", b"?\r\n",
                                  b"*1\r\n" + b"$" * (MAX_LINE + 10)])
def test_what_a_subscriber_never_gets_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Reader(10).feed(data)


@pytest.mark.redis
async def test_bytes_that_are_not_utf8_are_refused_and_the_bridge_reads_on(redis, rc) -> None:
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        rc.publish("homehelper:main:apps:a1:pub:bad", b"\xff\xfe not text")
        rc.publish("homehelper:main:apps:a1:pub:big", "y" * (300 * 1024))  # skipped unread: over 4x the limit
        rc.publish("homehelper:main:apps:a1:pub:fine", json.dumps({"ok": 1}))
        ev = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
        assert ev.data == {"ok": 1}
        state = await tree.bridge.ask(GetBusState())
        assert state["rejected"] == 2 and state["received"] == 1 and state["connected"]
