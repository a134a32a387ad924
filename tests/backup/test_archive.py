"""Writing an archive and restoring it into a fresh state root: the same files, SQLite consistent
while written, excludes and symlinks left out, secrets sealed or left out, never in plain text."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from homehelper.backup.archive import write_archive
from homehelper.backup.restore import restore_app_data, restore_root
from homehelper.errors import ArchiveRefused, BackupError, Conflict, ValidationError
from homehelper.stateroot import lock_root
from tests.backup.helpers import listing, make_root, manifests, members

PASS = "correct horse battery"


@pytest.fixture
def src(state_root: Path) -> Path:
    return state_root / "src"


def test_a_backup_restored_into_a_fresh_root_gives_the_same_state(src: Path, state_root: Path) -> None:
    config = make_root(src)
    (state_root / "out").mkdir()
    archive = state_root / "out" / "b.tar.gz"
    summary = write_archive(config, archive, manifests(config))
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the password's hash
    assert summary["apps"] == ["meter", "notes"] and summary["data"] == ["meter", "notes"]
    assert summary["sqlite"] == ["state/data/meter/readings.db"]
    assert "state/data/notes/link" in summary["skipped"]  # a symlink is never followed nor stored
    names = {info.name for info, _ in members(archive)}
    assert "state/data/notes/cache/big.bin" not in names  # backup.exclude
    assert "state/data/notes/logs/old.log" not in names  # a glob naming a folder
    assert "state/data/notes/bad\\nname.txt" in summary["skipped"]  # a restore would refuse its name
    assert not any("__pycache__" in n for n in names)
    assert not any(n.endswith(("-wal", "-shm")) for n in names)  # the snapshot holds the WAL's rows

    new = state_root / "new"
    result = restore_root(archive, new)
    assert result["apps"] == ["meter", "notes"] and result["secrets"] == "none"
    before, after = listing(src), listing(new)
    for rel in ("config/config.json", "config/auth.json", "registry/ports.json", "data/notes/notes.txt",
                "apps/notes/homehelper.json", "apps/meter/main.py"):
        assert after[rel] == before[rel], rel
    db = sqlite3.connect(new / "data" / "meter" / "readings.db")
    assert db.execute("SELECT count(*) FROM r").fetchone() == (100,)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not (new / "data" / "notes" / "link").exists()


def test_a_database_written_during_the_backup_is_copied_whole(src: Path, state_root: Path) -> None:
    config = make_root(src)
    stop = threading.Event()

    def writer() -> None:  # commits of 50 rows each: a copy must hold a whole number of them
        db = sqlite3.connect(config.data_dir("meter") / "readings.db", timeout=30)
        while not stop.is_set():
            with db:
                db.executemany("INSERT INTO r VALUES (?)", [(-1,)] * 50)
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(3):
            archive = state_root / f"b{i}.tar.gz"
            write_archive(config, archive, manifests(config))
            out = state_root / f"new{i}"
            restore_root(archive, out)
            db = sqlite3.connect(out / "data" / "meter" / "readings.db")
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (n,) = db.execute("SELECT count(*) FROM r WHERE n = -1").fetchone()
            assert n % 50 == 0
    finally:
        stop.set()
        thread.join()


def test_secrets_are_left_out_without_a_passphrase_and_sealed_with_one(src: Path, state_root: Path) -> None:
    config = make_root(src)
    (src / "secrets").mkdir()
    (src / "secrets" / "notes.json").write_text(json.dumps({"API_KEY": "s3cr3t-value"}))
    plain = state_root / "plain.tar.gz"
    assert write_archive(config, plain, manifests(config))["secrets"] == "left out"
    assert "secrets" not in " ".join(info.name for info, _ in members(plain))
    sealed = state_root / "sealed.tar.gz"
    assert write_archive(config, sealed, manifests(config), passphrase=PASS)["secrets"] == "sealed"
    raw = b"".join(data for _, data in members(sealed))
    assert b"s3cr3t-value" not in raw and b"API_KEY" not in raw

    with pytest.raises(ArchiveRefused, match="passphrase"):
        restore_root(sealed, state_root / "a")
    with pytest.raises(ValidationError, match="does not open"):
        restore_root(sealed, state_root / "b", passphrase="not the passphrase")
    assert not (state_root / "b" / "data").exists()
    restore_root(sealed, state_root / "c", passphrase=PASS)
    restored = state_root / "c" / "secrets" / "notes.json"
    assert json.loads(restored.read_text()) == {"API_KEY": "s3cr3t-value"}
    assert restored.stat().st_mode & 0o777 == 0o600
    assert restore_root(sealed, state_root / "d", without_secrets=True)["secrets"] == "left out"


def test_restore_refuses_a_root_a_server_holds_or_that_is_not_fresh(src: Path, state_root: Path) -> None:
    config = make_root(src)
    archive = state_root / "b.tar.gz"
    write_archive(config, archive, manifests(config))
    target = state_root / "busy"
    lock = lock_root(target)
    try:
        with pytest.raises(Conflict, match="in use by homehelper pid"):
            restore_root(archive, target)
    finally:
        lock.release()
    with pytest.raises(Conflict, match="not a fresh state root"):
        restore_root(archive, src)
    before = listing(src / "data")
    result = restore_root(archive, src, force=True)  # what was there is moved aside, not lost
    aside = Path(result["moved_aside"])
    assert listing(aside / "data") == before and (src / "data" / "meter" / "readings.db").exists()


def test_one_apps_data_comes_back_from_an_archive(src: Path, state_root: Path) -> None:
    config = make_root(src)
    archive = state_root / "b.tar.gz"
    write_archive(config, archive, manifests(config))
    (config.data_dir("notes") / "notes.txt").write_text("lost it\n")
    (config.data_dir("notes") / "new.txt").write_text("after the backup\n")
    meter_before = listing(config.data_dir("meter"))
    result = restore_app_data(archive, src, "notes")
    assert result["files"] == 1
    assert (config.data_dir("notes") / "notes.txt").read_text() == "milk\n"
    assert not (config.data_dir("notes") / "new.txt").exists()
    assert listing(config.data_dir("meter")) == meter_before  # the other app is untouched
    with pytest.raises(ArchiveRefused, match="holds no data of ghost"):
        restore_app_data(archive, src, "ghost")


def test_a_missing_backup_folder_is_an_error_naming_it(src: Path, state_root: Path) -> None:
    config = make_root(src)
    with pytest.raises(BackupError, match="does not exist"):
        write_archive(config, state_root / "unmounted" / "b.tar.gz", manifests(config))


def test_a_database_whose_name_holds_uri_characters_is_still_snapshotted(src: Path, state_root: Path) -> None:
    config = make_root(src)
    odd = config.data_dir("meter") / "a?b#c%20.db"
    db = sqlite3.connect(odd)
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (42)")
    db.commit()
    db.close()
    summary = write_archive(config, state_root / "b.tar.gz", manifests(config))
    assert "state/data/meter/a?b#c%20.db" in summary["sqlite"]
    restore_root(state_root / "b.tar.gz", state_root / "new")
    copy = sqlite3.connect(state_root / "new" / "data" / "meter" / "a?b#c%20.db")
    assert copy.execute("SELECT x FROM t").fetchall() == [(42,)]
