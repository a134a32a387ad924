"""State files that may be damaged: read, check, set aside, say so.

A power cut mid-write cannot tear a file written by storage.atomic_write_*, but
an SD card can still return garbage, and a person can edit a file by hand. A
state file that is not what it should be (not JSON, the wrong shape, a string
where a port goes) must never keep HomeHelper from starting: it is renamed to
`<name>.corrupt-<UTC time>` for a person to look at, the caller rebuilds what
it can, and a StateFileDamaged event says so.

`read_state` does blocking I/O: run it in a worker thread, emit the event from trio.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..messages import StateFileDamaged
from ..storage import set_aside

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 16 * 1024 * 1024
# check(value) -> (what is usable, the problems found); value is the parsed JSON
Check = Callable[[Any], tuple[Any, list[str]]]


class _Damaged(Exception):
    pass


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang the start
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Damaged("not a regular file")
        os.set_blocking(fd, True)
        data = b""
        while len(data) <= MAX_STATE_BYTES and (chunk := os.read(fd, 1 << 20)):
            data += chunk
        if len(data) > MAX_STATE_BYTES:
            raise _Damaged(f"larger than {MAX_STATE_BYTES} bytes")
        return data
    finally:
        os.close(fd)


def read_state(path: Path, check: Check, empty: Any, rebuilt: str) -> tuple[Any, StateFileDamaged | None]:
    """The checked contents of `path` (`empty` when it does not exist), and the event to emit if it was damaged.

    `rebuilt` says, for a person, what happens instead ("apps rebuilt from a scan").
    """
    try:
        data = _read(path)
        value = json.loads(data)
    except FileNotFoundError:
        return empty, None
    except _Damaged as exc:
        value, problems = empty, [str(exc)]
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 and bad JSON
        value, problems = empty, [f"not valid JSON ({str(exc)[:120]})"]
    except OSError as exc:
        value, problems = empty, [f"unreadable ({exc.strerror or exc})"]
    else:
        value, problems = check(value)
    if not problems:
        return value, None
    why = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    try:
        aside: str | None = str(set_aside(path))
    except OSError as exc:
        log.error("cannot set %s aside: %s", path, exc)
        aside = None
    log.error("%s is damaged (%s): kept as %s; %s", path, why, aside or "is", rebuilt)
    return value, StateFileDamaged(str(path), aside, f"{why}; {rebuilt}")


def peek_state(path: Path, check: Check, empty: Any) -> Any:
    """The usable part of `path`, or `empty`: no setting aside, no event (another owner reports it)."""
    try:
        value, _ = check(json.loads(_read(path)))
        return value
    except (OSError, ValueError, RecursionError, _Damaged):
        return empty


def check_mapping(value: Any, entry: Callable[[str, Any], str | None]) -> tuple[dict[str, Any], list[str]]:
    """A JSON object whose entries `entry(key, value)` accepts (it returns the problem, or None).

    Good entries are kept and bad ones dropped, each named: one bad entry loses only itself.
    """
    if not isinstance(value, dict):
        return {}, [f"must be a JSON object, found {type(value).__name__}"]
    good: dict[str, Any] = {}
    problems: list[str] = []
    for key, item in value.items():
        problem = entry(key, item)
        if problem is None:
            good[key] = item
        else:
            problems.append(f"{key[:60]!r}: {problem}")
    return good, problems


def is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
