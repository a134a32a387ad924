"""The bus from an app's side: publish and subscribe on HomeHelper's Redis channels (sync redis-py).

Without Redis (HH_REDIS_URL empty) the bus is off: publishing does nothing, says so once in the
log, and subscriptions yield nothing; the app still runs. A Redis outage is logged, never raised,
so the bus cannot take an app down. The channels are plain Redis (docs/bus.md): the SDK is optional.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..bus.channels import Channels, check_app, check_name, check_topic
from ._env import Settings, settings

log = logging.getLogger("homehelper.sdk")

MAX_MESSAGE = 64 * 1024  # bytes; the bridge ignores bigger messages


@dataclass(frozen=True)
class Message:
    """One message from the bus: who sent it, on which topic, and what (JSON-decoded)."""

    channel: str
    app_id: str | None  # who published it (for HomeHelper's own events: the app they are about)
    topic: str  # an app's topic, or for HomeHelper's events their kind
    data: Any  # JSON-decoded when it was JSON, else the text as sent


class Bus:
    """Publish and subscribe on the documented channels. Sync; one per app (thread-safe for publishing)."""

    def __init__(self, config: Settings | None = None) -> None:
        self.settings = config or settings()
        self.ch = Channels(self.settings.node_id)
        self._down = False
        self.client: Any = None
        if self.settings.redis_url is None:
            log.info("homehelper.sdk: HH_REDIS_URL is empty, the bus is off (publish and subscribe do nothing)")
            return
        import redis  # only apps that use the bus need the package

        self.client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True,
                                           socket_connect_timeout=2.0, socket_timeout=5.0)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def publish(self, topic: str, data: Any = None) -> int:
        """Publish on `homehelper:<node>:apps:<me>:pub:<topic>`; returns how many subscribers got it."""
        return self._send(self.ch.topic(self.settings.app_id, check_topic(topic)), data)

    def status(self, status: str, **detail: Any) -> int:
        """Report the app's own status ('ok', 'degraded', ...) with any details."""
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty string, got {status!r}")
        return self._send(self.ch.status(self.settings.app_id), {"status": status, **detail})

    def heartbeat(self, **data: Any) -> int:
        """Say "I am alive" on the bus (shown on the dashboard); the watchdog is sdk.heartbeat()."""
        return self._send(self.ch.heartbeat(self.settings.app_id), data)

    def subscribe(self, topic: str = "*", app: str | None = None) -> Subscription:
        """Apps' publications on `topic` ('*': every topic), from every app or just `app`."""
        wanted = self.ch.topic_pattern(topic, app)
        if topic != "*" and app is not None:
            return self._subscription(channels=[wanted])
        # An app's own Redis user may PSUBSCRIBE only the patterns it was granted, literally
        # (Redis compares patterns as text): a narrower pattern is matched here instead.
        every = self.ch.topic_pattern("*")
        return self._subscription(patterns=[every], wanted=None if wanted == every else wanted)

    def events(self, *kinds: str, app: str | None = None) -> Subscription:
        """HomeHelper's events: these kinds (all if none), or every event about `app`."""
        if app is not None:
            return self._subscription(channels=[self.ch.app_events(check_app(app))])
        if kinds:
            return self._subscription(channels=[self.ch.event(check_name("kind", k)) for k in kinds])
        return self._subscription(patterns=[self.ch.event("*")])

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, channel: str, data: Any) -> int:
        text = json.dumps(data, separators=(",", ":"), default=str)
        if len(text.encode()) > MAX_MESSAGE:
            raise ValueError(f"message on {channel} is {len(text.encode())} bytes, over the {MAX_MESSAGE} limit")
        if self.client is None:
            return 0
        try:
            receivers = int(self.client.publish(channel, text))
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            if not self._down:
                log.warning("homehelper.sdk: Redis unavailable (%s); messages are dropped until it is back", exc)
            self._down = True
            return 0
        if self._down:
            log.info("homehelper.sdk: Redis is back")
            self._down = False
        return receivers

    def _subscription(self, channels: list[str] | None = None, patterns: list[str] | None = None,
                      wanted: str | None = None) -> Subscription:
        if self.client is None:
            return Subscription(None, self.ch)
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if channels:
            pubsub.subscribe(*channels)
        if patterns:
            pubsub.psubscribe(*patterns)
        return Subscription(pubsub, self.ch, wanted)


def _is_connection_error(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))


class Subscription:
    """Iterate it (blocks), or `get(timeout)`. Keep each one in one thread (redis-py's rule)."""

    def __init__(self, pubsub: Any, ch: Channels, wanted: str | None = None) -> None:
        self._pubsub = pubsub
        self._ch = ch
        self._wanted = wanted  # a glob the channel must match (names hold no glob characters)

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds (None: wait for one)."""
        if self._pubsub is None:
            if timeout:
                time.sleep(timeout)
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = self._pubsub.get_message(timeout=left)
            except Exception as exc:
                if not _is_connection_error(exc):
                    raise
                log.warning("homehelper.sdk: Redis unavailable (%s); retrying", exc)
                time.sleep(min(1.0, left if left is not None else 1.0))
                msg = None
            if msg is not None and msg.get("type") in ("message", "pmessage") and (
                    self._wanted is None or fnmatchcase(msg["channel"], self._wanted)):
                return self._decode(msg["channel"], msg["data"])
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def __iter__(self) -> Iterator[Message]:
        if self._pubsub is None:
            return
        while True:
            msg = self.get()
            if msg is not None:
                yield msg

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, channel: str, payload: str) -> Message:
        try:
            data: Any = json.loads(payload)
        except ValueError:
            data = payload
        rest = channel[len(self._ch.base) + 1:].split(":")
        if rest[0] == "events" and len(rest) == 2:  # homehelper:<node>:events:<kind>
            app = data.get("app_id") if isinstance(data, dict) else None
            return Message(channel, app, rest[1], data)
        if rest[0] == "apps" and len(rest) >= 3:
            if rest[2] == "pub":  # homehelper:<node>:apps:<app>:pub:<topic>
                return Message(channel, rest[1], ":".join(rest[3:]), data)
            kind = data.get("kind", rest[2]) if isinstance(data, dict) else rest[2]
            return Message(channel, rest[1], kind, data)  # homehelper:<node>:apps:<app>:events
        return Message(channel, None, "", data)
