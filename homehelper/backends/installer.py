"""Per-app environments: a venv each, layered over HomeHelper's own packages.

An app venv holds only what the app needs beyond HomeHelper's environment: a
`.pth` file puts HomeHelper's site-packages after the app's own, so streamlit,
redis and `homehelper.sdk` are shared, never copied (Streamlit alone is about
700 MB), and a pinned version in the app's requirements still wins. pip (or uv
when present) runs from HomeHelper against the app venv, so venvs carry no pip.
A venv is rebuilt only when its fingerprint (requirements, setup commands,
interpreter) changes.

Installs of different apps run side by side (two at a time: a Pi has four
cores and little memory); one app's install is single-flight, in this process
(a lock) and across processes (an flock on `venvs/.<id>.install`, which also
names the token of the steps it runs, so a HomeHelper killed mid-install leaves
nothing running that the next install would race). Setup commands are the app's
own code: they get the app's environment, never HomeHelper's, and under systemd
they run in a transient unit with the app's sandbox, its folders writable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..config import PACKAGE_DIR, Config
from ..errors import DiskFull, InstallFailed
from ..manifest import Manifest
from ..messages import AppInstallProgress
from ..monitor.metrics import install_space
from ..storage import atomic_write_json, read_json
from . import proctree
from .base import app_spec, venv_python
from .systemd import SystemdBackend
from .units import exec_properties

MARKER = ".homehelper-install.json"
TAIL_LINES = 40
STEP_TIMEOUT = 1800.0  # a slow Pi building a wheel from source still finishes
PARALLEL = 2  # installs of different apps at once
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")


def du(path: Path) -> int:
    """Bytes on disk under `path`, each hard-linked inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def shared_site_dirs() -> list[str]:
    """HomeHelper's own package folders, which every app venv sees after its own."""
    dirs = [p for p in site.getsitepackages() if os.path.isdir(p)]
    return [*dirs, str(PACKAGE_DIR.parent)]


