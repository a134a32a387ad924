"""The app SDK: what a HomeHelper app imports. Standard library only, apart from the bus (redis-py,
which every app's venv sees through HomeHelper's). Run by hand, without HomeHelper, every call
still works: defaults for the settings, no bus, no watchdog.

    from homehelper import sdk

    opts = sdk.options()                # the settings the user chose in the dashboard ({} by hand)
    key = sdk.secret("api_key")         # a password option, None until set
    folder = sdk.data_dir()             # the app's own data folder
    sdk.publish("temperature", {"room": "kitchen", "c": 21.5})   # on the bus (Redis), if any
    for msg in sdk.subscribe("temperature"):                    # every app's "temperature"
        print(msg.app_id, msg.data)

A service app answers HomeHelper's health check with `sdk.serve_health()` or, with pages of its
own, an `sdk.AppServer`. An app without a web server can be watched instead (manifest
`"health": {"type": "watchdog", "interval": 10}`): `sdk.ready()` once set up, then
`sdk.heartbeat()` at least every `interval` seconds (half is safe). Both speak systemd's sd_notify
protocol to $NOTIFY_SOCKET, under systemd and on the process backend alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..sdkoptions import options, secret
from ._bus import MAX_MESSAGE, Bus, Message, Subscription
from ._env import Settings, data_dir, heartbeat, notify, ready, settings, watchdog_interval
from ._server import AppServer, Request, Response, serve_health

__all__ = [  # in the order docs/sdk.md shows them: the everyday calls first
    "options", "secret", "data_dir", "settings", "publish", "subscribe", "on", "events", "status", "bus",
    "serve_health", "AppServer", "Request", "Response", "ready", "heartbeat", "watchdog_interval", "notify",
    "Settings", "Bus", "Subscription", "Message", "MAX_MESSAGE",
]

log = logging.getLogger("homehelper.sdk")
_bus: Bus | None = None
_bus_lock = threading.Lock()


def bus() -> Bus:
    """The app's Bus, made on first use and shared by publish(), subscribe(), events() and status()."""
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = Bus()
        return _bus


def publish(topic: str, data: Any = None) -> int:
    """Publish `data` (anything JSON can hold, at most 64 KiB) on the app's `topic`; returns how many
    subscribers got it (0 without Redis or while it is away: never raises for an outage)."""
    return bus().publish(topic, data)


def subscribe(topic: str = "*", app: str | None = None) -> Subscription:
    """Messages that apps publish on `topic` ('*': every topic), from every app or only `app`.
    Iterate it (blocks; use a thread of its own) or call `get(timeout)`."""
    return bus().subscribe(topic, app)


def on(topic: str = "*", app: str | None = None) -> Callable[[Callable[[Message], Any]], Callable[[Message], Any]]:
    """Decorator: call the function with each Message apps publish on `topic` (from `app` only, if
    given), in a thread of its own, for as long as the app runs. An exception is logged with its
    traceback and the next message still comes. Without Redis nothing arrives.

        @sdk.on("readings", app="sensor-logger")
        def got(msg): print(msg.data["temperature_c"])
    """
    def start(handler: Callable[[Message], Any]) -> Callable[[Message], Any]:
        sub = subscribe(topic, app)

        def listen() -> None:
            for msg in sub:
                try:
                    handler(msg)
                except Exception:
                    log.exception("homehelper.sdk: %s failed on a %r message", getattr(handler, "__name__", handler),
                                  msg.topic)
        threading.Thread(target=listen, name=f"sdk-on-{topic}", daemon=True).start()
        return handler
    return start


def events(*kinds: str, app: str | None = None) -> Subscription:
    """HomeHelper's own events ("app_started", "job_failed", ...): these kinds, all of them, or every
    event about `app`."""
    return bus().events(*kinds, app=app)


def status(state: str, **detail: Any) -> int:
    """Report the app's own status ("ok", "degraded", ...) with details, shown on the dashboard."""
    return bus().status(state, **detail)
