"""What every backend offers: the `Backend` Protocol, `AppSpec` (how to run an
app) and `UnitStatus` (what the backend knows about it now).

A backend only runs processes; the policy (restarts, health, quarantine) lives
in the app's actor, so systemd and the process backend behave the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from ..config import Config
from ..errors import BackendError
from ..manifest import Manifest
from ..storage import atomic_write_text

ACTIVE = ("active", "activating", "reloading")


@attrs.frozen
class AppSpec:
    """Everything needed to run one service app, from its manifest and the config."""

    app_id: str
    argv: tuple[str, ...]  # the app venv's python and the entry point
    cwd: Path
    env: tuple[tuple[str, str], ...]
    data_dir: Path
    log_dir: Path
    description: str = ""
    memory_mb: int = 256
    cpu_percent: int = 50
    tasks: int = 64
    nice: int = 0  # config.app_nice: apps below HomeHelper on the CPU (and `cpu_weight` under systemd)
    permissions: tuple[str, ...] = ()  # approved manifest permissions (homehelper.manifest.PERMISSIONS)
    devices: tuple[str, ...] = ()  # approved device paths or /dev/serial/by-id/ globs, unresolved
    # Environment the app needs but nobody else may read (its Redis password): never in the
    # unit's Environment= (systemctl show prints those); the systemd backend hands it over in a
    # file only the manager reads, the process backend in the child's environment.
    secrets: tuple[tuple[str, str], ...] = ()
    # health.type "watchdog": the app speaks sd_notify (READY=1, then WATCHDOG=1 within watchdog_sec);
    # start_timeout: how long systemd lets it take to say READY=1.
    notify: bool = False
    watchdog_sec: float | None = None
    start_timeout: float | None = None
    # Output to journald where it runs (systemd backend): service apps. Streamlit apps keep their file,
    # which their launcher reads for Streamlit's own start-up errors.
    journal: bool = False
    # Typed options (backends/delivery.py): the JSON file HH_OPTIONS_FILE names, bound read-only into
    # the sandbox; `credentials`: the app's secrets, one 0600 file each in `credentials_dir`.
    options_file: Path | None = None
    credentials_dir: Path | None = None
    credentials: tuple[str, ...] = ()
    run_timeout: float | None = None  # a job (homehelper.backends.jobs): one run, Type=oneshot, ended after this

    @property
    def log_file(self) -> Path:
        return log_file(self.log_dir)


async def wait_pid_exit(pid: int, same: Callable[[], bool] = lambda: True, poll: float = 0.5) -> None:
    """Return once process `pid` has ended. A pidfd wakes us when it does, so a running app
    costs no timer; kernels without pidfds (before 5.3) fall back to polling /proc.
    `same` says whether `pid` is still the process we mean (a PID can be reused)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:
        # procfs answers from memory: this stat never waits on a disk
        while os.path.exists(f"/proc/{pid}") and same():  # noqa: ASYNC110, ASYNC240
            await trio.sleep(poll)
        return
    try:
        if same():  # checked after the pidfd pins the process: no reuse race
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_file_text(secrets: tuple[tuple[str, str], ...]) -> str:
    """`secrets` in systemd's EnvironmentFile= syntax: each value double-quoted, with the four
    characters systemd unescapes there (`"`, `\\`, `` ` ``, `$`) escaped, so any text comes back as it
    was (newlines too). A bad name or a NUL cannot be expressed in an environment: refused."""
    lines = []
    for key, value in secrets:
        if not _ENV_NAME.fullmatch(key):
            raise BackendError(f"secret name {key!r} is not a valid environment variable name")
        if "\0" in value:
            raise BackendError(f"secret {key} holds a NUL character")
        escaped = re.sub(r'(["\\`$])', r"\\\1", value)
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)


def write_secrets(path: Path, text: str | None) -> None:
    """The app's secrets file, mode 0600 in a 0700 folder, written atomically and only when it
    changed (no idle writes); None removes it. Blocking: call it in a worker thread."""
    if text is None:
        path.unlink(missing_ok=True)
        return
    try:
        if path.read_text() == text and path.stat().st_mode & 0o077 == 0:
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write_text(path, text, mode=0o600)


def cpu_weight(nice: int) -> int:
    """The unit's CPUWeight= (100: a default unit's) for a nice value. Under cgroup v2 each unit is a
    group of its own, where its processes' nice weighs nothing against HomeHelper's unit; the kernel
    weighs nice n at about 1.25^-n of nice 0, so the app's unit gets the share its nice would."""
    return max(1, round(100 / 1.25 ** nice))


def probe_delays(first: float = 0.05, cap: float = 0.5, factor: float = 2.0) -> Iterator[float]:
    """Pauses between checks of something that is about to happen (a start-up): short at first,
    growing by `factor` to `cap`, so a quick start is seen at once and a slow one costs few checks."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


def writable_dir(app_id: str, folder: Path, what: str) -> None:
    """Make `folder` or say, as an app error, which folder is wrong and how to fix it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(f"{app_id}: cannot create the {what} folder {folder}: {exc.strerror}; "
                           f"HomeHelper's user must be able to write its parent", app=app_id) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackendError(f"{app_id}: the {what} folder {folder} is not writable by HomeHelper's user; "
                           f"make it writable (chmod u+rwx {folder}; lsattr shows an immutable flag)", app=app_id)