class Installer:
    """Builds app venvs: a few apps at once, each app's install single-flight."""

    def __init__(self, config: Config, python: str = sys.executable, parallel: int = PARALLEL,
                 sandbox: SystemdBackend | None = None) -> None:
        self.config = config
        self.python = python
        self.uv = shutil.which("uv")
        self.sandbox = sandbox  # setup commands run in a transient unit of this manager
        self._limiter = trio.CapacityLimiter(parallel)
        self._locks: dict[str, trio.Lock] = {}

    def fingerprint(self, manifest: Manifest) -> str:
        h = hashlib.sha256()
        req = manifest.requirements_path
        h.update(req.read_bytes() if req is not None and req.is_file() else b"-")
        h.update(json.dumps([list(manifest.setup), self.python, sys.version, shared_site_dirs()]).encode())
        return h.hexdigest()

    def marker(self, manifest: Manifest) -> dict[str, Any]:
        try:
            data = read_json(self.config.venv_dir(manifest.id) / MARKER, {})
        except (OSError, ValueError, RecursionError):  # a damaged marker: the venv counts as stale, rebuilt
            return {}
        return data if isinstance(data, dict) else {}

    def is_current(self, manifest: Manifest) -> bool:
        venv = self.config.venv_dir(manifest.id)
        return venv_python(venv).exists() and self.marker(manifest).get("fingerprint") == self.fingerprint(manifest)

    def disk_cost(self, manifest: Manifest) -> int:
        return du(self.config.venv_dir(manifest.id))

    def check_disk(self) -> None:
        """Refuse an install before it starts when the disk is short: the rule the snapshot shows too."""
        space = install_space(self.config)
        if space["blocked"] is not None:
            raise DiskFull(space["blocked"], free_mb=space["free_mb"], required_mb=space["required_mb"],
                           path=space["path"])

    def setup_unit(self, app_id: str) -> str:
        """The transient unit of an app's setup commands ('_' never occurs in an app id)."""
        prefix = self.sandbox.prefix if self.sandbox is not None else "hh-"
        return f"{prefix}setup_{app_id}.service"

    async def install(self, manifest: Manifest, emit: Callable[[object], None], force: bool = False) -> int:
        """Build the app's venv if needed; returns its disk cost in bytes. Raises InstallFailed."""
        async with self._locks.setdefault(manifest.id, trio.Lock()):
            # A caller that waited on the same app's install finds it done.
            if not force and self.is_current(manifest):
                return int(self.marker(manifest).get("disk_bytes", 0))
            async with self._limiter:
                token = proctree.new_token()
                fd = await self._guard(manifest, token)
                try:
                    return await self._install(manifest, emit, token)
                finally:
                    with trio.CancelScope(shield=True):
                        # Whatever a step started in the background ends with the install.
                        await proctree.end_tree(token, None, 5.0)
                    _release(fd)

    async def _guard(self, manifest: Manifest, token: str) -> int:
        """Take the app's install lock file; end what a dead HomeHelper's install of it left running."""
        path = self.config.venv_dir(manifest.id).with_name(f".{manifest.id}.install")
        fd, previous = await trio.to_thread.run_sync(_acquire, path, token)
        if fd is None:
            raise InstallFailed(f"{manifest.id}: another HomeHelper process (pid {previous}) is installing it now",
                                output_tail="", app=manifest.id)
        if previous:
            try:
                if self.sandbox is not None:
                    await self.sandbox.systemctl("stop", self.setup_unit(manifest.id), check=False)
                await proctree.end_tree(previous, None, 5.0)
            except BaseException:
                _release(fd)
                raise
        return fd

    async def _install(self, manifest: Manifest, emit: Callable[[object], None], token: str) -> int:
        self.check_disk()
        app_id, venv = manifest.id, self.config.venv_dir(manifest.id)
        fingerprint = self.fingerprint(manifest)
        tail: deque[str] = deque(maxlen=TAIL_LINES)

        def progress(step: str, detail: str = "") -> None:
            emit(AppInstallProgress(app_id, step, detail))

        progress("venv", str(venv))
        if venv.exists():
            await trio.to_thread.run_sync(shutil.rmtree, venv)
        tool_env = self._tool_env(token)
        await self._run(manifest, [self.python, "-m", "venv", "--without-pip", str(venv)], tail, "venv", env=tool_env)
        self._layer(venv)
        req = manifest.requirements_path
        if req is not None:
            progress("requirements", req.name)
            if self.uv:
                cmd = [self.uv, "pip", "install", "--python", str(venv_python(venv)), "-r", str(req)]
            else:
                cmd = [self.python, "-m", "pip", "--python", str(venv_python(venv)), "install",
                       "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", str(req)]
            await self._run(manifest, cmd, tail, "requirements", progress, env=tool_env)
        env = self.setup_env(manifest, token)
        for i, command in enumerate(manifest.setup, 1):
            progress("setup", f"{i}/{len(manifest.setup)}: {command}")
            await self._run(manifest, self._setup_cmd(manifest, command, env), tail, f"setup command {i}",
                            env=env if self.sandbox is None else self.sandbox.environ,
                            unit=self.setup_unit(app_id) if self.sandbox is not None else None)
        cost = await trio.to_thread.run_sync(du, venv)
        await trio.to_thread.run_sync(atomic_write_json, venv / MARKER, {
            "fingerprint": fingerprint, "installed_at": time.time(), "disk_bytes": cost})
        progress("done", f"{cost} bytes")
        return cost

    async def run_command(self, manifest: Manifest, command: str, what: str) -> None:
        """One of the app's own commands (a backup's pre/post) run as its setup commands are: in its
        folder, in its sandbox, with its environment; InstallFailed names the step when it fails."""
        env = self.setup_env(manifest)
        await self._run(manifest, self._setup_cmd(manifest, command, env), deque(maxlen=TAIL_LINES), what,
                        env=env if self.sandbox is None else self.sandbox.environ,
                        unit=self.setup_unit(manifest.id) if self.sandbox is not None else None)

    def _layer(self, venv: Path) -> None:
        """Put HomeHelper's packages after the venv's own, through a .pth file."""
        v = sys.version_info
        site_dir = venv / "lib" / f"python{v.major}.{v.minor}" / "site-packages"
        site_dir.mkdir(parents=True, exist_ok=True)
        # addsitedir (not a plain path line) so HomeHelper's own .pth files, e.g. an editable install, apply.
        lines = [f"import site; site.addsitedir({d!r})" for d in shared_site_dirs()]
        (site_dir / "_homehelper_shared.pth").write_text("\n".join(lines) + "\n")

    def _tool_env(self, token: str) -> dict[str, str]:
        """pip and venv run as HomeHelper (network, caches, proxies) but without its own settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEHELPER_")}
        env.update({"PIP_NO_INPUT": "1", proctree.TOKEN_VAR: token})
        return env

    def setup_env(self, manifest: Manifest, token: str = "") -> dict[str, str]:
        """What a setup command sees: the app's environment (no secrets), its venv first on PATH."""
        venv = self.config.venv_dir(manifest.id)
        spec = app_spec(manifest, self.config, 0, venv_python(venv))
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        env.update(spec.env)
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        if token:
            env[proctree.TOKEN_VAR] = token
        return env

    def _setup_cmd(self, manifest: Manifest, command: str, env: dict[str, str]) -> list[str]:
        if self.sandbox is None:
            return ["/bin/sh", "-c", command]
        venv = self.config.venv_dir(manifest.id)
        spec = app_spec(manifest, self.config, 0, venv_python(venv))
        folder = manifest.path.resolve()
        for d in (spec.data_dir, spec.log_dir):  # ReadWritePaths= must exist, or the unit cannot start
            d.mkdir(parents=True, exist_ok=True)
        props = exec_properties(spec, setup=True)
        if self.sandbox.run_as:
            props.append(f"User={self.sandbox.run_as}")
        scope = "--user" if self.sandbox.scope == "user" else "--system"
        return ["systemd-run", scope, "--wait", "--pipe", "--collect", "--quiet", "--no-ask-password",
                f"--unit={self.setup_unit(manifest.id)}", f"--working-directory={folder}",
                *(f"--property={p}" for p in props), *(f"--setenv={k}={v}" for k, v in sorted(env.items())),
                "/bin/sh", "-c", command]

    async def _run(self, manifest: Manifest, cmd: list[str], tail: deque[str], what: str,
                   progress: Callable[[str, str], None] | None = None, env: dict[str, str] | None = None,
                   unit: str | None = None) -> None:
        """Run one step, keeping its output's tail; a failure raises InstallFailed with that tail."""
        code: int | None = None
        with trio.move_on_after(STEP_TIMEOUT) as scope:
            # A session of its own: ending the step ends whatever it forked.
            proc = await trio.lowlevel.open_process(cmd, cwd=str(manifest.path), env=env, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
            try:
                assert proc.stdout is not None
                buf = b""
                async for chunk in proc.stdout:
                    *lines, buf = (buf + chunk).split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace").rstrip()
                        tail.append(line)
                        if progress and line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                            progress(what, line[:200])
                if buf:
                    tail.append(buf.decode(errors="replace").rstrip())
                code = await proc.wait()
            finally:
                with trio.CancelScope(shield=True):
                    if proc.returncode is None:
                        if unit is not None and self.sandbox is not None:  # the unit outlives its client
                            await self.sandbox.systemctl("stop", unit, check=False)
                        try:
                            os.killpg(proc.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        await proc.wait()
                    if proc.stdout is not None:
                        await proc.stdout.aclose()
        if scope.cancelled_caught:
            raise InstallFailed(f"{manifest.id}: {what} took longer than {STEP_TIMEOUT:g} s",
                                output_tail="\n".join(tail), app=manifest.id)
        if code != 0:
            raise InstallFailed(f"{manifest.id}: {what} failed (exit status {code})",
                                output_tail="\n".join(tail), app=manifest.id)


def _acquire(path: Path, token: str) -> tuple[int | None, str]:
    """(fd holding the flock, the token a dead holder left) or (None, the live holder's pid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace")
        os.close(fd)
        try:
            return None, str(json.loads(holder).get("pid", "?"))
        except (ValueError, AttributeError):
            return None, "?"
    try:
        old = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        old = {}
    previous = old.get("token") if isinstance(old, dict) else None
    # The token is on disk before any step starts: a kill -9 from here on leaves it to the next install.
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "token": token}).encode(), 0)
    return fd, previous if isinstance(previous, str) else ""


def _release(fd: int) -> None:
    """The install finished (or failed, its steps ended): nothing left for the next one to end."""
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock
