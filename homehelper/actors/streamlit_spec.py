"""What a Streamlit app runs as, and when it is ready.

The process itself is the backend's (a systemd unit with the app's sandbox and
limits, or the process backend's subprocess), like a service app's: this module
only says which command, environment and limits (`streamlit_spec`), and polls
Streamlit's health endpoint after a start (`wait_ready`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import httpx
import psutil
import trio

from ..backends import logs
from ..backends.base import AppSpec, UnitStatus, app_spec, env_port
from ..config import Config
from ..errors import BackendError, Unavailable
from ..manifest import Manifest

# httpx logs every request at INFO: a log line (a disk write on a Pi) per health poll.
logging.getLogger("httpx").setLevel(logging.WARNING)

PORT_TAKEN_MARK = "is not available"  # Streamlit's "Port 8501 is not available", then exit 1


def ui_prefix(app_id: str) -> str:
    """The URL path the app is served under, on the dashboard's origin and on its own port."""
    return f"/apps/{app_id}/ui"


def streamlit_argv(python: str, entry: Path, port: int, prefix: str) -> list[str]:
    return [
        python, "-m", "streamlit", "run", str(entry),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.baseUrlPath", prefix,
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
    ]


def app_python(config: Config, manifest: Manifest) -> str:
    """The app's own venv (made by the installer, layered over ours) if it has one, else ours."""
    if manifest.requirements is not None or manifest.setup:
        venv_python = config.venv_dir(manifest.id) / "bin" / "python"
        if venv_python.exists():
            return str(venv_python)
    return sys.executable


def streamlit_spec(config: Config, manifest: Manifest, port: int,
                   secrets: tuple[tuple[str, str], ...] = ()) -> AppSpec:
    """The app's AppSpec (limits and sandbox from its manifest: memory_mb defaults to 512 for
    Streamlit, manifest.STREAMLIT_MEMORY_MB), running `streamlit run`.

    HOME and the XDG folders point into the app's data folder: Streamlit writes ~/.streamlit
    there, the one place the sandbox lets it write. The toolbar is minimal (no "Deploy" button
    inside the modal) unless the manifest's env says otherwise; HH_REDIS_URL comes only in
    `secrets` (homehelper.bus.acl), never from HomeHelper's own environment.
    """
    python = app_python(config, manifest)
    base = app_spec(manifest, config, port, python=Path(python), secrets=secrets)
    prefix = ui_prefix(manifest.id)
    data = config.data_dir(manifest.id)
    env = {"STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal", **dict(base.env)}
    env.update({"HH_UI_PREFIX": prefix, "HOME": str(data), "XDG_CONFIG_HOME": str(data / ".config"),
                "XDG_CACHE_HOME": str(data / ".cache"), "XDG_DATA_HOME": str(data / ".local" / "share")})
    argv = streamlit_argv(python, base.cwd / manifest.entry, port, prefix)
    return attrs.evolve(base, argv=tuple(argv), env=tuple(sorted(env.items())),
                        description=f"HomeHelper Streamlit app {manifest.name}")


def exit_code(status: UnitStatus) -> int | None:
    """The exit status as a Python returncode: negative for a signal (-9 for SIGKILL)."""
    if status.exit_status is not None and status.result in ("signal", "core-dump", "oom-kill"):
        return -status.exit_status
    return status.exit_status


def cmdline_port(pid: int | None) -> int | None:
    """--server.port of a running streamlit, for adoption (its environment may be unreadable)."""
    try:
        argv = psutil.Process(pid).cmdline() if pid else []
        return int(argv[argv.index("--server.port") + 1])
    except (psutil.Error, ValueError, IndexError):
        return env_port(pid)


class PortTaken(Exception):
    """Streamlit could not bind its port (someone took it after the allocator's check)."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is taken")
        self.port = port


class StartFailed(BackendError):
    """The process exited (or never answered) before it was ready; `log_tail` says why."""

    def __init__(self, message: str, log_tail: str = "", **detail: object) -> None:
        super().__init__(message, log_tail=log_tail, **detail)
        self.log_tail = log_tail


async def wait_ready(port: int, prefix: str, log_path: Path, log_offset: int, timeout: float,
                     exited: trio.Event, exit_status: Callable[[], Awaitable[int | None]]) -> float:
    """Poll `<prefix>/_stcore/health` (fast first, then slower) until 200; returns seconds waited.

    `exited` is set by whoever watches the process (the backend's wait_exit); `exit_status`
    then says how it ended. Raises PortTaken when Streamlit exits saying so, StartFailed when
    it exits otherwise or is not ready within `timeout`.
    """
    start = trio.current_time()
    delay = 0.01
    url = f"http://127.0.0.1:{port}{prefix}/_stcore/health"
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0), trust_env=False, verify=False) as client:
        with trio.move_on_after(timeout):
            while not exited.is_set():
                try:
                    resp = await client.get(url)
                    if resp.status_code == 200:
                        return trio.current_time() - start
                except httpx.TransportError:
                    pass
                with trio.move_on_after(delay):
                    await exited.wait()
                delay = min(delay * 1.3, 0.25)
    if exited.is_set():
        await _raise_exit(port, log_path, log_offset, await exit_status())
    raise StartFailed(f"Streamlit did not answer {prefix}/_stcore/health within {timeout:g} s",
                      await trio.to_thread.run_sync(logs.read_since, log_path, log_offset), port=port)


async def _raise_exit(port: int, log_path: Path, log_offset: int, status: int | None) -> None:
    output = await trio.to_thread.run_sync(logs.read_since, log_path, log_offset)  # this run's output only
    if status == 1 and f"Port {port} {PORT_TAKEN_MARK}" in output:
        raise PortTaken(port)
    raise StartFailed(f"Streamlit exited with status {status} before it was ready", output[-2000:], status=status)


def port_taken_error(app_id: str, tried: list[int]) -> Unavailable:
    return Unavailable(f"{app_id}: every port tried was taken ({', '.join(map(str, tried))})", app=app_id)
