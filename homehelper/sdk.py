"""The app SDK: an app's settings, and the HomeHelper bus (plain, sync redis-py).

    from homehelper.sdk import Bus, settings

    cfg = settings()                    # HH_APP_ID, HH_PORT, HH_DATA_DIR, HH_REDIS_URL, ...
    bus = Bus(cfg)
    bus.status("ok", sensors=3)         # shown on the dashboard, kept in the app's health hash
    bus.heartbeat()
    bus.publish("temperature", {"room": "kitchen", "c": 21.5})
    for msg in bus.subscribe("temperature"):       # every app's "temperature" publications
        print(msg.app_id, msg.data)

An app without an HTTP server can still be watched (manifest `"health": {"type":
"watchdog", "interval": 10}`): it says when it is ready, then keeps saying it is alive.

    from homehelper import sdk

    sdk.ready()                         # set up: HomeHelper shows it running
    while True:
        do_work()
        sdk.heartbeat()                 # at least every health.interval seconds (half is safe)

Both speak systemd's sd_notify protocol to the socket in $NOTIFY_SOCKET, under systemd and
without it, and do nothing when the app runs by hand (no socket).

Without Redis (HH_REDIS_URL empty) the bus is off: publishing does nothing, says
so once in the log, and subscriptions yield nothing; the app still runs. A Redis
outage is logged, never raised, so the bus cannot take an app down. The SDK is
optional: the channels are plain Redis (see docs/bus.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .bus.channels import APP_RE, Channels, check_app, check_name, check_topic
from .sdkoptions import options, secret  # noqa: F401 - an app's options and secrets (sdkoptions.py)

log = logging.getLogger("homehelper.sdk")

MAX_MESSAGE = 64 * 1024  # bytes; the bridge ignores bigger messages


@dataclass(frozen=True)
class Settings:
    app_id: str
    port: int | None  # None when HomeHelper gave the app no port
    host: str
    data_dir: Path
    log_dir: Path
    redis_url: str | None  # None: no bus
    node_id: str


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The app's settings from the environment HomeHelper starts it with.

    Run by hand (no HH_* variables) an app gets workable defaults: its folder's
    name as id, ./data and ./logs, and no bus.
    """
    env = os.environ if environ is None else environ
    app_id = env.get("HH_APP_ID") or _default_id()
    if not APP_RE.fullmatch(app_id):
        raise ValueError(f"HH_APP_ID must be 1-40 lowercase letters, digits or '-', got {app_id!r}")
    port: int | None = None
    raw_port = env.get("HH_PORT", "")
    if raw_port:
        try:
            port = int(raw_port)
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise ValueError(f"HH_PORT must be an integer from 1 to 65535, got {raw_port!r}") from None
    node_id = env.get("HH_NODE_ID") or "main"
    check_name("HH_NODE_ID", node_id)
    return Settings(
        app_id=app_id, port=port, host=env.get("HH_HOST") or "127.0.0.1",
        data_dir=Path(env.get("HH_DATA_DIR") or "data").expanduser(),
        log_dir=Path(env.get("HH_LOG_DIR") or "logs").expanduser(),
        redis_url=env.get("HH_REDIS_URL") or None, node_id=node_id,
    )


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send an sd_notify message ("READY=1", "WATCHDOG=1", "STATUS=...") to $NOTIFY_SOCKET, a path
    or an abstract name ('@...'). False when there is no socket (run by hand) or it cannot be
    reached (HomeHelper restarting): never raises, so health reporting cannot end the app."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind of address HomeHelper never gives (vsock)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("homehelper.sdk: notify %r to %s failed: %s", state, env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """Tell HomeHelper the app is set up and running (READY=1); a watchdog app is 'starting' until then."""
    return notify("READY=1", environ)


def heartbeat(environ: Mapping[str, str] | None = None) -> bool:
    """Tell HomeHelper the app is alive (WATCHDOG=1). A watchdog app silent for longer than its
    manifest's health.interval is restarted as if it had crashed."""
    return notify("WATCHDOG=1", environ)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which heartbeat() must be called ($WATCHDOG_USEC), None when nobody watches."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        if env.get("WATCHDOG_PID") and int(env["WATCHDOG_PID"]) != os.getpid():
            return None  # inherited by a child: the watchdog means the main process
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _default_id() -> str:
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path.cwd()
    name = (script.parent if script.is_file() else script).name.lower()
    return name if APP_RE.fullmatch(name) else "app"


@dataclass(frozen=True)
class Message:
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
