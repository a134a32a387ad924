"""`homehelper logs` filters (--since, --grep) and the escaping of what apps print: pure functions."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from homehelper.clictl import LineFilter, safe, since_arg


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime.now(UTC)
    assert abs((now - since_arg("10m")) - timedelta(minutes=10)) < timedelta(seconds=5)
    assert abs((now - since_arg("1.5h")) - timedelta(minutes=90)) < timedelta(seconds=5)
    assert since_arg("2026-11-28T10:00:00Z") == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert since_arg("2026-11-28 10:00").tzinfo is not None  # local time when no zone is named
    for bad in ("yesterday", "10x", "", "-5m"):
        with pytest.raises(argparse.ArgumentTypeError):
            since_arg(bad)


def test_since_dates_only_timestamped_lines_and_the_lines_under_them() -> None:
    keep = LineFilter(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), None)
    lines = [
        "no time yet: kept",
        "2026-11-28T09:59:59Z old",
        "Traceback (most recent call last):",  # goes with the old line
        "[2026-11-28 10:00:01,250+00:00] new, as logging writes it",
        "  continued",
        "2026-11-28T09:00:00+00:00 old again",
        "2026-13-45T99:00:00Z not a real time: goes with the line above",
    ]
    assert [line for line in lines if keep(line)] == [
        "no time yet: kept", "[2026-11-28 10:00:01,250+00:00] new, as logging writes it", "  continued"]


def test_grep_is_plain_text_and_combines_with_since() -> None:
    keep = LineFilter(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), "ERR[")
    assert keep("2026-11-28T10:05:00Z ERR[1] bad")
    assert not keep("2026-11-28T10:05:00Z ERR 1")
    assert not keep("2026-11-28T09:05:00Z ERR[1] old")
    assert LineFilter(None, None)("anything")


def test_control_characters_are_shown_not_obeyed() -> None:
    assert safe("a\x1b[2Jb\tc\x07\r\n\x9b") == "a\\x1b[2Jb\tc\\x07\\x0d\\x0a\\x9b"
    assert safe(None) == "None"
