"""Searching logs by text and time across rotated files: real files, the same filter the CLI uses."""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from homehelper.backends import logs
from homehelper.backends.logsearch import LineFilter, Query, files, parse_time, search_files, stamp_of


def _t(minute: int) -> str:
    return f"2026-11-28T10:{minute:02d}:00.000+00:00"


def _write_rotated(log_dir: Path) -> None:
    """app.log.2 (minutes 0-9), app.log.1 (10-19), app.log (20-29), each line stamped."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for name, first in (("app.log.2", 0), ("app.log.1", 10), ("app.log", 20)):
        text = "".join(f"{_t(m)} tick {m}{' ERROR disk' if m % 5 == 0 else ''}\n" for m in range(first, first + 10))
        (log_dir / name).write_text(text + "  Traceback line under the last\n")
        when = datetime(2026, 11, 28, 10, first + 9, tzinfo=UTC).timestamp()
        os.utime(log_dir / name, (when, when))


def test_files_are_listed_oldest_first(state_root: Path) -> None:
    _write_rotated(state_root)
    assert [p.name for p in files(state_root)] == ["app.log.2", "app.log.1", "app.log"]


def test_text_search_spans_the_rotated_files_in_order(state_root: Path) -> None:
    _write_rotated(state_root)
    found = search_files(state_root, Query(grep="ERROR"), 100)
    assert [line.split()[2] for line in found] == ["0", "5", "10", "15", "20", "25"]
    assert search_files(state_root, Query(grep="ERROR"), 2) == found[-2:]  # the last matches
    assert search_files(state_root, Query(grep="error"), 100) == []  # plain text, case-sensitive
    assert search_files(state_root, Query(grep=".*"), 100) == []  # no pattern syntax


def test_time_range_keeps_continuation_lines_with_their_dated_line(state_root: Path) -> None:
    _write_rotated(state_root)
    q = Query(since=datetime(2026, 11, 28, 10, 18, tzinfo=UTC), until=datetime(2026, 11, 28, 10, 21, tzinfo=UTC))
    found = search_files(state_root, q, 100)
    assert found == [f"{_t(18)} tick 18", f"{_t(19)} tick 19", "  Traceback line under the last",
                     f"{_t(20)} tick 20 ERROR disk", f"{_t(21)} tick 21"]
    both = Query(grep="ERROR", since=datetime(2026, 11, 28, 10, 12, tzinfo=UTC))
    assert [line.split()[2] for line in search_files(state_root, both, 100)] == ["15", "20", "25"]


def test_a_rotated_file_older_than_the_range_is_not_read(state_root: Path) -> None:
    _write_rotated(state_root)
    old = state_root / "app.log.2"
    mtime = old.stat().st_mtime
    with open(old, "a") as f:  # a line in the range, in a file last written before it: never seen
        f.write(f"{_t(16)} planted\n")
    os.utime(old, (mtime, mtime))
    q = Query(since=datetime(2026, 11, 28, 10, 15, tzinfo=UTC))
    found = search_files(state_root, q, 100)
    assert found[0] == f"{_t(15)} tick 15 ERROR disk" and not any("planted" in line for line in found)


def test_without_a_query_it_is_the_plain_tail(state_root: Path) -> None:
    _write_rotated(state_root)
    assert search_files(state_root, Query(), 3) == logs.tail(state_root / "app.log", 3)


def test_search_memory_is_bounded_by_the_answer(state_root: Path) -> None:
    state_root.mkdir(exist_ok=True)
    with open(state_root / "app.log", "w") as f:
        for i in range(200_000):
            f.write(f"{_t(i % 60)} line {i} {'x' * 40}\n")
        f.write("y" * (3 * 1024 * 1024) + "\n")  # one runaway line: cut, not held whole
    tracemalloc.start()
    found = search_files(state_root, Query(grep="line 1999"), 50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found[-1].startswith(f"{_t(199999 % 60)} line 199999") and len(found) == 50
    assert peak < 2 * 1024 * 1024


def test_stamps_in_the_forms_apps_write() -> None:
    assert stamp_of("2026-11-28T10:00:00Z x") == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert stamp_of("[2026-11-28 10:00:01,250+00:00] x") == datetime(2026, 11, 28, 10, 0, 1, 250000, tzinfo=UTC)
    assert stamp_of("2026-11-28 10:00:00 local").tzinfo is not None  # type: ignore[union-attr]
    assert stamp_of("2026-13-45T99:00:00Z not a time") is None
    assert stamp_of("tick 2026-11-28T10:00:00Z") is None  # only at the start


def test_parse_time_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert parse_time("10m", now) == now - timedelta(minutes=10)
    assert parse_time("1.5h", now) == now - timedelta(minutes=90)
    assert parse_time("2026-11-28T10:00:00+01:00") == datetime(2026, 11, 28, 9, tzinfo=UTC)
    for bad in ("yesterday", "-5m", "", "10x", "9" * 50 + "d"):
        with pytest.raises(ValueError):
            parse_time(bad, now)


def test_line_filter_before_any_dated_line_keeps_lines() -> None:
    keep = LineFilter(Query(since=datetime(2026, 11, 28, 10, tzinfo=UTC)))
    assert keep("undated start")
    assert not keep("2026-11-28T08:00:00-01:00 an hour too early")  # 09:00 UTC
    assert not keep("  its traceback")
    assert keep("2026-11-28T10:30:00+00:00 in range")
