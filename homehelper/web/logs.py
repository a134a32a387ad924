"""App logs for the dashboard: the last lines, a follow in batches, a download.

The log layout and reading belong to `homehelper.backends.logs` (logs/<id>/app.log, rotated to
app.log.1, app.log.2); this module adapts it to the web: reads in a worker thread, lines cut to
a sane length, follows batched so a chatty app costs one websocket message per burst.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio

from ..backends import logs as backend_logs
from ..config import Config

MAX_LINES = backend_logs.MAX_LINES
MAX_LINE = 4000  # characters; a runaway line is cut, not sent whole
BATCH = 500  # lines per websocket message at most


def log_path(config: Config, app_id: str) -> Path:
    return config.logs_dir(app_id) / "app.log"


async def tail(config: Config, app_id: str, lines: int = 200) -> list[str]:
    lines = max(1, min(int(lines), MAX_LINES))
    got = await trio.to_thread.run_sync(backend_logs.tail, log_path(config, app_id), lines)
    return [line[:MAX_LINE] for line in got]


async def follow(config: Config, app_id: str, deliver: Callable[[list[str]], Awaitable[None]]) -> None:
    """Call `deliver(batch)` with the lines appended from now on, until cancelled."""
    send, recv = trio.open_memory_channel[str](BATCH * 2)

    async def pump() -> None:
        async with send:
            async for line in backend_logs.follow(log_path(config, app_id), lines=0):
                await send.send(line[:MAX_LINE])

    async with trio.open_nursery() as n:
        n.start_soon(pump)
        async with recv:
            async for first in recv:
                batch = [first]
                while len(batch) < BATCH:
                    try:
                        batch.append(recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await deliver(batch)


def _files(config: Config, app_id: str) -> list[Path]:
    """Oldest first: app.log.2, app.log.1, app.log."""
    base = log_path(config, app_id)
    rotated = [base.with_name(f"app.log.{i}") for i in range(backend_logs.KEEP, 0, -1)]
    return [p for p in (*rotated, base) if p.is_file()]


async def download(config: Config, app_id: str) -> AsyncIterator[bytes]:
    """Every kept log file, oldest first, streamed in chunks (bounded memory)."""
    for path in await trio.to_thread.run_sync(_files, config, app_id):
        f = await trio.open_file(path, "rb")
        async with f:
            while chunk := await f.read(64 * 1024):
                yield chunk
