"""An app's whole process tree ends with it, on both backends: a double-forked daemon too."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import psutil
import pytest
import trio

from homehelper.backends import ProcessBackend, SystemdBackend, app_spec, proctree

from .apps import make_config, wait_until, write_app

Any = SystemdBackend | ProcessBackend

# Main forks; the child leaves the session (setsid) and forks the grandchild that serves HH_PORT,
# as a classic daemon does. MAIN_EXITS=1: the main process exits once the grandchild serves.
FORKING_APP = """
import http.server, os, sys, time
data = os.environ["HH_DATA_DIR"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        srv = http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])),
                                     http.server.BaseHTTPRequestHandler)
        open(os.path.join(data, "grandchild.tmp"), "w").write(str(os.getpid()))
        os.rename(os.path.join(data, "grandchild.tmp"), os.path.join(data, "grandchild"))
        srv.serve_forever()
    os._exit(0)
while not os.path.exists(os.path.join(data, "grandchild")):
    time.sleep(0.01)
if os.environ.get("MAIN_EXITS") == "1":
    sys.exit(0)
while True:
    time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _start_forking(backend: Any, state_root: Path, main_exits: bool) -> tuple[int, int, Path]:
    config = make_config(state_root)
    with socket.socket() as s:  # a port nobody holds now (other suites run beside this one)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = write_app(config.apps_dir, "forky", FORKING_APP, env={"MAIN_EXITS": "1" if main_exits else "0"})
    await backend.prepare(app_spec(manifest, config, port, Path(sys.executable)))
    await backend.start("forky")
    marker = config.data_dir("forky") / "grandchild"
    try:
        await wait_until(marker.exists)
    except trio.TooSlowError:
        raise AssertionError((config.logs_dir("forky") / "app.log").read_text()) from None
    return int(marker.read_text()), port, marker


async def test_stop_ends_a_double_forked_grandchild(any_backend: Any, state_root: Path) -> None:
    grandchild, port, _ = await _start_forking(any_backend, state_root, main_exits=False)
    assert not _port_free(port)
    await any_backend.stop("forky")
    assert _gone(grandchild) and _port_free(port)


async def test_the_tree_ends_when_the_main_process_exits(any_backend: Any, state_root: Path) -> None:
    grandchild, port, _ = await _start_forking(any_backend, state_root, main_exits=True)
    status = await any_backend.status("forky")
    if status.running:
        with trio.fail_after(20):
            await any_backend.wait_exit(status)
    if isinstance(any_backend, ProcessBackend):
        assert _gone(grandchild)  # the exit is reported once the whole tree is gone
    else:
        await wait_until(lambda: _gone(grandchild))  # systemd ends the cgroup as the unit stops
    assert not (await any_backend.status("forky")).running
    await wait_until(lambda: _port_free(port))
    await any_backend.stop("forky")


async def test_a_start_interrupted_before_the_pid_was_saved_is_adopted(state_root: Path) -> None:
    """The token is on disk before the spawn: a new backend finds the process by it, no second copy."""
    backend = ProcessBackend(state_root / "run" / "procs")
    grandchild, _, _ = await _start_forking(backend, state_root, main_exits=False)
    pid = (await backend.status("forky")).pid
    state = backend._state_file("forky")
    data = backend._state("forky")
    # What a HomeHelper killed between the spawn and the second write leaves.
    state.write_text(json.dumps({"enabled": False, "token": data["token"], "pid": None, "created": None}))
    fresh = ProcessBackend(backend.state_dir)
    fresh._specs = backend._specs
    status = await fresh.status("forky")
    assert status.running and status.pid == pid
    await fresh.start("forky")  # already running: adopted, not started twice
    assert proctree.find_leader(data["token"]) == (pid, psutil.Process(pid).create_time())
    await fresh.stop("forky")
    assert _gone(pid) and _gone(grandchild)
    assert await trio.to_thread.run_sync(proctree.members, data["token"], None) == set()


async def test_leftovers_of_a_dead_run_are_ended_before_the_next_start(state_root: Path) -> None:
    backend = ProcessBackend(state_root / "run" / "procs")
    grandchild, _, marker = await _start_forking(backend, state_root, main_exits=False)
    pid = (await backend.status("forky")).pid
    old_token = backend._state("forky")["token"]
    # The main process dies while no HomeHelper watches; its daemon keeps the port.
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: _gone(pid))
    fresh = ProcessBackend(backend.state_dir)
    fresh._specs = backend._specs
    assert not (await fresh.status("forky")).running
    marker.unlink()
    await fresh.start("forky")
    assert _gone(grandchild)  # ended before the new process: the port is free for it
    await wait_until(marker.exists)
    assert int(marker.read_text()) != grandchild
    assert fresh._state("forky")["token"] != old_token
    await fresh.stop("forky")


async def test_a_status_asked_during_our_own_start_searches_no_process(state_root: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the token's write and the PID's, the token is ours: no search of every process's
    environment (13 ms each on a busy machine, once per app of a start of twenty)."""
    searches: list[str] = []
    real = proctree.find_leader
    monkeypatch.setattr(proctree, "find_leader", lambda token: searches.append(token) or real(token))
    backend = ProcessBackend(state_root / "run" / "procs")
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "quick", "import time\ntime.sleep(60)\n")
    await backend.prepare(app_spec(manifest, config, 8100, Path(sys.executable)))
    started = trio.Event()

    async def ask_status_meanwhile() -> None:
        while not started.is_set():
            await backend.status("quick")
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as n:
        n.start_soon(ask_status_meanwhile)
        await backend.start("quick")
        started.set()
    assert (await backend.status("quick")).running
    assert searches == []
    await backend.stop("quick")


async def test_the_state_file_is_read_once_then_known(state_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This backend is the file's only writer: a start, statuses and a stop read it from disk once
    (each read a trip to a worker thread while twenty apps start), and what is on disk stays right."""
    reads: list[str] = []
    real = ProcessBackend._state
    monkeypatch.setattr(ProcessBackend, "_state", lambda self, app_id: reads.append(app_id) or real(self, app_id))
    backend = ProcessBackend(state_root / "run" / "procs")
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "quick", "import time\ntime.sleep(60)\n")
    await backend.prepare(app_spec(manifest, config, 8100, Path(sys.executable)))
    await backend.start("quick")
    for _ in range(5):
        assert (await backend.status("quick")).running
    on_disk = json.loads(backend._state_file("quick").read_text())
    assert on_disk["pid"] == (await backend.status("quick")).pid and on_disk["token"]
    await backend.enable("quick", True)
    await backend.stop("quick")
    assert json.loads(backend._state_file("quick").read_text()) == {"enabled": True}
    assert len(reads) <= 1
    fresh = ProcessBackend(backend.state_dir)  # a restarted HomeHelper reads what was written
    assert (await fresh.status("quick")).enabled is True
