"""The Redis bridge: the actor tree's events out to Redis, apps' messages in.

Out: every event on the Broadcast is published on its channels, appended to the
history stream and folded into the app's health hash (homehelper/bus/channels.py
names them all). In: what apps publish on their channels enters the tree as
events (BusMessage, AppStatusReported, AppHeartbeat), published on the Broadcast.

redis-py is sync, so the bridge sends in worker threads under its own capacity
limiter (a publisher that sends whatever is queued as one pipeline); what apps
publish, trio reads itself from the subscribed socket (bus/_inbound.py). Without Redis HomeHelper runs on its
in-process bus alone. With Redis configured but down, events wait in the bounded
subscription ring (oldest dropped first, counted) and go out in order once the
bridge reconnects, with backoff. Redis failing never crashes this actor.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from ..bus._codec import Rejects
from ..bus._inbound import ProtocolError, Subscriber
from ..bus._threads import CONNECTION_ERRORS, Publisher, connect
from ..bus.acl import AppIdentities, configured, redact, shared_note
from ..bus.channels import Channels
from ..errors import BadRequest, Unavailable
from ..messages import (
    AppRemoved,
    BusConnected,
    BusDisconnected,
    BusIdentityKnown,
    BusMessage,
    ConfigChanged,
    Event,
    GetBusState,
    GetEventHistory,
    GetRedisStats,
    ListApps,
)
from ..monitor.redisstats import LatencyWindow, read_redis
from . import Actor, ActorRef, Broadcast

log = logging.getLogger(__name__)

BATCH = 512  # events per pipeline
INBOUND_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, ProtocolError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RedisBridge(Actor):
    name = "bridge"

    def __init__(self, broadcast: Broadcast, url: str | None, node_id: str = "main", *, history: int = 1000,
                 buffer: int = 5000, backoff: tuple[float, float] = (0.5, 30.0), batch: int = BATCH,
                 registry: ActorRef[Any] | None = None, emit: Callable[[object], None] | None = None,
                 identities: AppIdentities | None = None) -> None:
        self.broadcast = broadcast
        self.url = configured(url)
        self.ch = Channels(node_id)
        self.history = history
        self.buffer = buffer
        self.backoff = backoff
        self.batch = batch
        self.registry = registry  # answers ListApps: refills the health hashes after Redis lost them
        self.emit = emit or broadcast.publish
        self.identities = identities  # per-app Redis users: made on connect, deleted with their app
        self.limiter = trio.CapacityLimiter(4)  # publisher, subscriber, history reads, one spare
        self.connected = False
        self.since = time.time()
        self.last_error: str | None = None
        self.published = 0
        self.received = 0
        self.attempts = 0  # connection attempts since start
        self.reconnects = 0  # connections made after the first one
        self.latency = LatencyWindow()  # publish round trips, for GetRedisStats
        self.rejects = Rejects()
        self._publisher: Publisher | None = None
        self._retry: list[Event] = []  # a batch whose send failed: it goes first, in order
        self.inbound: Subscriber | None = None  # the current session's reader (counts its wake-ups)
        self._url_changed = trio.Event()
        self._down_reported = False
        self._ups = 0

    # --- the actor ---------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.sub = self.broadcast.subscribe(self.buffer, accept=self._accept)
        if self.url is None:
            self._report_down("", "no Redis configured: HomeHelper runs on its in-process bus alone")
        nursery.start_soon(self._connection_loop)

    async def on_stop(self) -> None:
        self.sub.close()

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetBusState():
                return self.state()
            case GetEventHistory(count, app_id, kind):
                return await self.history_range(count, app_id, kind)
            case GetRedisStats():
                return await self.redis_stats()
            case _:
                raise BadRequest(f"bridge: unknown message {type(msg).__name__}")

    def state(self) -> dict[str, Any]:
        return {
            "enabled": self.url is not None, "connected": self.connected, "url": redact(self.url),
            "node_id": self.ch.node, "since": self.since, "last_error": self.last_error,
            "buffered": self.buffered, "buffer_size": self.buffer, "dropped": self.sub.dropped,
            "published": self.published, "received": self.received, "rejected": self.rejects.count,
            "attempts": self.attempts,
            "refused": self._publisher.failed if self._publisher else 0,
            **self._identity(),
        }

    def _identity(self) -> dict[str, Any]:
        if self.identities is not None:
            return self.identities.snapshot()
        if self.url is None:
            return {"identity": "none", "identity_note": ""}
        return {"identity": "shared", "identity_note": shared_note("no per-app users on this bridge")}

    async def redis_stats(self) -> dict[str, Any]:
        """Redis's figures (None when not connected) and the bridge's own, taken now."""
        p50, p99 = self.latency.percentiles()
        own = {"connected": self.connected if self.url is not None else None, "buffered": self.buffered,
               "buffer_size": self.buffer, "dropped": self.sub.dropped, "published": self.published,
               "reconnects": self.reconnects, "publish_p50_ms": p50, "publish_p99_ms": p99,
               "publishes": self.latency.count}
        publisher, figures, error = self._publisher, None, None
        if publisher is not None:
            try:
                figures = await trio.to_thread.run_sync(read_redis, publisher.client, self.ch.stream,
                                                        limiter=self.limiter, abandon_on_cancel=True)
            except Exception as exc:  # a slow or vanished Redis: say so, the bridge's figures still count
                error = _describe(exc)
        return {"at": time.time(), "enabled": self.url is not None, "bridge": own, "redis": figures, "error": error}

    @property
    def buffered(self) -> int:
        return len(self._retry) + self.sub.pending()

    async def history_range(self, count: int, app_id: str | None = None,
                            kind: str | None = None) -> list[dict[str, Any]]:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise BadRequest(f"count must be a positive integer, got {count!r}")
        publisher = self._publisher
        if publisher is None:
            raise Unavailable("Redis is not connected: the event log has the in-process history")
        try:
            count = min(count, max(self.history, 1))
            return await trio.to_thread.run_sync(publisher.history_range, count, app_id, kind, limiter=self.limiter)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"Redis did not answer: {_describe(exc)}") from None

    # --- what enters the outbound ring -----------------------------------
    def _accept(self, event: Any) -> bool:
        # Runs in the publisher's task for every event: keep it cheap.
        if not isinstance(event, Event):
            # Plain records (a child started or exited) stay in process; crashes, restarts and
            # quarantines are Events and go to Redis.
            return False
        if type(event) is ConfigChanged and "redis_url" in event.changes:
            self._set_url(event.changes["redis_url"])
        elif type(event) is AppRemoved and self.identities is not None:
            self._nursery.start_soon(self._guarded, self.identities.forget, event.app_id)
        # Without a Redis to go to, buffering would only hold stale events.
        return self.url is not None and type(event) is not BusMessage  # apps' messages are on Redis already

    def _set_url(self, url: str | None) -> None:
        url = configured(url)
        if url != self.url:
            log.info("bus: Redis URL changed to %s", redact(url) or "none")
            self.url = url
            if self.identities is not None:
                self.identities.set_url(url)
            self._url_changed.set()

    # --- connection --------------------------------------------------------
    async def _connection_loop(self) -> None:
        delay = self.backoff[0]
        while True:
            self._url_changed = trio.Event()
            url = self.url
            if url is None:
                await self._url_changed.wait()
                continue
            was_up = await self._session(url)
            if self.url != url:
                delay = self.backoff[0]
                continue
            if was_up:
                delay = self.backoff[0]
            with trio.move_on_after(delay):
                await self._url_changed.wait()
            delay = min(delay * 2, self.backoff[1])

    async def _session(self, url: str) -> bool:
        """Connect, run both directions until one fails or the URL changes. True if it got connected."""
        self.attempts += 1
        try:
            client = await trio.to_thread.run_sync(connect, url, limiter=self.limiter)
        except Exception as exc:  # refused, a bad URL, a wrong password...: say so, retry with backoff
            self._report_down(url, _describe(exc))
            return False
        self._publisher = Publisher(client, self.ch, self.history)
        control = self.ch.control(secrets.token_hex(6))
        sub_done = threading.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._publish_loop, self._publisher, nursery.cancel_scope)
                nursery.start_soon(self._subscribe_loop, url, control, sub_done, nursery.cancel_scope)
                nursery.start_soon(self._watch_url, nursery.cancel_scope)
                if self.identities is not None:  # Redis may have lost the apps' users (a restart)
                    nursery.start_soon(self._restore_identities, self.identities)
        finally:
            self._publisher = None
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await self._close(client, control, sub_done)
        was_up = self.connected
        self._report_down(url, self.last_error or "disconnected")
        return was_up

    async def _close(self, client: Any, control: str, sub_done: threading.Event) -> None:
        def close() -> None:
            try:
                if not sub_done.is_set():  # wake the subscriber thread out of its blocking read
                    client.publish(control, "stop")
            except CONNECTION_ERRORS:
                pass  # Redis is gone, and so is the subscriber's socket: its thread ends by itself
            finally:
                client.close()

        await trio.to_thread.run_sync(close, limiter=self.limiter)

    async def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception:  # users are a safeguard: a failure here must not take the bus down
            log.exception("bus: managing Redis users failed")

    async def _restore_identities(self, identities: AppIdentities) -> None:
        await self._guarded(identities.restore)
        known = identities.snapshot()  # what the bus state says from now on; tests wait on it
        self.emit(BusIdentityKnown(known["identity"], known["identity_note"]))

    async def _watch_url(self, scope: trio.CancelScope) -> None:
        await self._url_changed.wait()
        self.last_error = "Redis URL changed"
        scope.cancel()

    def _report_up(self, url: str) -> None:
        self.reconnects += 1 if self._ups else 0
        self._ups += 1
        self.connected, self.since, self.last_error, self._down_reported = True, time.time(), None, False
        log.info("bus: connected to Redis at %s (node %s, %d events buffered)", redact(url), self.ch.node,
                 self.buffered)
        self.emit(BusConnected(redact(url)))

    def _report_down(self, url: str, error: str) -> None:
        was_up, self.connected = self.connected, False
        self.last_error = error
        if was_up or not self._down_reported:  # once per outage, not once per retry
            self._down_reported = True
            self.since = time.time()
            if url and url == self.url:
                log.warning("bus: Redis at %s unavailable (%s); buffering up to %d events", redact(url), error,
                            self.buffer)
            elif url:
                log.info("bus: left Redis at %s (%s)", redact(url), error)
            else:
                log.info("bus: %s", error)
            self.emit(BusDisconnected(redact(url), error, self.buffered))
        else:
            log.debug("bus: still no Redis at %s: %s", redact(url), error)

    # --- outbound ----------------------------------------------------------
    async def _publish_loop(self, publisher: Publisher, scope: trio.CancelScope) -> None:
        try:
            await self._refill_health(publisher)
            while True:
                if self._retry:
                    batch, self._retry = self._retry, []
                else:
                    batch = await self.sub.receive_batch(self.batch)
                try:
                    # abandon_on_cancel: a Redis that hangs must not hold up a shutdown (the
                    # batch counts as unsent; at worst it goes out twice)
                    began = time.perf_counter()
                    await trio.to_thread.run_sync(publisher.send, batch, limiter=self.limiter, abandon_on_cancel=True)
                    self.latency.add(time.perf_counter() - began)
                except BaseException:
                    self._retry = batch  # sent again first after the reconnect: order holds
                    raise
                self.published += len(batch)
        except CONNECTION_ERRORS as exc:
            self.last_error = _describe(exc)
            scope.cancel()
        except trio.EndOfChannel:
            pass  # the actor is stopping (on_stop closed the subscription)

    async def _refill_health(self, publisher: Publisher) -> None:
        if self.registry is None:
            return
        try:
            apps = await self.registry.ask(ListApps(), timeout=5)
        except Exception as exc:  # best effort: the events refill the hashes anyway
            log.debug("bus: no app snapshot for the health hashes: %s", exc)
            return
        await trio.to_thread.run_sync(publisher.send_snapshot, apps, time.time(), limiter=self.limiter)

    # --- inbound -----------------------------------------------------------
    async def _subscribe_loop(self, url: str, control: str, done: threading.Event, scope: trio.CancelScope) -> None:
        try:
            self.inbound = Subscriber(self.ch, control, self._deliver, self.rejects)
            await self.inbound.run(url, lambda: self._report_up(url), self.limiter)
        except INBOUND_ERRORS as exc:
            self.last_error = _describe(exc)
        finally:
            done.set()  # the subscription's socket is closed: nobody to wake with a stop message
            scope.cancel()

    def _deliver(self, batch: list[Event]) -> None:
        # Everything one read brought (all that came while trio was busy), on the trio thread.
        self.received += len(batch)
        for event in batch:
            self.emit(event)
