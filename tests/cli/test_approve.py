"""`homehelper approve APP` and the permission columns of `homehelper apps`, as real subprocesses
against a real `homehelper serve` (the CLI authenticates with the CLI token the server writes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from homehelper.backends import ProcessBackend
from tests.backends.apps import HEALTHY_APP, write_app
from tests.cli.test_cli import REPO, free_port, hh
from tests.cli.test_start import Served
from tests.fixtures.common import end_process
from tests.fixtures.systemd import _stop_processes


@contextmanager
def serving(root: Path, apps: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "HOMEHELPER_ROOT": str(root), "HOMEHELPER_BACKEND": "process"}
    with subprocess.Popen([sys.executable, "-m", "homehelper", "serve", "--apps-dir", str(apps), "--port", str(port)],
                          env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            Served(proc).wait_for("HomeHelper serving", timeout=30)  # it says so once it listens
            yield proc
        finally:
            end_process(proc, 10)
            _kill_apps(root)


def _kill_apps(root: Path) -> None:
    _stop_processes(ProcessBackend(root / "run" / "procs"))


def state_of(root: Path, apps: Path, port: int, app_id: str) -> dict[str, object]:
    out = hh("apps", "--json", "--apps-dir", str(apps), "--port", str(port), root=root)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["source"] == "live"
    return next(a for a in data["apps"] if a["id"] == app_id)


def test_approve_from_the_command_line_starts_the_waiting_app(state_root: Path) -> None:
    apps, root, port = state_root / "apps", state_root / "state", free_port()
    write_app(apps, "door", HEALTHY_APP, permissions=["gpio"], devices=["/dev/null"], autostart=True)
    write_app(apps, "plain", HEALTHY_APP)
    with serving(root, apps, port):
        deadline = time.monotonic() + 30
        while state_of(root, apps, port, "door")["state"] != "awaiting_approval":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        table = hh("apps", "--apps-dir", str(apps), "--port", str(port), root=root)
        door = next(line for line in table.stdout.splitlines() if line.startswith("door "))
        plain = next(line for line in table.stdout.splitlines() if line.startswith("plain "))
        assert "awaiting_approval" in door and "unsandboxed" in door
        assert door.rstrip().endswith("gpio /dev/null  (not approved)")
        assert "unsandboxed" in plain and plain.rstrip().endswith("-")
        assert "SANDBOX" in table.stdout and "PERMISSIONS" in table.stdout

        # Without a terminal to ask on, nothing is approved unless --yes says so.
        out = hh("approve", "door", "--port", str(port), root=root, stdin=subprocess.DEVNULL)
        assert out.returncode == 1 and "--yes" in out.stderr and "door asks for: gpio, /dev/null" in out.stdout
        assert state_of(root, apps, port, "door")["approved"] is False

        out = hh("approve", "door", "--yes", "--port", str(port), root=root)
        assert out.returncode == 0, out.stderr
        assert "approved" in out.stdout
        deadline = time.monotonic() + 120
        while state_of(root, apps, port, "door")["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        table = hh("apps", "--apps-dir", str(apps), "--port", str(port), root=root)
        door = next(line for line in table.stdout.splitlines() if line.startswith("door "))
        assert door.rstrip().endswith("gpio /dev/null") and "running" in door

        again = hh("approve", "door", "--yes", "--port", str(port), root=root)
        assert again.returncode == 0 and "already approved" in again.stdout
        none = hh("approve", "plain", "--port", str(port), root=root)
        assert none.returncode == 0 and "nothing to approve" in none.stdout
        ghost = hh("approve", "ghost", "--yes", "--port", str(port), root=root)
        assert ghost.returncode == 1 and "no app with id 'ghost'" in ghost.stderr
    # Offline: only the server writes approvals; the command says so and changes nothing.
    offline = hh("approve", "door", "--yes", "--port", str(port), root=root)
    assert offline.returncode == 3 and "not running" in offline.stderr and "homehelper serve" in offline.stderr
    listed = hh("apps", "--apps-dir", str(apps), "--port", str(port), root=root)
    assert "offline" in listed.stdout
    assert next(line for line in listed.stdout.splitlines() if line.startswith("door ")).rstrip().endswith(
        "gpio /dev/null")  # the approval is on disk, read offline too
