"""Per-app environments: a venv each, layered over HomeHelper's own packages.

An app venv holds only what the app needs beyond HomeHelper's environment: a
`.pth` file puts HomeHelper's site-packages after the app's own, so streamlit,
redis and `homehelper.sdk` are shared, never copied (Streamlit alone is about
700 MB), and a pinned version in the app's requirements still wins. pip (or uv
when present) runs from HomeHelper against the app venv, so venvs carry no pip.
A venv is rebuilt only when its fingerprint (requirements, setup commands,
interpreter) changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
from ..storage import atomic_write_json, read_json
from .base import venv_python

MARKER = ".homehelper-install.json"
TAIL_LINES = 40
STEP_TIMEOUT = 1800.0  # a slow Pi building a wheel from source still finishes


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
    """Builds app venvs; one at a time, since pip on a Pi wants every core it can get."""

    def __init__(self, config: Config, python: str = sys.executable) -> None:
        self.config = config
        self.python = python
        self.uv = shutil.which("uv")
        self._lock = trio.Lock()

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
        root = self.config.root
        root.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(root).free // (1024 * 1024)
        need = self.config.monitor.min_free_disk_mb
        if free_mb < need:
            raise DiskFull(f"only {free_mb} MB free on {root}; installs need at least {need} MB "
                           f"(monitor.min_free_disk_mb)", free_mb=free_mb, min_free_mb=need)

    async def install(self, manifest: Manifest, emit: Callable[[object], None], force: bool = False) -> int:
        """Build the app's venv if needed; returns its disk cost in bytes. Raises InstallFailed."""
        async with self._lock:
            if not force and self.is_current(manifest):
                return int(self.marker(manifest).get("disk_bytes", 0))
            self.check_disk()
            app_id, venv = manifest.id, self.config.venv_dir(manifest.id)
            fingerprint = self.fingerprint(manifest)
            tail: deque[str] = deque(maxlen=TAIL_LINES)

            def progress(step: str, detail: str = "") -> None:
                emit(AppInstallProgress(app_id, step, detail))

            progress("venv", str(venv))
            if venv.exists():
                await trio.to_thread.run_sync(shutil.rmtree, venv)
            await self._run(manifest, [self.python, "-m", "venv", "--without-pip", str(venv)], tail, "venv")
            self._layer(venv)
            req = manifest.requirements_path
            if req is not None:
                progress("requirements", req.name)
                if self.uv:
                    cmd = [self.uv, "pip", "install", "--python", str(venv_python(venv)), "-r", str(req)]
                else:
                    cmd = [self.python, "-m", "pip", "--python", str(venv_python(venv)), "install",
                           "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", str(req)]
                await self._run(manifest, cmd, tail, "requirements", progress)
            env = self._setup_env(venv)
            for i, command in enumerate(manifest.setup, 1):
                progress("setup", f"{i}/{len(manifest.setup)}: {command}")
                await self._run(manifest, ["/bin/sh", "-c", command], tail, f"setup command {i}", env=env)
            cost = await trio.to_thread.run_sync(du, venv)
            atomic_write_json(venv / MARKER, {"fingerprint": fingerprint, "installed_at": time.time(),
                                              "disk_bytes": cost})
            progress("done", f"{cost} bytes")
            return cost

    def _layer(self, venv: Path) -> None:
        """Put HomeHelper's packages after the venv's own, through a .pth file."""
        v = sys.version_info
        site_dir = venv / "lib" / f"python{v.major}.{v.minor}" / "site-packages"
        site_dir.mkdir(parents=True, exist_ok=True)
        # addsitedir (not a plain path line) so HomeHelper's own .pth files, e.g. an editable install, apply.
        lines = [f"import site; site.addsitedir({d!r})" for d in shared_site_dirs()]
        (site_dir / "_homehelper_shared.pth").write_text("\n".join(lines) + "\n")

    def _setup_env(self, venv: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.pop("PYTHONHOME", None)
        return env

    async def _run(self, manifest: Manifest, cmd: list[str], tail: deque[str], what: str,
                   progress: Callable[[str, str], None] | None = None, env: dict[str, str] | None = None) -> None:
        """Run one step, keeping its output's tail; a failure raises InstallFailed with that tail."""
        env = env or {**os.environ, "PIP_NO_INPUT": "1"}
        code: int | None = None
        with trio.move_on_after(STEP_TIMEOUT) as scope:
            proc = await trio.lowlevel.open_process(cmd, cwd=str(manifest.path), env=env, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
                        proc.kill()
                        await proc.wait()
                    if proc.stdout is not None:
                        await proc.stdout.aclose()
        if scope.cancelled_caught:
            raise InstallFailed(f"{manifest.id}: {what} took longer than {STEP_TIMEOUT:g} s",
                                output_tail="\n".join(tail), app=manifest.id)
        if code != 0:
            raise InstallFailed(f"{manifest.id}: {what} failed (exit status {code})",
                                output_tail="\n".join(tail), app=manifest.id)
