"""The history file: two resolutions, retention, reopening, and damaged or foreign files set aside."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from homehelper.monitor.history import (
    APPLICATION_ID,
    COARSE,
    FINE,
    Bucketer,
    HistoryStore,
    mean_rows,
    sample_rows,
)

T0 = 1_700_000_400  # a multiple of 600: the first coarse bucket starts here


def store(path: Path, **kw: int) -> HistoryStore:
    s = HistoryStore(path, step=30, coarse_step=600, keep_fine=3600, keep_coarse=86400, **kw)
    s.open()
    return s


def rows(start: int, n: int, series: str = "machine") -> list[tuple[int, str, dict]]:
    return [(start + 30 * i, series, {"cpu": float(i), "memory": 50.0}) for i in range(n)]


def test_rows_come_back_in_order_with_a_coarse_mean_per_bucket(tmp_path: Path) -> None:
    s = store(tmp_path / "history.sqlite")
    s.write(rows(T0, 20) + rows(T0, 20, "app:a"), now=T0 + 600)
    fine = s.read("machine", T0)
    assert [at for at, _ in fine] == [T0 + 30 * i for i in range(20)]
    assert fine[3][1] == {"cpu": 3.0, "memory": 50.0}
    # the bucket [T0, T0+600) holds points 0..19: the mean of 0..19 is 9.5
    assert s.read("machine", T0, COARSE) == [(T0, {"cpu": 9.5, "memory": 50.0})]
    assert s.read("app:a", T0, COARSE) == [(T0, {"cpu": 9.5, "memory": 50.0})]
    assert s.series(T0) == ["app:a", "machine"]


def test_a_coarse_bucket_written_in_two_batches_is_the_mean_of_both(tmp_path: Path) -> None:
    s = store(tmp_path / "history.sqlite")
    s.write(rows(T0, 10), now=T0 + 300)
    assert s.read("machine", T0, COARSE) == [(T0, {"cpu": 4.5, "memory": 50.0})]
    s.write([(T0 + 300 + 30 * i, "machine", {"cpu": 10.0 + i, "memory": 50.0}) for i in range(10)], now=T0 + 600)
    assert s.read("machine", T0, COARSE) == [(T0, {"cpu": 9.5, "memory": 50.0})]


def test_old_rows_are_pruned_at_each_write(tmp_path: Path) -> None:
    s = store(tmp_path / "history.sqlite")
    s.write(rows(T0, 2), now=T0 + 60)
    later = T0 + 2 * 86400
    s.write(rows(later, 2), now=later + 60)
    assert [at for at, _ in s.read("machine", 0)] == [later, later + 30]  # fine keeps 1 h
    assert [at for at, _ in s.read("machine", 0, COARSE)] == [later]  # coarse keeps 1 day here


def test_a_reopened_file_has_every_row(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    s = store(path)
    s.write(rows(T0, 5), now=T0 + 200)
    s.close()
    again = store(path)
    assert again.set_aside_as is None and again.damage is None
    assert len(again.read("machine", T0)) == 5


@pytest.mark.parametrize("content", [b"garbage " * 600, b"SQLite format 3\x00" + os.urandom(5000)],
                         ids=["not-sqlite", "torn-header"])
def test_a_damaged_file_is_set_aside_and_a_new_one_started(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(content)
    s = store(path)
    assert s.set_aside_as is not None and s.set_aside_as.read_bytes() == content  # kept for a person
    assert s.set_aside_as.name.startswith("history.sqlite.corrupt-")
    assert s.damage
    s.write(rows(T0, 3), now=T0 + 100)
    assert len(s.read("machine", T0)) == 3


def test_another_programs_database_is_set_aside_untouched(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes(x TEXT)")
    other.execute("INSERT INTO notes VALUES ('keep me')")
    other.commit()
    other.close()
    s = store(path)
    assert s.damage is not None and "another program" in s.damage
    assert s.set_aside_as is not None
    kept = sqlite3.connect(s.set_aside_as)
    assert kept.execute("SELECT x FROM notes").fetchall() == [("keep me",)]
    kept.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.close()


def test_a_stale_journal_beside_a_damaged_file_never_reaches_the_new_one(tmp_path: Path) -> None:
    # A hot journal left beside a damaged file must not be replayed into the new file.
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    journal = tmp_path / "history.sqlite-journal"
    stale = b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + os.urandom(600)
    journal.write_bytes(stale)
    s = store(path)
    assert not journal.exists() or journal.read_bytes() != stale  # the new file's own (truncated) journal
    s.write(rows(T0, 2), now=T0 + 60)
    assert len(s.read("machine", T0)) == 2


def test_a_fifo_in_its_place_does_not_hang_the_start(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    os.mkfifo(path)
    s = store(path)
    assert s.damage == "not a regular file"
    assert path.is_file()


def test_pages_damaged_on_the_card_are_found_at_open_and_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    s = store(path)
    s.write(rows(T0, 200), now=T0 + 6000)
    s.close()
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # an SD card returning garbage for the pages of the table
    path.write_bytes(bytes(data))
    s = store(path)  # quick_check sees it at open
    assert s.set_aside_as is not None
    s.write(rows(T0 + 6000, 2), now=T0 + 6100)
    assert len(s.read("machine", 0)) == 2


def test_the_bucketer_averages_samples_within_a_step() -> None:
    b = Bucketer(30)
    assert b.add(T0 + 1, [("machine", {"cpu": 10.0})]) == []
    assert b.add(T0 + 20, [("machine", {"cpu": 20.0, "memory": None})]) == []
    assert b.current() == [(T0, "machine", {"cpu": 15.0})]
    closed = b.add(T0 + 31, [("machine", {"cpu": 1.0})])
    assert closed == [(T0, "machine", {"cpu": 15.0})]
    assert b.close() == [(T0 + 30, "machine", {"cpu": 1.0})]
    assert b.current() == []


def test_a_clock_set_back_closes_the_bucket_instead_of_growing_it() -> None:
    b = Bucketer(30)
    b.add(T0 + 3600, [("machine", {"cpu": 1.0})])
    closed = b.add(T0, [("machine", {"cpu": 2.0})])  # NTP set the clock back an hour
    assert closed == [(T0 + 3600, "machine", {"cpu": 1.0})]
    assert b.current() == [(T0, "machine", {"cpu": 2.0})] and len(b.samples) == 1


def test_mean_rows_skips_what_is_not_a_number() -> None:
    means = mean_rows([("s", {"a": 1, "b": "x", "c": None, "d": True}), ("s", {"a": 3})])
    assert means == {"s": {"a": 2.0}}


def test_a_sample_becomes_a_machine_row_and_one_row_per_measured_app() -> None:
    sample = {"at": T0, "cpu": {"percent": 12.5, "load": [0.5, 0, 0]}, "memory": {"percent": 40.0}, "swap": None,
              "disks": [{"mount": "/", "percent": 33.0}], "temperature": 51.0,
              "net": {"recv_per_s": 10.0, "sent_per_s": 5.0},
              "apps": {"a": {"source": "cgroup", "cpu_percent": 3.0, "memory": 1000},
                       "b": {"source": "absent", "cpu_percent": None, "memory": None}}}
    out = dict(sample_rows(sample))
    assert out["machine"] == {"cpu": 12.5, "memory": 40.0, "swap": None, "disk": 33.0, "temperature": 51.0,
                              "load": 0.5, "recv_per_s": 10.0, "sent_per_s": 5.0}
    assert out["app:a"] == {"cpu": 3.0, "memory": 1000}
    assert "app:b" not in out
    assert FINE == 0


def test_a_folder_in_its_place_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    (path / "inside").mkdir(parents=True)
    s = store(path)
    assert s.set_aside_as is not None and (s.set_aside_as / "inside").is_dir()
    assert path.is_file()


def test_a_file_another_process_holds_locked_is_not_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store(path).close()
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            HistoryStore(path).open()  # busy, not damaged: the caller keeps its history in memory
        assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []
    finally:
        holder.rollback()
        holder.close()
    assert len(store(path).read("machine", 0)) == 0
