"""Starting `homehelper serve` for real: one per state root, and every start failure one line, exit 1."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from homehelper import __version__
from tests.cli.test_cli import REPO, free_port, hh, make_apps


class Served:
    """A `homehelper serve` child process whose stderr is read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """The first stderr line holding `text`; fails if the process ends or says nothing of it."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"ended ({self.proc.wait()}) before {text!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> str:
        self.proc.wait(timeout=30)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


@contextmanager
def serving(root: Path, port: int, *args: str, env: dict[str, str] | None = None,
            before: tuple[str, ...] = ()) -> Iterator[Served]:
    environ = {**os.environ, "HOMEHELPER_BACKEND": "process", "HOMEHELPER_AUTH__LOOPBACK_WITHOUT_LOGIN": "true",
               **(env or {})}
    if "HOMEHELPER_ROOT" not in (env or {}):
        environ.pop("HOMEHELPER_ROOT", None)
    cmd = [sys.executable, "-m", "homehelper", *before, "serve", "--port", str(port), *args]
    with subprocess.Popen(cmd, env=environ, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            yield Served(proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def fake_streamlit(prefix: str) -> subprocess.Popen[bytes]:
    """A process that looks like a Streamlit app HomeHelper started (what a second serve used to reap)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "streamlit", prefix])


def test_a_second_serve_on_the_same_root_says_who_holds_it_and_touches_nothing(state_root: Path) -> None:
    apps = make_apps(state_root)
    with serving(state_root, free_port(), "--apps-dir", str(apps), before=("--root", str(state_root))) as first:
        first.wait_for("HomeHelper serving")
        lock = (state_root / "run" / "lock").read_text()
        assert lock.startswith(f"homehelper pid {first.proc.pid} on ")
        orphan = fake_streamlit("/apps/demo")
        try:
            # what the first one's process backend records for a running app: a second one adopting or
            # ending it would be the bug
            record = state_root / "run" / "procs" / "demo.json"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"enabled": False, "token": "t" * 32, "pid": orphan.pid,
                                          "created": psutil.Process(orphan.pid).create_time()}))
            port = free_port()
            second = subprocess.run([sys.executable, "-m", "homehelper", "serve", "--root", str(state_root),
                                     "--port", str(port)], capture_output=True, text=True, timeout=60, cwd=REPO)
            assert second.returncode == 1
            assert second.stderr.strip() == (  # one line, and nothing before it
                f"homehelper: state root {state_root.resolve()} is in use by {lock.strip()}; stop it first, "
                f"or choose another root with --root")
            assert "Traceback" not in second.stderr
            assert orphan.poll() is None  # the first one's Streamlit process was left alone
            assert json.loads(record.read_text())["pid"] == orphan.pid
            assert first.proc.poll() is None
        finally:
            orphan.kill()
            orphan.wait()
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=10) == 0
    # once the first is gone, the root is free again
    with serving(state_root, free_port(), "--root", str(state_root), "--apps-dir", str(apps)) as third:
        third.wait_for("HomeHelper serving")


def test_a_busy_port_is_one_line_and_exit_1(state_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serving(state_root, port, "--root", str(state_root)) as served:
            out = served.rest()
    assert served.proc.returncode == 1
    assert "Traceback" not in out
    last = out.strip().splitlines()[-1]
    assert last == (f"homehelper: cannot listen on 127.0.0.1:{port}: the address is in use; another program, "
                    f"or another HomeHelper, has the port: choose one with --port")


def test_a_state_root_that_cannot_be_written_is_one_line_and_exit_1(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere a mode allows: sysfs refuses even root
        root = Path("/sys/kernel/homehelper-test")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        root = tmp_path / "ro" / "state"
    for args in (["--root", str(root), "serve"], ["serve", "--root", str(root)]):
        out = subprocess.run([sys.executable, "-m", "homehelper", *args, "--port", str(free_port())],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 1
        assert out.stderr.strip() == (f"homehelper: permission denied on {root}: choose a state root you can "
                                      f"write with --root or HOMEHELPER_ROOT"), out.stderr


def test_root_before_or_after_the_subcommand_and_version(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text('{"streamlit": {"max_running": "three"}}')
    for args in (["--root", str(tmp_path), "apps"], ["apps", "--root", str(tmp_path)]):
        out = hh(*args, root=tmp_path / "elsewhere")  # HOMEHELPER_ROOT points elsewhere: --root wins
        assert out.returncode == 2 and "'streamlit.max_running' must be an integer" in out.stderr
    out = hh("--version", root=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"homehelper {__version__}"


@pytest.mark.parametrize("damage", [b"\xff\xfe\x00garbage", b'{"port": 8001}{"port": 8002}'])
def test_a_damaged_config_is_set_aside_and_serve_starts_on_the_defaults(state_root: Path, damage: bytes) -> None:
    (state_root / "config").mkdir()
    (state_root / "config" / "config.json").write_bytes(damage)
    leftovers = [state_root / "config" / ".config.json.4242.tmp",
                 state_root / "registry" / ".apps.json.4242.0123456789ab.tmp"]
    leftovers[1].parent.mkdir()
    for p in leftovers:
        p.write_text("half")
    port = free_port()
    with serving(state_root, port, "--root", str(state_root), "--apps-dir", str(make_apps(state_root))) as served:
        line = served.wait_for("starting on the defaults")
        served.wait_for("HomeHelper serving")
        (aside,) = (state_root / "config").glob("config.json.corrupt-*")
        assert aside.read_bytes() == damage and aside.name in line
        events = httpx.get(f"http://127.0.0.1:{port}/api/events", timeout=5).json()
        (ev,) = [e for e in events if e["kind"] == "state_file_damaged"]
        assert ev["path"] == str(state_root / "config" / "config.json") and ev["set_aside_as"] == str(aside)
        assert ev["what"].startswith("not ")
        assert not any(p.exists() for p in leftovers)  # temp files of interrupted writes: gone
        # the API still saves changes: into a fresh file
        r = httpx.patch(f"http://127.0.0.1:{port}/api/config", json={"log_level": "WARNING"}, timeout=5)
        assert r.status_code == 200, r.text
        assert json.loads((state_root / "config" / "config.json").read_text()) == {"log_level": "WARNING"}


def test_the_start_says_which_state_root_it_uses(state_root: Path) -> None:
    with serving(state_root, free_port(), env={"HOMEHELPER_ROOT": str(state_root)}) as served:
        line = served.wait_for("state root ")
        assert f"state root {state_root.resolve()} (HOMEHELPER_ROOT)" in line
