"""Calendar events for job apps: the subset of systemd.time(7) HomeHelper parses itself.

A job's `schedule` becomes a timer's `OnCalendar=` under systemd and a deadline in the TTL
clock on the process backend; both read it through this parser, so a schedule that parses
here means the same on both. `systemd-analyze calendar` is the reference:
tests/test_calendar.py checks `next_elapse` against it for a table of expressions.

The subset (docs/jobs.md): `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]` and the
shorthands minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly, annually.
Weekdays: names or three-letter abbreviations, lists and ranges (`Mon..Fri`, `Sat,Sun`).
Each number: `*`, a value, a list (`0,30`), a range (`1..5`), a repetition (`0/15`, `1..10/3`).
Not supported (refused with a message): time zones, `~` (days from the month's end), fractional
seconds, two-digit years.
"""

from __future__ import annotations

import calendar as _cal
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import attrs

MAX_SCHEDULE_CHARS = 200
YEAR_MIN, YEAR_MAX = 1970, 2199  # systemd's range
# How far ahead next_elapse looks: `*-02-29 Mon` needs up to 28 years, `2100-...` a lifetime.
SEARCH_YEARS = 400

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}
_NUM = re.compile(r"\d{1,4}")


class CalendarError(ValueError):
    """A schedule this parser does not accept; the message says what is wrong."""


# One comma-separated item: (first, last or None for "to the top", step); first None means `*`.
Item = tuple[int | None, int | None, int]


@attrs.frozen
class Calendar:
    """A parsed calendar event; `next_elapse(after)` is the first time strictly after `after`."""

    text: str
    weekdays: frozenset[int]  # 0 = Monday
    years: tuple[Item, ...]
    months: tuple[Item, ...]
    days: tuple[Item, ...]
    hours: tuple[Item, ...]
    minutes: tuple[Item, ...]
    seconds: tuple[Item, ...]

    def next_elapse(self, after: datetime) -> datetime | None:
        """The next time this event elapses after the aware datetime `after`, in `after`'s zone;
        None if it never does. A wall time skipped by a DST change is skipped, as systemd does."""
        if after.tzinfo is None:
            raise ValueError("next_elapse needs an aware datetime")
        tz = after.tzinfo
        # Start a little before `after` in wall time: around a DST fold the same wall time comes twice.
        start = (after.astimezone(tz).replace(tzinfo=None, microsecond=0) - timedelta(hours=3))
        for naive in self._walk(start):
            for fold in (0, 1):
                at = naive.replace(tzinfo=tz, fold=fold)
                if _exists(at, tz) and at > after:
                    return at
        return None

    def iterations(self, after: datetime, n: int) -> list[datetime]:
        out: list[datetime] = []
        at: datetime | None = after
        while len(out) < n and at is not None:
            at = self.next_elapse(at)
            if at is not None:
                out.append(at)
        return out

    def _walk(self, start: datetime) -> Iterator[datetime]:
        """Matching wall times at or after naive `start`, in order."""
        s = start
        for year in range(s.year, min(s.year + SEARCH_YEARS, YEAR_MAX + 1)):
            if not _matches(self.years, year, YEAR_MAX):
                continue
            for month in _values(self.months, 1, 12):
                if (year, month) < (s.year, s.month):
                    continue
                last = _cal.monthrange(year, month)[1]
                for day in _values(self.days, 1, last):
                    if (year, month, day) < (s.year, s.month, s.day):
                        continue
                    if _cal.weekday(year, month, day) not in self.weekdays:
                        continue
                    same_day = (year, month, day) == (s.year, s.month, s.day)
                    for hour in _values(self.hours, 0, 23):
                        if same_day and hour < s.hour:
                            continue
                        same_hour = same_day and hour == s.hour
                        for minute in _values(self.minutes, 0, 59):
                            if same_hour and minute < s.minute:
                                continue
                            same_minute = same_hour and minute == s.minute
                            for second in _values(self.seconds, 0, 59):
                                if same_minute and second < s.second:
                                    continue
                                yield datetime(year, month, day, hour, minute, second)


def _exists(at: datetime, tz: tzinfo) -> bool:
    """False for a wall time inside a DST gap (it maps to another wall time and back)."""
    back = at.astimezone(UTC).astimezone(tz)
    return back.replace(tzinfo=None) == at.replace(tzinfo=None)


def _values(items: tuple[Item, ...], lo: int, hi: int) -> list[int]:
    out: set[int] = set()
    for first, last, step in items:
        a = lo if first is None else first
        b = hi if last is None else min(last, hi)
        out.update(range(a, b + 1, step))
    return sorted(out)


def _matches(items: tuple[Item, ...], value: int, hi: int) -> bool:
    for first, last, step in items:
        a = YEAR_MIN if first is None else first
        b = hi if last is None else last
        if a <= value <= b and (value - a) % step == 0:
            return True
    return False


def _items(text: str, what: str, lo: int, hi: int) -> tuple[Item, ...]:
    items: list[Item] = []
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _NUM.fullmatch(step_text) or int(step_text) == 0:
                raise CalendarError(f"{what}: {part!r}: the repetition after '/' must be a number above 0")
            step = int(step_text)
        if base == "*":
            if slash:  # systemd refuses `*/5`: write `0/5`
                raise CalendarError(f"{what}: {part!r}: write a start value, e.g. '0/{step}', not '*/{step}'")
            items.append((None, None, 1))
            continue
        first_text, dots, last_text = base.partition("..")
        numbers = [first_text, last_text] if dots else [first_text]
        if not all(_NUM.fullmatch(n) for n in numbers):
            raise CalendarError(f"{what}: {part!r} is not a number, a range (a..b), a list (a,b) or '*'")
        first = int(first_text)
        last = int(last_text) if dots else (None if slash else first)
        for value in (first, last):
            if value is not None and not lo <= value <= hi:
                raise CalendarError(f"{what}: {value} is out of range ({lo}-{hi})")
        if last is not None and last < first:
            raise CalendarError(f"{what}: the range {base!r} runs backwards")
        items.append((first, last, step))
    return tuple(items)


