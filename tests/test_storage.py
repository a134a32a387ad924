"""Atomic writes: concurrent writers of one file never share a temp file; leftovers are recognised."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from homehelper.storage import TMP_NAME, atomic_write_json, remove_leftover_temp_files, set_aside


def test_concurrent_writers_of_one_file_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "config.json"
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def writer(n: int) -> None:
        start.wait()
        try:
            for i in range(20):
                atomic_write_json(path, {"writer": n, "i": i, "pad": "x" * (n * 1000)})
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    data = json.loads(path.read_text())  # one writer's whole file, never a mix
    assert data["pad"] == "x" * (data["writer"] * 1000)
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


def test_set_aside_keeps_the_damaged_file_under_a_new_name(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff garbage")
    first = set_aside(path)
    path.write_bytes(b"more garbage")
    second = set_aside(path)
    assert not path.exists() and first != second
    assert first.name.startswith("config.json.corrupt-") and first.read_bytes() == b"\xff garbage"
    assert second.read_bytes() == b"more garbage"


def test_only_the_temp_files_of_atomic_writes_are_removed(tmp_path: Path) -> None:
    (tmp_path / "run" / "services").mkdir(parents=True)
    leftovers = [tmp_path / ".apps.json.123.tmp", tmp_path / "run" / "services" / ".a.json.77.0123456789ab.tmp"]
    kept = [tmp_path / "apps.json", tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / ".x.json.abc.tmp"]
    for p in leftovers + kept:
        p.write_text("x")
    assert all(TMP_NAME.match(p.name) for p in leftovers)
    assert sorted(remove_leftover_temp_files(tmp_path)) == sorted(leftovers)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in leftovers)
    assert remove_leftover_temp_files(tmp_path / "absent") == []
