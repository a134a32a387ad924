"""Starting and ending one `streamlit run` process.

The child gets its own session (process group), so a stop reaches everything it
spawned; its output goes to logs/<id>/streamlit.log (never to an unread pipe,
which would block it once the pipe buffer filled).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import httpx
import trio

from ..backends.base import app_env
from ..config import Config
from ..errors import BackendError, Unavailable
from ..manifest import Manifest

# httpx logs every request at INFO: a log line (a disk write on a Pi) per health poll.
logging.getLogger("httpx").setLevel(logging.WARNING)

LOG_NAME = "streamlit.log"
LOG_MAX_BYTES = 1024 * 1024  # rotated at each start past this: one old file kept
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


def streamlit_env(
    config: Config, manifest: Manifest, port: int, base: Mapping[str, str] | None = None,
    secrets: tuple[tuple[str, str], ...] = (),
) -> dict[str, str]:
    """HomeHelper's own environment (PATH, locale) plus every app's settings, plus the UI prefix."""
    env = dict(os.environ if base is None else base)
    env.setdefault("STREAMLIT_CLIENT_TOOLBAR_MODE", "minimal")  # no "Deploy" button inside the modal
    env.pop("HH_REDIS_URL", None)  # only the config decides whether the app gets Redis
    env.update(app_env(manifest, config, port))
    env.update(secrets)  # its HH_REDIS_URL (homehelper.bus.acl)
    env["HH_UI_PREFIX"] = ui_prefix(manifest.id)
    return env


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


@attrs.define
class StreamlitProcess:
    proc: trio.Process
    port: int
    prefix: str
    log_path: Path
    log_offset: int = 0  # where this run's output starts in the log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}/_stcore/health"


def _open_log(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


async def spawn(config: Config, manifest: Manifest, port: int,
                secrets: tuple[tuple[str, str], ...] = ()) -> StreamlitProcess:
    prefix = ui_prefix(manifest.id)
    log_path = config.logs_dir(manifest.id) / LOG_NAME
    config.data_dir(manifest.id).mkdir(parents=True, exist_ok=True)
    argv = streamlit_argv(app_python(config, manifest), manifest.entry_path, port, prefix)
    fd = _open_log(log_path)
    offset = os.fstat(fd).st_size
    # No PR_SET_PDEATHSIG: trio spawns from a worker thread and the signal fires when that thread
    # exits, not when HomeHelper does. A killed HomeHelper's children are ended via the state file.
    try:
        proc = await trio.lowlevel.open_process(
            argv, cwd=str(manifest.path), env=streamlit_env(config, manifest, port, secrets=secrets),
            stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        raise StartFailed(f"{manifest.id}: cannot run {argv[0]}: {exc.strerror}", app=manifest.id) from None
    finally:
        os.close(fd)
    return StreamlitProcess(proc, port, prefix, log_path, offset)


def log_tail(path: Path, max_bytes: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


async def wait_ready(sp: StreamlitProcess, timeout: float) -> float:
    """Poll the health endpoint (fast first, then slower) until 200; returns seconds waited.

    Raises PortTaken when Streamlit exits saying so, StartFailed when it exits
    otherwise or is not ready within `timeout`.
    """
    start = trio.current_time()
    delay = 0.01
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0), trust_env=False) as client:
        with trio.move_on_after(timeout):
            while True:
                if sp.proc.poll() is not None:
                    _raise_exit(sp)
                try:
                    resp = await client.get(sp.health_url)
                    if resp.status_code == 200:
                        return trio.current_time() - start
                except httpx.TransportError:
                    pass
                await trio.sleep(delay)
                delay = min(delay * 1.3, 0.25)
    if sp.proc.poll() is not None:
        _raise_exit(sp)
    raise StartFailed(f"Streamlit did not answer {sp.prefix}/_stcore/health within {timeout:g} s",
                      log_tail(sp.log_path), port=sp.port)


def _raise_exit(sp: StreamlitProcess) -> None:
    tail = log_tail(sp.log_path)
    new_output = _since(sp.log_path, sp.log_offset)  # this run's output only, not an old run's
    if sp.proc.returncode == 1 and f"Port {sp.port} {PORT_TAKEN_MARK}" in new_output:
        raise PortTaken(sp.port)
    raise StartFailed(f"Streamlit exited with status {sp.proc.returncode} before it was ready", tail,
                      status=sp.proc.returncode)


def _since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(64 * 1024).decode(errors="replace")
    except FileNotFoundError:
        return ""


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by `pid`; False when it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


async def terminate(sp: StreamlitProcess, grace: float) -> int | None:
    """SIGTERM to the group, wait up to `grace`, then SIGKILL; returns the exit status."""
    proc = sp.proc
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        with trio.move_on_after(grace):
            await proc.wait()
        if proc.poll() is None:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    # the group may still hold children that ignored SIGTERM after the leader left
    signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def port_taken_error(app_id: str, tried: list[int]) -> Unavailable:
    return Unavailable(f"{app_id}: every port tried was taken ({', '.join(map(str, tried))})", app=app_id)
