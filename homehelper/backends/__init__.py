"""How service apps run: systemd units in production, trio subprocesses where
no systemd manager answers. Both sit behind the `Backend` Protocol."""

from __future__ import annotations

import logging
import pwd
import shutil
from collections.abc import Mapping
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from .base import AppSpec, Backend, UnitStatus, app_env, app_spec
from .process import ProcessBackend
from .sandbox import private_tmp_problem
from .systemd import SystemdBackend
from .units import systemd_version

log = logging.getLogger(__name__)

__all__ = ["AppSpec", "Backend", "ProcessBackend", "SystemdBackend", "UnitStatus", "app_env", "app_spec",
           "choose_backend", "owner"]


def owner(path: Path) -> str | None:
    """Who owns `path` (or its nearest existing parent); None for root. System-scope apps run as them."""
    for p in (path, *path.parents):
        try:
            uid = p.stat().st_uid
        except FileNotFoundError:
            continue
        if uid == 0:
            return None
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)
    return None


async def choose_backend(config: Config, environ: Mapping[str, str] | None = None) -> Backend:
    """systemd when a manager of `config.systemd_scope` answers, else the process backend.

    `config.backend` = "systemd" or "process" forces one; a forced systemd that does
    not answer is an error at start, not a silent fallback. A state root or apps folder under
    /tmp or /var/tmp is refused with systemd, naming the fix: units get a private /tmp, so every
    app would fail with 226/NAMESPACE.
    """
    if config.backend in ("auto", "systemd") and shutil.which("systemctl"):
        backend = SystemdBackend(config.systemd_scope, environ, run_as=owner(config.root),
                                 secrets_at=config.run_dir / "secrets", bus_at=config.run_dir / "bus")
        if await backend.available():
            problem = private_tmp_problem(config.root, config.apps_dir)
            if problem:
                raise ConfigError(problem, key="root")
            log.info("service apps run under systemd %s (%s scope, units in %s)", systemd_version() or "?",
                     config.systemd_scope, backend.unit_dir)
            return backend
    if config.backend == "systemd":
        raise ConfigError(f"backend 'systemd' was asked for but no systemd {config.systemd_scope} manager answers",
                          key="backend")
    log.info("service apps run as subprocesses (no systemd manager answers)")
    return ProcessBackend(config.run_dir / "procs")
