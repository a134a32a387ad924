"""When scheduled backups run (`backup.schedule`) and which archives rotation removes (`backup.keep`).

Two spellings, both in local time where a time is named:
- an interval: `every 6h`, `every 30m`, `every 1d` (counted from HomeHelper's start, then from each run);
- a calendar: `daily 03:00`, or `weekly sun 03:00` (mon ... sun).
An empty string (or `off`) schedules nothing: no timer runs at all.
Pure (no HomeHelper imports): config.py checks the value with it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import attrs

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNITS = {"m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 300.0  # more often than every 5 minutes is a mistake, not a backup plan
_EVERY = re.compile(r"every\s+(\d{1,5})\s*([mhd])")
_DAILY = re.compile(r"daily\s+(\d{1,2}):(\d{2})")
_WEEKLY = re.compile(r"weekly\s+(mon|tue|wed|thu|fri|sat|sun)\s+(\d{1,2}):(\d{2})")
# What archive_name() makes: only these are ever rotated away (never a file a person put there).
ARCHIVE_RE = re.compile(r"^homehelper-[A-Za-z0-9._-]{1,40}-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz$")


def age_key(path: Path) -> tuple[str, int]:
    """Oldest first: names carry their UTC time, and `-N` orders backups written within one second."""
    m = ARCHIVE_RE.match(path.name)
    return (m[1], int(m[2] or 0)) if m else ("", 0)


@attrs.frozen
class Schedule:
    interval: float | None = None  # seconds, for `every ...`
    hour: int = 0
    minute: int = 0
    weekday: int | None = None  # 0 = Monday, for `weekly ...`

    def delay(self, now: float) -> float:
        """Seconds from `now` (a Unix time) to the next run; an interval counts from now."""
        if self.interval is not None:
            return self.interval
        local = datetime.fromtimestamp(now).astimezone()
        at = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.weekday is not None:
            at += timedelta(days=(self.weekday - local.weekday()) % 7)
        while at <= local:
            at += timedelta(days=7 if self.weekday is not None else 1)
        return (at - local).total_seconds()


def parse_schedule(text: str) -> Schedule | None:
    """None for no schedule; ValueError naming the accepted forms for anything else."""
    spec = " ".join(text.lower().split())
    if spec in ("", "off", "none"):
        return None
    if m := _EVERY.fullmatch(spec):
        seconds = float(int(m[1]) * UNITS[m[2]])
        if seconds < MIN_INTERVAL:
            raise ValueError(f"backup.schedule {text!r} is more often than every 5 minutes")
        return Schedule(interval=seconds)
    if m := _DAILY.fullmatch(spec):
        hour, minute, weekday = int(m[1]), int(m[2]), None
    elif m := _WEEKLY.fullmatch(spec):
        hour, minute, weekday = int(m[2]), int(m[3]), DAYS.index(m[1])
    else:
        raise ValueError(f"backup.schedule must be 'every 6h' (m, h, d), 'daily 03:00' or "
                         f"'weekly sun 03:00', got {text[:60]!r}")
    if hour > 23 or minute > 59:
        raise ValueError(f"backup.schedule {text!r}: no such time of day")
    return Schedule(hour=hour, minute=minute, weekday=weekday)


def rotate(folder: Path, keep: int, node_id: str) -> list[Path]:
    """Delete all but the newest `keep` archives this node wrote in `folder`; the paths removed.

    Only this node's: two HomeHelpers sharing one network folder never rotate each other's away."""
    prefix = f"homehelper-{node_id}-"
    # the time right after the prefix: node "main" never takes node "main-2"'s archives for its own
    ours = sorted((p for p in folder.iterdir() if ARCHIVE_RE.match(p.name) and p.name.startswith(prefix)
                   and p.name[len(prefix):len(prefix) + 8].isdigit() and p.is_file() and not p.is_symlink()),
                  key=age_key)
    old = ours[: max(0, len(ours) - keep)]
    for p in old:
        p.unlink(missing_ok=True)
    return old