def _weekday(name: str) -> int:
    low = name.lower()
    for table in (WEEKDAYS, _FULL):
        if low in table:
            return table.index(low)
    raise CalendarError(f"weekday {name!r} is not a day name (Mon..Sun)")


def _weekdays(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, dots, last = part.partition("..")
        a = _weekday(first)
        b = _weekday(last) if dots else a
        if b < a:
            raise CalendarError(f"weekdays: the range {part!r} runs backwards (weeks start on Monday)")
        days.update(range(a, b + 1))
    return frozenset(days)


def parse_calendar(text: str) -> Calendar:
    """Parse a calendar event; raise CalendarError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise CalendarError("the schedule is empty")
    if len(text) > MAX_SCHEDULE_CHARS:
        raise CalendarError(f"the schedule is longer than {MAX_SCHEDULE_CHARS} characters")
    if not re.fullmatch(r"[A-Za-z0-9*.,:/ -]+", text):
        raise CalendarError(f"{text!r} holds characters a calendar event does not have "
                            "(time zones, '~' and fractional seconds are not supported)")
    words = text.split()
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        words = SHORTHANDS[words[0].lower()].split()
    weekdays = frozenset(range(7))
    if words and re.fullmatch(r"[A-Za-z.,]+", words[0]):
        weekdays = _weekdays(words.pop(0))
    date = time = None
    for word in words:
        if word.isalpha():
            raise CalendarError(f"{word!r}: time zones are not supported; schedules use the machine's local time")
        if ":" in word and time is None:
            time = word
        elif "-" in word and ":" not in word and date is None and time is None:
            date = word
        else:
            raise CalendarError(f"{word!r} is not where a date (Y-M-D) or a time (H:M[:S]) goes")
    if date is None and time is None and weekdays == frozenset(range(7)):
        raise CalendarError(f"{text!r} has no date and no time")
    years: tuple[Item, ...] = ((None, None, 1),)
    date_parts = (date or "*-*-*").split("-")
    if len(date_parts) == 3:
        year_text = date_parts.pop(0)
        if re.fullmatch(r"\d{1,3}", year_text):
            raise CalendarError(f"year {year_text!r}: write all four digits")
        years = _items(year_text, "year", YEAR_MIN, YEAR_MAX)
    if len(date_parts) != 2:
        raise CalendarError(f"date {date!r} must be MONTH-DAY or YEAR-MONTH-DAY")
    time_parts = (time or "00:00:00").split(":")
    if len(time_parts) == 2:
        time_parts.append("00")
    if len(time_parts) != 3:
        raise CalendarError(f"time {time!r} must be HOUR:MINUTE or HOUR:MINUTE:SECOND")
    return Calendar(
        text=text,
        weekdays=weekdays,
        years=years,
        months=_items(date_parts[0], "month", 1, 12),
        days=_items(date_parts[1], "day", 1, 31),
        hours=_items(time_parts[0], "hour", 0, 23),
        minutes=_items(time_parts[1], "minute", 0, 59),
        seconds=_items(time_parts[2], "second", 0, 59),
    )


def check_schedule(text: str, now: datetime | None = None) -> Calendar:
    """A schedule fit for a job: it parses and elapses at least once more."""
    cal = parse_calendar(text)
    now = now or datetime.now(UTC)
    if cal.next_elapse(now) is None:
        raise CalendarError(f"{text!r} never elapses (after {now:%Y-%m-%d})")
    return cal


# --- the job fields of a manifest ---------------------------------------------------------------
JOB_FIELDS = ("schedule", "timeout")
DEFAULT_TIMEOUT = 600.0  # seconds a run may take before it is ended and counted as failed


@attrs.frozen
class JobSpec:
    """A job app's `schedule` (a calendar event) and `timeout` (seconds per run)."""

    schedule: str
    timeout: float = DEFAULT_TIMEOUT

    @property
    def calendar(self) -> Calendar:
        return parse_calendar(self.schedule)


def job_fields(raw: dict[str, Any], app_type: str | None, err: Callable[[str, str], None]) -> JobSpec | None:
    """The manifest's job fields: a JobSpec for a job, None otherwise; each problem goes to `err(field, why)`."""
    if app_type != "job":
        for field in JOB_FIELDS:
            if field in raw:
                err(field, "only a job app (type 'job') has a schedule or a timeout")
        return None
    schedule = raw.get("schedule")
    if "schedule" not in raw:
        err("schedule", "is required for a job, e.g. '*:0/15' (every 15 minutes) or 'Mon..Fri 07:00'")
        schedule = None
    elif not isinstance(schedule, str):
        err("schedule", f"must be a string, got {json.dumps(schedule)[:60]}")
        schedule = None
    else:
        try:
            check_schedule(schedule)
        except CalendarError as exc:
            err("schedule", str(exc))
            schedule = None
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 86400:
        err("timeout", f"must be a number of seconds between 1 and 86400, got {json.dumps(timeout)[:60]}")
        timeout = DEFAULT_TIMEOUT
    return JobSpec(schedule, float(timeout)) if schedule is not None else None
