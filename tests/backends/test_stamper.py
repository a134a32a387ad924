"""One log stamper per state root (`stamp.py --serve`): every app of a process backend shares it,
a restarted HomeHelper finds it again, it ends when nothing is left to serve, and a dead one is
replaced. Real processes, pipes and sockets."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import trio
import trio.testing

from homehelper.backends import ProcessBackend, app_spec
from homehelper.backends.logsearch import stamp_of
from homehelper.backends.stamping import DRAIN_WAIT, STAMPER
from homehelper.config import Config

from .apps import make_config, wait_until, write_app

# Prints "<id> <n>" lines, then waits on a FIFO (opened by the test: an event, not a sleep), then
# prints what comes after and sleeps until stopped.
GATED_APP = """
import os, sys, time
me = os.environ["HH_APP_ID"]
for i in range(int(os.environ.get("LINES", "3"))):
    print(me, i, flush=True)
sys.stdout.write(me + "-start"); sys.stdout.flush()  # a line's start alone, shorter than its stamp's HEAD
open(os.environ["GATE"]).read()
print("-end", flush=True)
print(me, "after the gate", flush=True)
if os.environ.get("EXIT"):
    for i in range(200):  # less than a pipe holds: it exits while its stamper is held
        print(me, "filler", i)
    print(me, "last words", flush=True)
    sys.exit(0)
time.sleep(120)
"""


def _stampers() -> dict[int, list[str]]:
    """This process's live children running stamp.py, in any mode: pid -> command line."""
    found = {}
    for child in psutil.Process().children():
        try:
            argv = child.cmdline()
            if str(STAMPER) in argv and child.status() != psutil.STATUS_ZOMBIE:
                found[child.pid] = argv
        except psutil.Error:
            continue
    return found


async def _exited(pid: int, timeout: float = 15) -> None:
    """Until `pid` (a child of ours) has ended: its pidfd turns readable."""
    fd = os.pidfd_open(pid)
    try:
        with trio.fail_after(timeout):
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def _prepare(backend: ProcessBackend, config: Config, app_id: str, **env: str) -> Path:
    """The gated app `app_id` prepared on `backend`, with its gate (a FIFO); returns the gate."""
    gate = config.data_dir(app_id).parent / f"{app_id}.gate"
    gate.parent.mkdir(parents=True, exist_ok=True)
    if not gate.exists():
        os.mkfifo(gate)
    manifest = write_app(config.apps_dir, app_id, GATED_APP, env={"GATE": str(gate), **env})
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    return gate


async def _open_gate(gate: Path) -> None:
    """Let the app past its gate: returns once it is waiting there (it has written its first part)."""
    fd = await trio.to_thread.run_sync(os.open, gate, os.O_WRONLY)  # blocks until the app opens it
    os.close(fd)


def _log(config: Config, app_id: str) -> list[str]:
    return (config.logs_dir(app_id) / "app.log").read_text().splitlines()


def _unstamped(lines: list[str]) -> list[str]:
    """Each line without its stamp, every line having one."""
    assert all(stamp_of(line) is not None for line in lines), lines
    return [line.split(" ", 1)[1] for line in lines]


