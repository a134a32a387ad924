"""App logs for the dashboard: the last lines (optionally searched by text and time), a follow
in batches, a download.

Where an app's log lives is the backends' business: its files (logs/<id>/app.log, rotated to
app.log.1, app.log.2; `homehelper.backends.logs`) or, for a service app under systemd where journald
runs, the journal (`homehelper.backends.journal`). `LogSources` (built by serve.py) says which; this
module adapts both to the web: reads in a worker thread, lines cut to a sane length, follows batched
so a chatty app costs one websocket message per burst.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import attrs
import trio

from ..backends import logs as backend_logs
from ..backends.journal import Journal
from ..backends.logsearch import MAX_GREP, Query, files, parse_time, search_files
from ..config import Config
from ..errors import BadRequest

MAX_LINES = backend_logs.MAX_LINES
MAX_LINE = 4000  # characters; a runaway line is cut, not sent whole
BATCH = 500  # lines per websocket message at most


@attrs.define
class LogSources:
    """The journal, and which app logs there (a blocking call: None means its files)."""

    journal: Journal | None = None
    journal_unit: Callable[[str], str | None] = lambda app_id: None


FILES = LogSources()


def log_path(config: Config, app_id: str) -> Path:
    return config.logs_dir(app_id) / "app.log"


def query_from(grep: object = None, since: object = None, until: object = None) -> Query:
    """A Query from request parameters (strings or absent); BadRequest naming the bad one."""
    values: dict[str, object] = {}
    if grep not in (None, ""):
        if not isinstance(grep, str) or len(grep) > MAX_GREP:
            raise BadRequest(f"'grep' must be a text of at most {MAX_GREP} characters", param="grep")
        values["grep"] = grep
    for name, raw in (("since", since), ("until", until)):
        if raw in (None, ""):
            continue
        if not isinstance(raw, str):
            raise BadRequest(f"{name!r} must be a text such as 10m or 2026-11-28T12:00", param=name)
        try:
            values[name] = parse_time(raw)
        except ValueError as exc:
            raise BadRequest(f"{name}: {exc}", param=name) from None
    return Query(**values)  # type: ignore[arg-type]


def _unit(sources: LogSources, app_id: str) -> str | None:
    return sources.journal_unit(app_id) if sources.journal is not None else None


def _search(config: Config, sources: LogSources, app_id: str, query: Query, lines: int) -> list[str]:
    unit = _unit(sources, app_id)
    if unit is not None and sources.journal is not None:
        return sources.journal.search(unit, query, lines)
    return search_files(config.logs_dir(app_id), query, lines)


async def tail(config: Config, app_id: str, lines: int = 200, query: Query | None = None,
               sources: LogSources | None = None) -> list[str]:
    """The last `lines` lines, or the last `lines` matching `query`."""
    lines = max(1, min(int(lines), MAX_LINES))
    got = await trio.to_thread.run_sync(_search, config, sources or FILES, app_id, query or Query(), lines)
    return [line[:MAX_LINE] for line in got]


def _start(config: Config, sources: LogSources, app_id: str) -> tuple[str | None, float, int]:
    """Where a follow begins: (journal unit or None, now, the log file's size). Blocking."""
    return _unit(sources, app_id), time.time(), backend_logs.size(log_path(config, app_id))


async def _lines(config: Config, sources: LogSources, app_id: str,
                 start: tuple[str | None, float, int]) -> AsyncGenerator[str, None]:
    unit, since, offset = start
    if unit is not None and sources.journal is not None:
        async with aclosing(sources.journal.follow(unit, since)) as entries:
            async for line in entries:
                yield line
    else:
        async with aclosing(backend_logs.follow(log_path(config, app_id), start=offset)) as written:
            async for line in written:
                yield line


async def follow(config: Config, app_id: str, deliver: Callable[[list[str]], Awaitable[None]],
                 grep: str | None = None, sources: LogSources | None = None,
                 *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Call `deliver(batch)` with the lines appended from now on (those holding `grep`), until
    cancelled. Started (task_status) once "now" is fixed: a line written after that is delivered."""
    send, recv = trio.open_memory_channel[str](BATCH * 2)
    sources = sources or FILES
    start = await trio.to_thread.run_sync(_start, config, sources, app_id)
    task_status.started()

    async def pump() -> None:
        async with send, aclosing(_lines(config, sources, app_id, start)) as lines:
            async for line in lines:
                if not grep or grep in line:
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
    return files(config.logs_dir(app_id))


async def download(config: Config, app_id: str, sources: LogSources | None = None) -> AsyncGenerator[bytes, None]:
    """Every kept line, oldest first, streamed in chunks (bounded memory): the rotated files
    joined, or the journal's entries. A journal app's files from before it logged there come first."""
    sources = sources or FILES
    for path in await trio.to_thread.run_sync(_files, config, app_id):
        f = await trio.open_file(path, "rb")
        async with f:
            while chunk := await f.read(64 * 1024):
                yield chunk
    unit = await trio.to_thread.run_sync(_unit, sources, app_id)
    if unit is not None and sources.journal is not None:
        async with aclosing(sources.journal.download(unit)) as chunks:
            async for chunk in chunks:
                yield chunk


def log_sources(backend: object) -> LogSources:
    """Where the backend's apps log: a systemd backend knows which units write to the journal."""
    journal, unit = getattr(backend, "journal", None), getattr(backend, "journal_unit", None)
    if isinstance(journal, Journal) and callable(unit):
        return LogSources(journal, unit)
    return FILES
