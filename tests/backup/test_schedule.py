"""backup.schedule's spellings, when the next run is due, rotation (this node's archives only), and
what a cancelled or killed backup leaves behind."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from homehelper.backup.archive import remove_leftovers, write_archive
from homehelper.backup.schedule import Schedule, parse_schedule, rotate
from homehelper.config import load_config
from homehelper.errors import BackupError, ConfigError
from tests.backup.helpers import make_root, manifests


def test_the_spellings_of_a_schedule() -> None:
    assert parse_schedule("") is None and parse_schedule(" off ") is None
    assert parse_schedule("every 6h") == Schedule(interval=6 * 3600.0)
    assert parse_schedule("Every 30m") == Schedule(interval=1800.0)
    assert parse_schedule("daily 03:00") == Schedule(hour=3, minute=0)
    assert parse_schedule("weekly sun 23:59") == Schedule(hour=23, minute=59, weekday=6)
    for bad in ("every 1m", "daily 25:00", "daily 3pm", "hourly", "weekly someday 03:00", "every -1h"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_a_bad_schedule_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backup\.schedule") as caught:
        load_config(tmp_path, environ={"HOMEHELPER_BACKUP__SCHEDULE": "at noon"})
    assert caught.value.detail["key"] == "backup.schedule"
    with pytest.raises(ConfigError, match="must be an absolute path"):
        load_config(tmp_path, environ={"HOMEHELPER_BACKUP__DIR": "usb/backups"})
    config = load_config(tmp_path, environ={"HOMEHELPER_BACKUP__SCHEDULE": "daily 03:00",
                                            "HOMEHELPER_BACKUP__KEEP": "3"})
    assert config.backup.schedule == "daily 03:00" and config.backup.keep == 3


def test_a_calendar_schedule_is_due_at_the_next_such_local_time() -> None:
    now = datetime(2026, 11, 28, 2, 0).astimezone()  # a Saturday, 02:00 local
    daily = parse_schedule("daily 03:00")
    weekly = parse_schedule("weekly sun 03:00")
    assert daily is not None and weekly is not None
    assert daily.delay(now.timestamp()) == 3600.0
    later = (now + timedelta(hours=2)).timestamp()  # 04:00: tomorrow's
    assert daily.delay(later) == pytest.approx(23 * 3600.0, abs=3600)  # DST shifts aside
    assert weekly.delay(now.timestamp()) == pytest.approx(25 * 3600.0, abs=3600)  # DST shifts aside


def test_rotation_keeps_the_newest_of_this_nodes_archives_only(tmp_path: Path) -> None:
    names = ["homehelper-main-20261101T030000Z.tar.gz", "homehelper-main-20261102T030000Z.tar.gz",
             "homehelper-main-20261102T030000Z-1.tar.gz", "homehelper-main-20261103T030000Z.tar.gz",
             "homehelper-main-2-20261101T030000Z.tar.gz",  # another node sharing the folder
             "homehelper-main-notes.tar.gz", "my-own-backup.tar.gz"]  # a person's files
    for n in names:
        (tmp_path / n).write_text(n)
    removed = rotate(tmp_path, 2, "main")
    assert sorted(p.name for p in removed) == ["homehelper-main-20261101T030000Z.tar.gz",
                                               "homehelper-main-20261102T030000Z.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {p.name for p in removed})


def test_a_cancelled_backup_leaves_no_partial_archive(state_root: Path) -> None:
    config = make_root(state_root / "src")
    out = state_root / "out"
    out.mkdir()
    cancel = threading.Event()
    with pytest.raises(BackupError, match="cancelled"):
        write_archive(config, out / "b.tar.gz", manifests(config), cancel=cancel,
                      hook=lambda app, when: cancel.set())
    assert list(out.iterdir()) == []


def test_what_a_killed_backup_left_hours_ago_is_removed(tmp_path: Path) -> None:
    old = tmp_path / ".homehelper-main-20261101T030000Z.tar.gz.abcdef.partial"
    fresh = tmp_path / ".homehelper-main-20261128T030000Z.tar.gz.123456.partial"  # maybe another node's, running
    staging = tmp_path / ".staging-xyz"
    mine = tmp_path / ".my-file.partial"
    for p in (old, fresh, mine):
        p.write_text("x")
    staging.mkdir()
    hours_ago = time.time() - 7 * 3600
    for p in (old, staging, mine):
        os.utime(p, (hours_ago, hours_ago))
    assert sorted(remove_leftovers(tmp_path)) == sorted([old, staging])
    assert fresh.exists() and mine.exists()
