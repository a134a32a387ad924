"""HomeHelper's own sd_notify socket (the process backend's watchdog), on a real datagram socket."""

from __future__ import annotations

import array
import os
import socket
import subprocess
import sys
from pathlib import Path

import trio
import trio.testing

from homehelper.backends.notify import NotifyListener, socket_address


def _send(listener: NotifyListener, payload: bytes, fds: list[int] | None = None) -> None:
    addr = listener.address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect("\0" + addr[1:] if addr.startswith("@") else addr)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        sock.sendmsg([payload], anc)


async def test_ready_then_heartbeats_then_silence(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    me = os.getpid()
    listener = NotifyListener(tmp_path / "run" / "notify", {me: "app"}.get)
    async with trio.open_nursery() as nursery:
        listener.bind()
        assert listener.address == str(tmp_path / "run" / "notify")
        assert (tmp_path / "run" / "notify").stat().st_mode & 0o777 == 0o600
        nursery.start_soon(listener.serve)
        ready = trio.Event()

        async def wait_ready() -> None:
            await listener.wait_ready("app", me)
            ready.set()

        nursery.start_soon(wait_ready)
        await trio.testing.wait_all_tasks_blocked()
        _send(listener, b"STATUS=loading\nMAINPID=1")  # not READY=1
        await trio.testing.wait_all_tasks_blocked()
        assert not ready.is_set()
        _send(listener, b"STATUS=up\nREADY=1")
        await ready.wait()
        started = trio.current_time()

        async def beat(times: int) -> None:
            for _ in range(times):
                await trio.sleep(0.5)
                _send(listener, b"WATCHDOG=1")

        nursery.start_soon(beat, 6)
        why = await listener.missed_heartbeat("app", me, 1.0)
        # Six beats every 0.5 s kept it alive for 3 s; the seventh never came, so 4 s in it is judged.
        assert trio.current_time() - started == 4.0
        assert why == "watchdog: no heartbeat within 1 s"
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "run" / "notify").exists()  # closed with its backend


SENDER = ("import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
          "s.connect(sys.argv[1].replace('@', chr(0), 1)); s.send(sys.argv[2].encode())")


async def test_only_the_apps_own_process_is_heard(tmp_path: Path) -> None:
    apps: dict[int, str] = {}
    listener = NotifyListener(tmp_path / "notify", apps.get)
    async with trio.open_nursery() as nursery:
        listener.bind()
        nursery.start_soon(listener.serve)
        # Another process (not the app's main process) says READY=1: not the app speaking.
        await trio.run_process([sys.executable, "-c", SENDER, listener.address, "READY=1"])
        await trio.testing.wait_all_tasks_blocked()
        assert listener.dropped == 1 and "app" not in listener._watches
        # The app's process: known by the PID the kernel vouches for, looked up when its datagram lands.
        app = await trio.lowlevel.open_process([sys.executable, "-c", "input(); " + SENDER, listener.address,
                                                "READY=1"], stdin=subprocess.PIPE)
        apps[app.pid] = "app"
        assert app.stdin is not None
        await app.stdin.send_all(b"go\n")
        with trio.fail_after(10):
            await listener.wait_ready("app", app.pid)
            await app.wait()
        nursery.cancel_scope.cancel()


async def test_long_datagrams_and_passed_descriptors_are_dropped(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify", {os.getpid(): "app"}.get)
    async with trio.open_nursery() as nursery:
        listener.bind()
        nursery.start_soon(listener.serve)
        _send(listener, b"READY=1\n" + b"X" * 8000)  # over the cap: dropped whole
        await trio.testing.wait_all_tasks_blocked()
        assert listener.dropped == 1 and "app" not in listener._watches
        r, w = os.pipe()
        fds_before = len(os.listdir("/proc/self/fd"))
        _send(listener, b"WATCHDOG=1", [r, w])
        await trio.testing.wait_all_tasks_blocked()
        assert len(os.listdir("/proc/self/fd")) == fds_before  # the copies it was handed are closed
        os.close(r)
        os.close(w)
        assert listener._watches["app"].ready is False  # a heartbeat is not READY=1
        nursery.cancel_scope.cancel()


def test_a_path_too_long_for_a_socket_becomes_a_stable_abstract_name(tmp_path: Path) -> None:
    short = tmp_path / "notify"
    assert socket_address(short) == str(short)
    long = tmp_path / ("x" * 120) / "notify"
    assert socket_address(long).startswith("@homehelper-notify-")
    assert socket_address(long) == socket_address(long) != socket_address(long.with_name("other"))


async def test_a_listener_on_an_abstract_name_hears_its_app(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / ("x" * 120) / "notify", {os.getpid(): "app"}.get)
    async with trio.open_nursery() as nursery:
        listener.bind()
        assert listener.address.startswith("@") and not (tmp_path / ("x" * 120)).exists()
        nursery.start_soon(listener.serve)
        _send(listener, b"READY=1")
        with trio.fail_after(5):
            await listener.wait_ready("app", os.getpid())
        nursery.cancel_scope.cancel()