def log_file(log_dir: Path) -> Path:
    """stdout and stderr of an app, in one file (rotated by homehelper.backends.logs)."""
    return log_dir / "app.log"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def app_env(manifest: Manifest, config: Config, port: int) -> dict[str, str]:
    """The environment an app reads its settings from (see apps/sensor-logger). HH_REDIS_URL is
    not here: it carries credentials, so it travels in the secrets (homehelper.bus.acl)."""
    env = dict(manifest.env)
    env.update({
        "HH_APP_ID": manifest.id,
        "HH_PORT": str(port),
        "HH_HOST": "127.0.0.1",
        "HH_DATA_DIR": str(config.data_dir(manifest.id)),
        "HH_LOG_DIR": str(config.logs_dir(manifest.id)),
        "HH_NODE_ID": config.node_id,
        "PYTHONUNBUFFERED": "1",  # log lines reach the file as they happen
    })
    env.pop("HH_REDIS_URL", None)  # a manifest must not point an app at a Redis with a URL in plain sight
    return env


def app_spec(manifest: Manifest, config: Config, port: int, python: Path | None = None,
             secrets: tuple[tuple[str, str], ...] = ()) -> AppSpec:
    """`secrets`: the app's secret environment (its HH_REDIS_URL, from homehelper.bus.acl.app_secrets)."""
    py = python or venv_python(config.venv_dir(manifest.id))
    folder = manifest.path.resolve()  # units and other processes need absolute paths
    return AppSpec(
        app_id=manifest.id,
        argv=(str(py), str(folder / manifest.entry)),
        cwd=folder,
        env=tuple(sorted(app_env(manifest, config, port).items())),
        data_dir=config.data_dir(manifest.id),
        log_dir=config.logs_dir(manifest.id),
        description=f"HomeHelper app {manifest.name}",
        memory_mb=manifest.resources.memory_mb,
        cpu_percent=manifest.resources.cpu_percent,
        tasks=manifest.resources.tasks,
        nice=config.app_nice,
        permissions=manifest.permissions,
        devices=manifest.devices,
        secrets=secrets,
        journal=manifest.type == "service",
        **watchdog_fields(manifest),
    )


def ready_timeout(manifest: Manifest) -> float:
    """How long a watchdog app may take to say READY=1: its start-up grace, at least one interval."""
    return max(manifest.health.grace, manifest.health.interval)


def watchdog_fields(manifest: Manifest) -> dict[str, Any]:
    if manifest.health.type != "watchdog":
        return {}
    # systemd's start timeout only backs up the actor's own (a boot-time start has no actor yet).
    return {"notify": True, "watchdog_sec": manifest.health.interval,
            "start_timeout": ready_timeout(manifest) + 10}


@attrs.frozen
class UnitStatus:
    """systemd's view of a unit (the process backend fills the same fields)."""

    active: str = "inactive"  # ActiveState: active, activating, deactivating, inactive, failed
    sub: str = "dead"  # SubState
    pid: int | None = None  # MainPID
    restarts: int = 0  # NRestarts (always 0: HomeHelper restarts, not systemd)
    exit_status: int | None = None  # exit code, or the signal number when result is "signal"
    result: str = "success"  # success, exit-code, signal, core-dump, timeout, resources
    cgroup: str | None = None  # absolute path under /sys/fs/cgroup, when known
    loaded: bool = True  # False: the backend has no such unit
    enabled: bool = False

    @property
    def running(self) -> bool:
        return self.active in ACTIVE and self.pid is not None

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)


@runtime_checkable
class Backend(Protocol):
    """How service apps run. Methods raise `BackendError` with the tool's output."""

    name: str  # "systemd" or "process"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background work (batching, reaping); `serve` starts it in its nursery."""
        ...

    async def prepare(self, spec: AppSpec) -> None:
        """Make the app startable with this spec (write its unit); idempotent."""
        ...

    async def start(self, app_id: str) -> None: ...

    async def stop(self, app_id: str) -> None:
        """Stop it and wait until its processes are gone; no error if not running."""
        ...

    async def enable(self, app_id: str, enabled: bool) -> None:
        """Start it at boot (with HomeHelper's own unit) or not."""
        ...

    async def status(self, app_id: str) -> UnitStatus:
        """Fresh status; `loaded=False` for an app the backend does not know."""
        ...

    async def wait_exit(self, status: UnitStatus) -> None:
        """Return once the main process of `status` has ended (cheaply: no polling of systemctl)."""
        ...

    async def remove(self, app_id: str) -> None:
        """Stop it and forget it (delete its unit)."""
        ...

    async def wait_ready(self, app_id: str) -> bool:
        """A watchdog app: True once its run has said READY=1, False if it stopped starting."""
        ...

    async def missed_heartbeat(self, app_id: str, interval: float) -> str:
        """A watchdog app: return why once its run went `interval` s without WATCHDOG=1 (never,
        where the manager enforces the watchdog itself)."""
        ...


def env_value(pid: int | None, name: str) -> str | None:
    """One variable of a running process's environment (as it was at exec), None if unreadable."""
    key = name.encode() + b"="
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(key):
            return item[len(key):].decode(errors="replace")
    return None


def env_port(pid: int | None) -> int | None:
    """HH_PORT from a running app's environment: adoption when HomeHelper lost its own record."""
    value = env_value(pid, "HH_PORT")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
