"""Serving the web app with Hypercorn's trio worker inside the caller's nursery (one process, one PID)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from .ws import MAX_FRAME

# Frames up to 4x the app's limit still reach the handler, which answers them with a clear error;
# Hypercorn closes the socket (1009) on anything bigger, before buffering it whole.
HARD_FRAME_LIMIT = 4 * MAX_FRAME
log = logging.getLogger(__name__)


def hypercorn_config(host: str, port: int) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.accesslog = None  # no disk or console write per request on a Pi
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.websocket_max_message_size = HARD_FRAME_LIMIT
    hc.h11_max_incomplete_size = 16 * 1024
    hc.keep_alive_timeout = 30
    hc.graceful_timeout = 3
    return hc


async def serve_app(app: Any, host: str, port: int, shutdown: trio.Event, *, graceful: float = 3.0,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until `shutdown` is set; `await nursery.start(serve_app, ...)` returns the dashboard's URLs.

    With the proxy registered, app pages get their own listener on the same host: `apps_port`, else
    the dashboard's port + 1 (a free port when the dashboard's is 0, as in tests)."""
    trigger: Callable[[], Awaitable[None]] = shutdown.wait
    extensions = getattr(app, "extensions", {})
    origin, deps = extensions.get("app_origin"), extensions.get("homehelper")
    async with trio.open_nursery() as nursery:
        hc = hypercorn_config(host, port)
        hc.graceful_timeout = graceful
        urls: list[str] = await nursery.start(partial(serve, app, hc, shutdown_trigger=trigger, mode="asgi"))
        if origin is not None and deps is not None:
            deps.dashboard_port = urlsplit(urls[0]).port
            apps_port = deps.config.apps_port or (deps.dashboard_port + 1 if port else 0)
            ahc = hypercorn_config(host, apps_port)
            ahc.graceful_timeout = graceful
            app_urls = await nursery.start(partial(serve, origin, ahc, shutdown_trigger=trigger, mode="asgi"))
            deps.apps_port = urlsplit(app_urls[0]).port
            log.info("app pages served on %s", app_urls[0])
        task_status.started(urls)
