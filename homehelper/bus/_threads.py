"""The blocking halves of the bridge, run in worker threads (redis-py is sync).

The publisher sends a whole batch of events as one pipeline; the subscriber
owns its PubSub object for its whole life (PubSub objects are not thread-safe)
and hands trio what it read through a `Handoff`: one hop (`run_sync_soon` on trio's
token) carries every message that arrived before trio got round to it, so a burst
costs a few hops, not one per message, and a lone message still goes at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..messages import Event
from ._codec import Rejects, decode_inbound, write_event, write_snapshot
from .channels import Channels

log = logging.getLogger(__name__)

# What a lost or refused connection looks like from redis-py.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
SUBSCRIBE_TIMEOUT = 5.0
IN_FLIGHT = 2  # inbound batches (of batch_limit events) waiting for trio before the reader waits


def _keepalive(url: str) -> dict[str, bool]:
    """TCP keepalive notices a peer that vanished; a Unix socket has no such option (redis-py refuses it)."""
    return {} if url.lower().startswith("unix:") else {"socket_keepalive": True}


def connect(url: str, *, socket_timeout: float | None = 5.0) -> redis.Redis:
    """A client that fails fast: the bridge does its own reconnecting, with backoff."""
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name="homehelper-bridge", **_keepalive(url),
    )
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


class Publisher:
    """Writes batches of events; used from one worker thread at a time."""

    def __init__(self, client: redis.Redis, ch: Channels, history: int) -> None:
        self.client = client
        self.ch = ch
        self.history = history
        self.failed = 0  # commands Redis refused (not connection losses): logged, not retried

    def send(self, events: list[Event]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            write_event(pipe, self.ch, event, self.history)
        self._execute(pipe)

    def send_snapshot(self, apps: list[dict[str, Any]], at: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        write_snapshot(pipe, self.ch, apps, at)
        self._execute(pipe)

    def _execute(self, pipe: Any) -> None:
        results = pipe.execute(raise_on_error=False)
        errors = [r for r in results if isinstance(r, Exception)]
        for err in errors:
            if isinstance(err, CONNECTION_ERRORS):
                raise err
        if errors:
            # e.g. a key of ours that someone turned into another type: retrying would fail again
            self.failed += len(errors)
            log.warning("bus: Redis refused %d of %d commands: %s", len(errors), len(results), errors[0])

    def history_range(self, count: int, app_id: str | None, kind: str | None) -> list[dict[str, Any]]:
        """The newest `count` stream entries (matching the filters), oldest first."""
        out: list[dict[str, Any]] = []
        upper = "+"
        chunk = max(count, 100) if (app_id or kind) else count
        while len(out) < count:
            entries: list[tuple[str, dict[str, str]]] = self.client.xrevrange(  # type: ignore[assignment]
                self.ch.stream, max=upper, count=chunk)
            for entry_id, fields in entries:
                if (app_id and fields.get("app") != app_id) or (kind and fields.get("kind") != kind):
                    continue
                try:
                    data = json.loads(fields["data"])
                except (KeyError, ValueError):
                    continue  # not written by a bridge
                data["id"] = entry_id
                out.append(data)
                if len(out) >= count:
                    break
            if len(entries) < chunk:
                break
            upper = "(" + entries[-1][0]
        out.reverse()
        return out


def _nothing() -> None:
    pass


class Handoff:
    """Events read by the subscriber thread, waiting for trio.

    The first event after a delivery schedules one hop; what arrives before that hop runs joins
    its batch (no timer: the hop goes as soon as trio can take it). At most `limit` events wait:
    beyond that the reader waits for trio (back-pressure, a bounded buffer).
    """

    def __init__(self, token: trio.lowlevel.TrioToken, deliver: Callable[[list[Event]], None], limit: int) -> None:
        self.token = token
        self.deliver = deliver
        self.limit = limit
        self.room = threading.Condition()
        self.pending: list[Event] = []
        self.scheduled = False
        self.hops = 0  # trips to the trio thread, for the tests and the benchmark

    def put(self, events: list[Event]) -> None:
        """From the reader thread: queue `events`; raises RunFinishedError once trio is gone."""
        with self.room:
            while len(self.pending) >= self.limit:
                if not self.room.wait(timeout=1.0):
                    self.token.run_sync_soon(_nothing)  # raises RunFinishedError once trio is gone
            self.pending.extend(events)
            if self.scheduled:
                return  # the hop on its way takes these too
            self.scheduled = True
            self.hops += 1
        self.token.run_sync_soon(self._hand)

    def _hand(self) -> None:  # runs in trio
        with self.room:
            batch, self.pending = self.pending, []
            self.scheduled = False
            self.room.notify()
        try:
            self.deliver(batch)
        except Exception:  # an exception here would end trio.run itself
            log.exception("bus: delivering %d inbound events failed", len(batch))


def run_subscriber(url: str, ch: Channels, control: str, on_ready: Callable[[], None],
                   deliver: Callable[[list[Event]], None], batch_limit: int, rejects: Rejects,
                   done: threading.Event, on_handoff: Callable[[Handoff], None] | None = None) -> None:
    """Listen until Redis goes away (raises) or a message on `control` says stop (returns).

    Blocks in the socket read, no polling timer: when idle the thread costs nothing.
    """
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=SUBSCRIBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name="homehelper-bridge-sub", **_keepalive(url),
    )
    pubsub = client.pubsub()
    try:
        pubsub.psubscribe(*ch.inbound_patterns)
        pubsub.subscribe(control)
        waiting = len(ch.inbound_patterns) + 1
        while waiting:  # read the confirmations: "ready" then really means subscribed
            msg = pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            if msg is None:
                raise redis.TimeoutError("Redis did not confirm the subscriptions")
            if msg["type"] in ("psubscribe", "subscribe"):
                waiting -= 1
        token = trio.from_thread.run_sync(trio.lowlevel.current_trio_token)
        handoff = Handoff(token, deliver, batch_limit * IN_FLIGHT)
        if on_handoff is not None:
            on_handoff(handoff)
        trio.from_thread.run_sync(on_ready)

        get = pubsub.get_message
        while True:
            msg = get(timeout=None)
            batch: list[Event] = []
            stop = False
            while msg is not None:
                kind = msg["type"]
                if kind == "pmessage":
                    event = decode_inbound(ch, msg["pattern"], msg["channel"], msg["data"], rejects)
                    if event is not None:
                        batch.append(event)
                        if len(batch) >= batch_limit:
                            break
                elif kind == "message" and msg["channel"] == control:
                    stop = True
                    break
                msg = get(timeout=0.0)
            if batch:
                # Handed over without waiting for trio to finish with it, so this thread reads on.
                handoff.put(batch)
            if stop:
                return
    except trio.RunFinishedError:
        return  # trio is gone: nobody to deliver to
    finally:
        done.set()
        try:
            pubsub.close()
            client.close()
        except Exception:
            pass
