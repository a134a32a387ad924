"""Installs side by side, each app's single-flight, guarded across processes; setup commands get the
app's environment (never HomeHelper's) and, under systemd, the app's sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import trio

from homehelper.backends import SystemdBackend, proctree
from homehelper.backends.installer import Installer
from homehelper.errors import InstallFailed
from homehelper.messages import AppInstallProgress

from .apps import make_config, write_app


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _release(fifo: Path) -> None:
    """Open the FIFO for writing (the blocked setup is its reader) and close it: the setup goes on."""
    fd = os.open(fifo, os.O_WRONLY)
    os.close(fd)


async def test_one_slow_setup_does_not_hold_up_another_apps_install(state_root: Path) -> None:
    config = make_config(state_root)
    fifo = _fifo(state_root / "gate")
    slow = write_app(config.apps_dir, "slow", "print('hi')\n", setup=[f"cat {fifo} > /dev/null; echo ran >> runs"])
    quick = write_app(config.apps_dir, "quick", "print('hi')\n")
    installer = Installer(config)
    in_setup = trio.Event()

    def emit(event: object) -> None:
        if isinstance(event, AppInstallProgress) and event.app_id == "slow" and event.step == "setup":
            in_setup.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(installer.install, slow, emit)
            nursery.start_soon(installer.install, slow, emit)  # the same app twice: one install
            await in_setup.wait()
            await installer.install(quick, lambda e: None)  # while slow's setup blocks
            assert installer.is_current(quick) and not installer.is_current(slow)
            await trio.to_thread.run_sync(_release, fifo)
    assert installer.is_current(slow)
    assert (slow.path / "runs").read_text() == "ran\n"  # single-flight: the setup ran once


async def test_a_second_homehelper_cannot_install_the_same_app_at_once(state_root: Path) -> None:
    config = make_config(state_root)
    fifo = _fifo(state_root / "gate")
    app = write_app(config.apps_dir, "app", "print('hi')\n", setup=[f"cat {fifo} > /dev/null"])
    first, second = Installer(config), Installer(config)  # two HomeHelpers: no shared lock in memory
    in_setup = trio.Event()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.install, app,
                               lambda e: in_setup.set() if getattr(e, "step", "") == "setup" else None)
            await in_setup.wait()
            with pytest.raises(InstallFailed, match=f"pid {os.getpid()}.* installing it now"):
                await second.install(app, lambda e: None, True)
            await trio.to_thread.run_sync(_release, fifo)
    assert first.is_current(app)


async def test_a_setup_left_by_a_dead_homehelper_is_ended_before_a_new_install(state_root: Path) -> None:
    config = make_config(state_root)
    app = write_app(config.apps_dir, "app", "print('hi')\n", setup=["echo fresh > fresh"])
    # What a HomeHelper killed mid-setup leaves: the lock file naming its token, the setup still running.
    token = proctree.new_token()
    lock = config.venv_dir("app").with_name(".app.install")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": 999999, "token": token}))
    leftover = subprocess.Popen(["sleep", "600"], env={**os.environ, proctree.TOKEN_VAR: token},  # noqa: ASYNC220
                                start_new_session=True)
    try:
        with trio.fail_after(60):
            await Installer(config).install(app, lambda e: None)
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert (app.path / "fresh").read_text() == "fresh\n" and lock.read_text() == ""
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


async def test_setup_commands_get_the_apps_environment_not_homehelpers(state_root: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEHELPER_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-apps")
    config = make_config(state_root)
    app = write_app(config.apps_dir, "envy", "print('hi')\n", setup=["env > seen-env"])
    await Installer(config).install(app, lambda e: None)
    seen = (app.path / "seen-env").read_text()
    assert "hunter2-secret" not in seen and "HOMEHELPER_PASSWORD" not in seen and "not-for-apps" not in seen
    assert "HH_APP_ID=envy\n" in seen and f"VIRTUAL_ENV={config.venv_dir('envy')}\n" in seen


@pytest.mark.systemd
async def test_setup_runs_in_the_apps_sandbox_under_systemd(systemd_backend: SystemdBackend, state_root: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEHELPER_PASSWORD", "hunter2-secret")
    config = make_config(state_root)
    outside = state_root / "outside"
    outside.mkdir()
    app = write_app(config.apps_dir, "boxed", "print('hi')\n", setup=[
        "env > seen-env",
        f"touch {outside}/escaped 2>/dev/null && echo escaped || echo denied > denied",
        f"touch {config.data_dir('boxed')}/data-ok venv-marker-ok",
    ])
    installer = Installer(config, sandbox=systemd_backend)
    await installer.install(app, lambda e: None)
    assert not (outside / "escaped").exists()
    assert (app.path / "denied").read_text() == "denied\n"
    assert (config.data_dir("boxed") / "data-ok").exists() and (app.path / "venv-marker-ok").exists()
    seen = (app.path / "seen-env").read_text()
    assert "hunter2-secret" not in seen and "HH_APP_ID=boxed\n" in seen
    # It ran as the transient unit, which is gone (--collect) once it finished.
    shown = await systemd_backend.systemctl("show", "-p", "LoadState", installer.setup_unit("boxed"), check=False)
    assert "LoadState=not-found" in shown.stdout.decode()


@pytest.mark.systemd
async def test_a_failing_sandboxed_setup_reports_its_output(systemd_backend: SystemdBackend,
                                                            state_root: Path) -> None:
    config = make_config(state_root)
    app = write_app(config.apps_dir, "bad", "print('hi')\n", setup=["echo preparing; echo broken >&2; exit 7"])
    with pytest.raises(InstallFailed, match="setup command 1 failed") as info:
        await Installer(config, sandbox=systemd_backend).install(app, lambda e: None)
    assert "preparing" in info.value.detail["output_tail"] and "broken" in info.value.detail["output_tail"]


async def test_a_setup_cannot_leave_a_daemon_behind(state_root: Path) -> None:
    config = make_config(state_root)
    app = write_app(config.apps_dir, "app", "print('hi')\n",
                    setup=["setsid sleep 600 > /dev/null 2>&1 & echo $! > daemon-pid"])
    await Installer(config).install(app, lambda e: None)
    pid = int((app.path / "daemon-pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
