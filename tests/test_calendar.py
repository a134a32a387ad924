"""The job calendar (homehelper/oncalendar.py) against systemd's own: `systemd-analyze calendar`."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from homehelper.errors import ManifestError
from homehelper.manifest import SCHEMA_PATH, Manifest, parse_manifest
from homehelper.oncalendar import DEFAULT_TIMEOUT, CalendarError, JobSpec, check_schedule, parse_calendar

SCHEMA = json.loads(SCHEMA_PATH.read_text())

EXPRESSIONS = [
    "*:0/15", "daily", "Mon..Fri 07:00", "*:*:0/10", "hourly", "minutely", "weekly", "monthly", "quarterly",
    "semiannually", "yearly", "annually", "Sat,Sun *-*-* 2:0", "mon,wed..fri 1:2:3", "Monday 12:00",
    "*-02-29", "*:1..10/3", "*:0,30", "6:*", "*-*-* *:*:*", "Mon..Wed,Fri *-1/2-1,15 *:0/20:5",
    "2027-*-* 3:00", "11-30", "*-*-1..7 10:00", "Sun 02:30", "*-*-* 1/3:00", "Fri *-*-13",
    "2026..2030/2-06-01", "*:59:59", "Tue,Thu 23:45",
]
# A DST spring-forward and fall-back night in Berlin, an ordinary day, a leap day and a year's end.
BASES = ["2026-03-29 00:30:00 UTC", "2026-10-25 00:10:00 UTC", "2026-11-28 11:15:07 UTC",
         "2028-02-28 23:59:59 UTC", "2026-12-31 23:59:50 UTC"]
ZONES = ["UTC", "Europe/Berlin"]
ITERATIONS = 6

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


@functools.cache
def systemd_elapses(base: str, zone: str) -> dict[str, list[datetime]]:
    """Every expression's next elapses from `base` in `zone`, by one systemd-analyze call."""
    out = subprocess.run(["systemd-analyze", "calendar", f"--base-time={base}", f"--iterations={ITERATIONS}",
                          *EXPRESSIONS], capture_output=True, text=True, env={**os.environ, "TZ": zone},
                         check=True).stdout
    lines = [ln.strip() for ln in out.splitlines()]
    found: dict[str, list[datetime]] = {}
    blocks = iter(EXPRESSIONS)  # one block each, in order ("Original form" only when it differs)
    current: list[datetime] = []
    for i, line in enumerate(lines):
        if line.startswith("Normalized form:"):
            current = found[next(blocks)] = []
        m = re.match(r"(Next elapse|Iter\. #\d+): (.*)", line)
        if not m or m.group(2) == "never":
            continue
        text = m.group(2)
        if i + 1 < len(lines) and lines[i + 1].startswith("(in UTC):"):
            text = lines[i + 1].split(": ", 1)[1]
        current.append(datetime.strptime(text.removesuffix(" UTC"), "%a %Y-%m-%d %H:%M:%S").replace(
            tzinfo=UTC))
    return found


@needs_systemd
@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_next_elapses_match_systemd(expr: str, zone: str) -> None:
    cal = parse_calendar(expr)
    for base in BASES:
        after = datetime.strptime(base.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        mine = [t.astimezone(UTC) for t in cal.iterations(after.astimezone(ZoneInfo(zone)), ITERATIONS)]
        assert mine == systemd_elapses(base, zone)[expr], (expr, base, zone)


@needs_systemd
@pytest.mark.parametrize("expr", ["*:*/5", "*:5..1", "*-*-* 24:00", "*:60", "Mon .. Fri 1:00", "*:0/0",
                                  "Fri..Mon 1:00", "30", "1:2:3:4", "26-01-01", "Mon 1:00 2026-01-01"])
def test_what_systemd_refuses_is_refused(expr: str) -> None:
    rc = subprocess.run(["systemd-analyze", "calendar", expr], capture_output=True).returncode
    if expr != "26-01-01":  # systemd reads it as the year 2026, which has passed: refused here as ambiguous
        assert rc != 0
    with pytest.raises(CalendarError):
        parse_calendar(expr)


@pytest.mark.parametrize(("expr", "why"), [
    ("12:00 UTC", "time zones"), ("*-*~1", "characters"), ("00:00:1.5", "not a number"), ("", "empty"),
    ("*:0/15\nOnCalendar=daily", "characters"), ("x" * 300, "longer"), ("Someday 1:00", "weekday"),
    ("*-02-30", "never elapses"), ("2020-01-01", "never elapses"),
])
def test_unsupported_or_hostile_schedules_are_named(expr: str, why: str) -> None:
    with pytest.raises(CalendarError, match=why):
        check_schedule(expr, datetime(2026, 11, 28, tzinfo=UTC))


# --- the manifest's job fields (calendar.job_fields, through parse_manifest) and the schema -----------
def _job(tmp_path: Path, **raw: Any) -> Manifest:
    (tmp_path / "main.py").write_text("")
    return parse_manifest(json.dumps({"id": "j", **raw}).encode(), tmp_path)


def test_a_job_manifest_has_its_schedule_and_timeout(tmp_path: Path) -> None:
    m = _job(tmp_path, type="job", schedule="Mon..Fri 07:00", timeout=30)
    assert m.type == "job" and m.job == JobSpec("Mon..Fri 07:00", 30.0)
    assert _job(tmp_path, type="job", schedule="daily").job == JobSpec("daily", DEFAULT_TIMEOUT)
    jsonschema.validate({"id": "j", "type": "job", "schedule": "*:0/15", "timeout": 5}, SCHEMA)


@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "job"}, "schedule"),
    ({"type": "job", "schedule": 15}, "schedule"),
    ({"type": "job", "schedule": "*:0/15\nExecStartPre=/bin/sh"}, "schedule"),
    ({"type": "job", "schedule": "daily", "timeout": 0}, "timeout"),
    ({"type": "job", "schedule": "daily", "timeout": True}, "timeout"),
    ({"type": "service", "schedule": "daily"}, "schedule"),
])
def test_bad_job_fields_are_named_by_both(tmp_path: Path, raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as exc:
        _job(tmp_path, **raw)
    assert any(e.startswith(f"{field}:") for e in exc.value.errors), exc.value.errors
    if raw.get("type") != "service":  # the schema does not tie a field to a type
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"id": "j", **raw}, SCHEMA)


def test_a_schedule_that_never_elapses_is_refused_by_the_validator(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="schedule: '\\*-02-30' never elapses"):
        _job(tmp_path, type="job", schedule="*-02-30")
