"""The behavioural suite both backends pass: the same test, systemd and process."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
import trio

from homehelper.backends import ProcessBackend, SystemdBackend, app_spec
from homehelper.backends.base import Backend
from homehelper.errors import BackendError

from .apps import CRASHING_APP, HEALTHY_APP, make_config, wait_until, write_app

Any = SystemdBackend | ProcessBackend


@pytest.fixture
async def running(any_backend: Any, state_root: Path):
    """A healthy app started on the backend; yields (backend, config, manifest)."""
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    await any_backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    await any_backend.start("web")
    yield any_backend, config, manifest
    await any_backend.stop("web")


async def test_start_gives_a_running_process_with_its_environment(running) -> None:
    backend, config, _ = running
    status = await backend.status("web")
    assert status.running and status.active == "active"
    alive = config.data_dir("web") / "alive"
    # the app opens the file, then writes its pid: wait for the pid, not for the empty file
    await wait_until(lambda: alive.exists() and alive.read_text() != "")
    assert alive.read_text() == str(status.pid)
    await wait_until(lambda: "up on" in (config.logs_dir("web") / "app.log").read_text())
    log = (config.logs_dir("web") / "app.log").read_text()
    assert f"up on {config.service_ports[0]} data {config.data_dir('web')}" in log


async def test_an_app_runs_below_homehelper_on_the_cpu(running) -> None:
    """At config.app_nice (10); under the process backend its session's CPU group too, where the
    kernel groups sessions (autogroup): else each booting app weighs as much as all of HomeHelper."""
    backend, config, _ = running
    pid = (await backend.status("web")).pid
    assert config.app_nice == 10
    assert psutil.Process(pid).nice() == 10
    if isinstance(backend, ProcessBackend) and _autogroup("self") is not None:
        assert _autogroup(pid) == ["nice", "10"]


def _autogroup(pid: int | str) -> list[str] | None:
    """The session group's nice, as /proc shows it ("/autogroup-42 nice 10"); None without autogroup."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return f.read().split()[-2:]
    except FileNotFoundError:
        return None


async def test_stop_ends_the_process_and_is_idempotent(running) -> None:
    backend, _, _ = running
    pid = (await backend.status("web")).pid
    await backend.stop("web")
    status = await backend.status("web")
    assert not status.running and status.active == "inactive" and status.result == "success"
    assert _gone(pid)
    await backend.stop("web")  # no error the second time


async def test_kill_9_is_reported_as_a_signal(running) -> None:
    backend, _, _ = running
    status = await backend.status("web")
    os.kill(status.pid, signal.SIGKILL)
    with trio.fail_after(10):
        await backend.wait_exit(status)
    after = await wait_until(lambda: _not_running(backend, "web"))
    assert after.active == "failed" and after.result == "signal" and after.exit_status == 9


async def test_exit_status_of_a_crash(any_backend: Any, state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "crash", CRASHING_APP)
    await any_backend.prepare(app_spec(manifest, config, 1, Path(sys.executable)))
    await any_backend.start("crash")
    status = await any_backend.status("crash")
    with trio.fail_after(10):
        await any_backend.wait_exit(status)
    after = await wait_until(lambda: _not_running(any_backend, "crash"))
    assert (after.active, after.result, after.exit_status) == ("failed", "exit-code", 3)


async def test_a_new_backend_adopts_the_running_app(running, state_root: Path) -> None:
    backend, _, _ = running
    before = await backend.status("web")
    # A restarted HomeHelper builds a new backend object and finds the app as it was.
    if isinstance(backend, SystemdBackend):
        fresh: Backend = SystemdBackend("user", environ=backend.environ, prefix=backend.prefix)
    else:
        fresh = ProcessBackend(backend.state_dir)
    status = await fresh.status("web")
    assert status.running and status.pid == before.pid
    await fresh.stop("web")
    assert _gone(before.pid)


async def test_enable_and_disable(running) -> None:
    backend, _, _ = running
    await backend.enable("web", True)
    assert (await backend.status("web")).enabled
    await backend.enable("web", False)
    assert not (await backend.status("web")).enabled


async def test_a_program_that_cannot_be_executed_fails_the_start(any_backend: Any, state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "nopython", HEALTHY_APP)
    await any_backend.prepare(app_spec(manifest, config, 1, state_root / "no-such-venv" / "bin" / "python"))
    with pytest.raises(BackendError):
        await any_backend.start("nopython")
    assert not (await any_backend.status("nopython")).running


async def test_remove_forgets_the_app(running) -> None:
    backend, _, _ = running
    await backend.remove("web")
    status = await backend.status("web")
    assert not status.running and not status.loaded


async def test_unknown_app_is_not_loaded(any_backend: Any) -> None:
    status = await any_backend.status("never-seen")
    assert not status.loaded and not status.running


async def _not_running(backend: Any, app_id: str):
    """The status once the app has ended and its unit has settled: under systemd the main process
    has exited while the unit is still "deactivating" (its log stamper drains, the rest of the
    cgroup is stopped); the final state and result come only after that."""
    status = await backend.status(app_id)
    return None if status.running or status.active == "deactivating" else status


def _gone(pid: int) -> bool:
    """Ended: no process, or a zombie its first parent (this test) has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.systemd
async def test_many_apps_started_together_share_systemctl_calls(systemd_backend: SystemdBackend,
                                                                 state_root: Path) -> None:
    config = make_config(state_root)
    manifests = [write_app(config.apps_dir, f"w{i}", HEALTHY_APP) for i in range(6)]
    calls: list[tuple[str, ...]] = []
    real = systemd_backend.systemctl

    async def counting(*args: str, check: bool = True):
        calls.append(args)
        return await real(*args, check=check)

    systemd_backend.systemctl = counting  # type: ignore[method-assign]  # count the real calls
    async with trio.open_nursery() as nursery:
        await nursery.start(systemd_backend.run)
        async with trio.open_nursery() as apps:
            for i, m in enumerate(manifests):
                apps.start_soon(systemd_backend.prepare,
                                app_spec(m, config, config.service_ports[0] + i, Path(sys.executable)))
        async with trio.open_nursery() as apps:
            for m in manifests:
                apps.start_soon(systemd_backend.start, m.id)
        statuses = await systemd_backend.statuses([m.id for m in manifests])
        assert all(s.running for s in statuses.values())
        nursery.cancel_scope.cancel()
    assert systemd_backend.reloads <= 2
    starts = [c for c in calls if c[0] == "start"]
    assert len(starts) == 1 and len(starts[0]) == 7  # one `systemctl start` naming all six units
