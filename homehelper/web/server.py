"""Serving the web app with Hypercorn's trio worker inside the caller's nursery (one process, one PID)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from .ws import MAX_FRAME

# Frames up to 4x the app's limit still reach the handler, which answers them with a clear error;
# Hypercorn closes the socket (1009) on anything bigger, before buffering it whole.
HARD_FRAME_LIMIT = 4 * MAX_FRAME


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


async def serve_app(app: Any, host: str, port: int, shutdown: trio.Event,
                    *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until `shutdown` is set; `await nursery.start(serve_app, ...)` returns the bound URLs."""
    trigger: Callable[[], Awaitable[None]] = shutdown.wait
    await serve(app, hypercorn_config(host, port), shutdown_trigger=trigger, task_status=task_status)
