"""A real `homehelper serve` killed with SIGKILL while it starts an app: the next one adopts what
the first started, and exactly one copy of the app runs (process backend)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from homehelper.backends import proctree
from tests.fixtures.common import end_process
from tests.fixtures.redis import free_port

from .apps import HEALTHY_APP, REPO, write_app


def _app_processes() -> dict[int, int]:
    """pid -> session id of every live process carrying HH_APP_ID=killtest."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"\0HH_APP_ID=killtest\0" in b"\0" + env and state != b"Z":
            try:
                found[int(name)] = os.getsid(int(name))
            except OSError:
                continue
    return found


class Server:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HOMEHELPER_ROOT": str(self.root), "PYTHONPATH": str(REPO)}
        log = open(self.root / "serve.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([sys.executable, "-m", "homehelper", "serve"], env=env, cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.until(lambda: httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200, 60)

    def until(self, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (self.root / "serve.log").read_text()[-3000:]
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not within {timeout} s: " + (self.root / "serve.log").read_text()[-3000:])

    def app(self) -> dict:
        return httpx.get(f"{self.url}/api/apps/killtest", timeout=10).json()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, 30)


def _spawned(hh: int) -> bool:
    """HomeHelper has started an app: a child of it runs with a run token (its log stamper, also a
    child, has none). Cheap: no /proc scan, so the spin below sees the exec before the PID's write."""
    for tid in os.listdir(f"/proc/{hh}/task"):  # trio forks from a worker thread
        try:
            with open(f"/proc/{hh}/task/{tid}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/environ", "rb") as f:
                    if b"HH_RUN_TOKEN=" in f.read():
                        return True
            except OSError:
                continue
    return False


def test_serve_killed_mid_start_then_restarted_runs_one_copy(state_root: Path) -> None:
    lo, port = random.randrange(30000, 39000, 100), free_port()
    (state_root / "config").mkdir()
    (state_root / "config" / "config.json").write_text(json.dumps({
        "port": port, "backend": "process", "service_ports": [lo, lo + 99],
        "auth": {"loopback_without_login": True}}))
    write_app(state_root / "apps", "killtest", HEALTHY_APP)
    record = state_root / "run" / "procs" / "killtest.json"
    server = Server(state_root, port)
    try:
        server.start()
        server.until(lambda: server.app().get("state") == "stopped", 30)
        assert httpx.post(f"{server.url}/api/apps/killtest/install", timeout=120).status_code == 200
        for _attempt in range(20):
            asked = threading.Thread(target=_ask_start, args=(server.url,), daemon=True)
            asked.start()
            assert server.proc is not None
            hh = server.proc.pid
            deadline = time.monotonic() + 120
            # Spin (no sleep) until the app's process is forked, then freeze HomeHelper where it is.
            while not _spawned(hh):
                assert time.monotonic() < deadline, (state_root / "serve.log").read_text()[-3000:]
            os.kill(hh, signal.SIGSTOP)
            if json.loads(record.read_text()).get("pid") is None:
                break  # caught between the spawn and the PID on disk: the moment to kill it
            os.kill(hh, signal.SIGCONT)  # too late this time: stop the app and try again
            asked.join(timeout=60)
            server.until(lambda: server.app().get("state") == "running", 60)
            assert httpx.post(f"{server.url}/api/apps/killtest/stop", timeout=60).status_code == 200
        else:
            pytest.skip("never caught HomeHelper between spawning the app and recording its PID")
        server.kill9()
        asked.join(timeout=30)
        server.start()
        server.until(lambda: server.app().get("state") == "running", 60)
        leaders = {pid for pid, sid in _app_processes().items() if pid == sid}
        recorded = json.loads(record.read_text())
        assert len(leaders) == 1 and leaders == {recorded["pid"]}, (leaders, recorded)
        reply = httpx.post(f"{server.url}/api/apps/killtest/stop", timeout=60)
        assert reply.status_code == 200, reply.text
        assert _app_processes() == {}
    finally:
        server.stop()
        for pid in _app_processes():
            os.kill(pid, signal.SIGKILL)


def _ask_start(url: str) -> None:
    try:
        httpx.post(f"{url}/api/apps/killtest/start", timeout=120)
    except httpx.HTTPError:
        pass  # the server was killed under the request: expected


def test_tokens_are_unique() -> None:
    assert len({proctree.new_token() for _ in range(1000)}) == 1000
