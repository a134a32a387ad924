"""The whole story with real processes: a running `homehelper serve` (process backend) with two apps
writing (one into SQLite), `homehelper backup` asking it, `homehelper restore` into a new state root,
served on another port: the same apps, data, ports and password. A damaged archive is refused and
changes nothing; one app's data comes back through the running server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.backends.apps import write_app
from tests.backup.helpers import listing
from tests.cli.test_approve import _kill_apps
from tests.cli.test_cli import REPO, hh
from tests.fixtures.common import end_process
from tests.fixtures.redis import free_port

PASSWORD = "restore me, please"
DIARY = """
import os, pathlib, time
data = pathlib.Path(os.environ["HH_DATA_DIR"])
(data / "settings.txt").write_text("colour=green\\n")
with open(data / "diary.txt", "a") as f:
    n = 0
    while True:
        n += 1
        f.write(f"entry {n}\\n"); f.flush()
        time.sleep(0.05)
"""
METER = """
import os, pathlib, sqlite3, time
db = sqlite3.connect(pathlib.Path(os.environ["HH_DATA_DIR"]) / "readings.db")
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS r (n INTEGER)")
while True:
    with db:
        db.executemany("INSERT INTO r VALUES (?)", [(1,)] * 10)
    time.sleep(0.01)
"""


@contextlib.contextmanager
def serving(root: Path, apps: Path, port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    environ = {**os.environ, "HOMEHELPER_ROOT": str(root), "HOMEHELPER_BACKEND": "process", **env}
    environ.pop("HOMEHELPER_PASSWORD", None) if "HOMEHELPER_PASSWORD" not in env else None
    with subprocess.Popen([sys.executable, "-m", "homehelper", "serve", "--apps-dir", str(apps), "--port", str(port)],
                          env=environ, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.2)
            yield proc
        finally:
            end_process(proc, 10)
            _kill_apps(root)


def run(*args: str, root: Path, port: int | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = hh(*args, *(("--port", str(port)) if port else ()), root=root, timeout=240)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def status(root: Path, port: int) -> dict[str, dict[str, object]]:
    return {a["id"]: a for a in json.loads(run("status", "--json", root=root, port=port).stdout)}


def wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_backup_of_a_running_server_restores_onto_a_fresh_root(state_root: Path) -> None:
    apps, src, port = state_root / "apps", state_root / "src", free_port()
    write_app(apps, "diary", DIARY, health=None)
    write_app(apps, "meter", METER, health=None)
    archive = state_root / "usb" / "hh.tar.gz"
    archive.parent.mkdir()
    with serving(src, apps, port, HOMEHELPER_PASSWORD=PASSWORD):
        run("start", "diary", "meter", root=src, port=port)
        ports = {app: s["port"] for app, s in status(src, port).items()}
        diary = src / "data" / "diary" / "diary.txt"
        wait_for(lambda: diary.exists() and diary.stat().st_size > 200, "the diary is being written")
        result = json.loads(run("backup", "--to", str(archive), "--json", root=src, port=port).stdout)
        assert result["apps"] == ["diary", "meter"]
        assert result["sqlite"] == ["state/history.sqlite", "state/data/meter/readings.db"]
        assert {s["state"] for s in status(src, port).values()} == {"running"}  # nobody was stopped
        # a whole restore never goes into a root a server runs on
        busy = run("restore", str(archive), root=src, ok=False)
        assert busy.returncode == 1 and "in use by homehelper pid" in busy.stderr

    with tarfile.open(archive) as tar:
        listed = json.loads(tar.extractfile("backup.json").read())["files"]  # type: ignore[union-attr]
    new, port2 = state_root / "new", free_port()
    out = run("restore", str(archive), root=new)
    assert "apps diary, meter" in out.stdout
    for name, entry in listed.items():  # every file as it was copied
        rel = name.removeprefix("state/") if name.startswith("state/") else name
        assert sha(new / rel) == entry["sha256"], name
    assert sha(new / "data" / "diary" / "settings.txt") == sha(src / "data" / "diary" / "settings.txt")
    db = sqlite3.connect(new / "data" / "meter" / "readings.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (rows,) = db.execute("SELECT count(*) FROM r").fetchone()
    assert rows > 0 and rows % 10 == 0  # whole transactions only
    db.close()
    assert not (new / "venvs").exists()  # rebuilt as each app starts

    with serving(new, new / "apps", port2):  # no HOMEHELPER_PASSWORD: the restored one must work
        r = httpx.post(f"http://127.0.0.1:{port2}/login", json={"password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        run("start", "diary", "meter", root=new, port=port2)
        now = status(new, port2)
        assert set(now) == {"diary", "meter"}
        assert {app: s["port"] for app, s in now.items()} == ports
        # one app's data, through the running server: stopped for it, started again
        (new / "data" / "diary" / "settings.txt").write_text("colour=red\n")
        out = run("restore", str(archive), "--app", "diary", root=new, port=port2)
        assert "data restored" in out.stdout and "started again" in out.stdout
        assert (new / "data" / "diary" / "settings.txt").read_text() == "colour=green\n"
        assert status(new, port2)["diary"]["state"] == "running"


def test_a_damaged_archive_is_refused_by_the_command_and_changes_nothing(state_root: Path) -> None:
    src = state_root / "src"
    (src / "data" / "notes").mkdir(parents=True)
    (src / "data" / "notes" / "a.txt").write_text("hello\n" * 1000)
    (src / "config").mkdir()
    (src / "config" / "config.json").write_text("{}")
    good = state_root / "good.tar.gz"
    out = run("backup", "--to", str(good), root=src)  # no server: written directly, the root locked meanwhile
    assert out.stderr == "" and out.stdout.startswith(f"backup written: {good}")  # piped: no spinner
    bad = state_root / "bad.tar.gz"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x55
    bad.write_bytes(bytes(data))
    target = state_root / "target"
    before = listing(state_root)
    out = run("restore", str(bad), root=target, ok=False)
    assert out.returncode == 1
    assert "bad.tar.gz" in out.stderr and "nothing was changed" in out.stderr
    assert listing(state_root) == before and not target.exists()
    assert run("restore", str(good), root=target).returncode == 0
    assert (target / "data" / "notes" / "a.txt").read_text() == "hello\n" * 1000


def test_serve_stops_within_its_grace_while_a_backup_is_being_written(state_root: Path) -> None:
    apps, src, port = state_root / "apps", state_root / "src", free_port()
    apps.mkdir()
    big = src / "data" / "big"
    big.mkdir(parents=True)
    with open(big / "random.bin", "wb") as f:  # incompressible: gzip takes seconds over it
        for _ in range(256):
            f.write(os.urandom(1 << 20))
    with serving(src, apps, port) as proc:
        cli = subprocess.Popen([sys.executable, "-m", "homehelper", "backup", "--port", str(port)],
                               env={**os.environ, "HOMEHELPER_ROOT": str(src)}, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(p.name.endswith(".partial") for p in (src / "backups").glob(".*")),
                     "the backup is being written")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            assert time.monotonic() - started < 5.0  # serve's promise, backup or not
        finally:
            _, err = cli.communicate(timeout=60)
        assert cli.returncode == 1 and err.strip()  # the command says the backup did not complete
    assert not [p for p in (src / "backups").iterdir() if not p.name.startswith(".")]  # no archive to trust