async def test_apps_share_one_stamper_and_each_gets_its_own_lines_in_order(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    before = _stampers()
    apps = ["one", "two", "three", "four"]
    gates = {a: await _prepare(backend, config, a, LINES="200") for a in apps}
    try:
        async with trio.open_nursery() as nursery:  # started at once, as a boot does
            for app_id in apps:
                nursery.start_soon(backend.start, app_id)
        async with trio.open_nursery() as nursery:  # each has written its lines and a line's start
            for app_id in apps:
                nursery.start_soon(_open_gate, gates[app_id])
        for app_id in apps:
            await wait_until(lambda a=app_id: f"{a} after the gate" in (config.logs_dir(a) / "app.log").read_text())
        stampers = {pid: argv for pid, argv in _stampers().items() if pid not in before}
        assert [argv[-1] for argv in stampers.values()] == ["--serve"], stampers
    finally:
        for app_id in apps:
            await backend.stop(app_id)
    for app_id in apps:
        expected = [f"{app_id} {i}" for i in range(200)] + [f"{app_id}-start-end", f"{app_id} after the gate"]
        assert _unstamped(_log(config, app_id)) == expected  # its own lines, all of them, in order, once each


async def test_lines_written_in_pieces_by_two_apps_at_once_stay_in_their_own_files(state_root: Path) -> None:
    """Two apps each leave a line's start in the stamper (held back, then stamped alone), then finish
    it: each file gets its own line whole, never the other's piece."""
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    gates = {a: await _prepare(backend, config, a, LINES="0") for a in ("left", "right")}
    try:
        for app_id in gates:
            await backend.start(app_id)
        async with trio.open_nursery() as nursery:
            for gate in gates.values():
                nursery.start_soon(_open_gate, gate)
        for app_id in gates:
            await wait_until(lambda a=app_id: f"{a} after the gate" in (config.logs_dir(a) / "app.log").read_text())
    finally:
        for app_id in gates:
            await backend.stop(app_id)
    assert _unstamped(_log(config, "left")) == ["left-start-end", "left after the gate"]
    assert _unstamped(_log(config, "right")) == ["right-start-end", "right after the gate"]


async def test_a_restarted_homehelper_reuses_the_running_stamper(state_root: Path) -> None:
    config = make_config(state_root)
    first = ProcessBackend(config.run_dir / "procs")
    before = _stampers()
    gate = await _prepare(first, config, "kept")
    await first.start("kept")
    stamper = first.stamper.pid
    assert stamper is not None
    first.stamper.close()  # HomeHelper is gone; the app and its stamper are not

    second = ProcessBackend(config.run_dir / "procs")
    try:
        assert (await second.status("kept")).running  # adopted
        late_gate = await _prepare(second, config, "late", EXIT="1", LINES="0")
        await second.start("late")
        assert second.stamper.pid is None  # connected to the running one, started none
        assert set(_stampers()) - set(before) == {stamper}
        await _open_gate(gate)  # the adopted app writes on: still stamped, into its own file
        await wait_until(lambda: "kept after the gate" in (config.logs_dir("kept") / "app.log").read_text())
        assert _unstamped(_log(config, "kept")) == ["kept 0", "kept 1", "kept 2", "kept-start-end",
                                                    "kept after the gate"]

        # drained() waits for the stamper to say a stream of the new backend is done.
        os.kill(stamper, signal.SIGSTOP)  # whatever the app writes now waits in its pipe
        try:
            await _open_gate(late_gate)
            status = await second.status("late")
            await second.wait_exit(status)
            assert "late last words" not in (config.logs_dir("late") / "app.log").read_text()
            async with trio.open_nursery() as nursery:
                async def let_go() -> None:
                    await trio.testing.wait_all_tasks_blocked()  # drained() is waiting
                    os.kill(stamper, signal.SIGCONT)

                nursery.start_soon(let_go)
                began = trio.current_time()
                await second.drained("late")
                assert trio.current_time() - began < DRAIN_WAIT  # answered, not timed out
        finally:
            os.kill(stamper, signal.SIGCONT)
        assert _log(config, "late")[-1].endswith(" late last words")
    finally:
        await second.stop("kept")
        second.stamper.close()
    await _exited(stamper)


async def test_the_stamper_ends_once_no_stream_and_no_homehelper_is_left(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    gate = await _prepare(backend, config, "last")
    await backend.start("last")
    stamper = backend.stamper.pid
    assert stamper is not None
    backend.stamper.close()  # no HomeHelper: it serves on while the app writes
    await _open_gate(gate)
    await wait_until(lambda: "last after the gate" in (config.logs_dir("last") / "app.log").read_text())
    assert stamper in _stampers()
    await backend.stop("last")  # its last stream ends: so does the stamper
    await _exited(stamper)
    assert _unstamped(_log(config, "last"))[-1] == "last after the gate"


async def test_a_killed_stamper_is_replaced_at_the_next_start(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    await _prepare(backend, config, "before")
    gate = await _prepare(backend, config, "after")
    try:
        await backend.start("before")
        killed = backend.stamper.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        await _exited(killed)
        await backend.start("after")
        assert backend.stamper.pid not in (None, killed)
        assert backend.stamper.pid in _stampers() and killed not in _stampers()
        await _open_gate(gate)
        await wait_until(lambda: "after after the gate" in (config.logs_dir("after") / "app.log").read_text())
        assert _unstamped(_log(config, "after")) == ["after 0", "after 1", "after 2", "after-start-end",
                                                     "after after the gate"]
    finally:
        await backend.stop("before")
        await backend.stop("after")
        backend.stamper.close()


def _read_until(fd: int, needle: bytes, timeout: float = 15) -> bytes:
    """What `fd` (a pipe) gives until `needle` is in it; select() wakes on each piece."""
    got = b""
    end = time.monotonic() + timeout
    while needle not in got:
        assert select.select([fd], [], [], max(0.0, end - time.monotonic()))[0], got
        piece = os.read(fd, 65536)
        assert piece, got
        got += piece
    return got


def test_a_log_that_refuses_writes_holds_up_no_other_stream(state_root: Path) -> None:
    """`--serve` on its own: one stream's log is full (/dev/full: ENOSPC on every write), its pieces
    are dropped at once and the other stream is served meanwhile, without a pause per failure;
    each stream's end is told; with no control connection and no stream left it exits."""
    path = state_root / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen()
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.connect(str(path))
    ctl.settimeout(15)
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(STAMPER), "--serve"], stdin=listener.fileno())
    listener.close()
    try:
        full = os.open("/dev/full", os.O_WRONLY)
        out_r, out_w = os.pipe()  # the other stream's "log": read here as it is written
        full_r, full_w = os.pipe()
        good_r, good_w = os.pipe()
        socket.send_fds(ctl, [b"stream full.1\n"], [full_r, full])
        socket.send_fds(ctl, [b"stream good.1\n"], [good_r, out_w])
        socket.send_fds(ctl, [b"not a stream\n"], [os.open(os.devnull, os.O_RDONLY)])  # closed, ignored
        for fd in (full, full_r, good_r, out_w):
            os.close(fd)
        began = time.monotonic()
        for i in range(50):  # each round, a write to the full log fails before the good line is read
            os.write(full_w, b"lost line, no room for it\n")
            os.write(good_w, b"kept %d\n" % i)
            got = _read_until(out_r, b"kept %d\n" % i)
            assert stamp_of(got.decode().splitlines()[-1]) is not None
        assert time.monotonic() - began < 2.5  # a 0.1 s pause per failed write would take 5 s
        os.close(full_w)
        os.close(good_w)
        assert {ctl.recv(64), ctl.recv(64)} == {b"done full.1\n", b"done good.1\n"}
        assert os.read(out_r, 100) == b""  # the stamper closed its copy of the log at the end
        os.close(out_r)
        ctl.close()
        assert proc.wait(timeout=15) == 0
    finally:
        ctl.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
