"""Handing an app its options and secrets when it starts, the same way on both backends.

- Options: the effective values (the user's, else the manifest's defaults; never a password) in
  `<root>/run/options/<app>/options.json`, named by `HH_OPTIONS_FILE`. Under systemd the state
  root is walled off, so the unit binds that one file back read-only (units.py).
- Secrets (`password` options): one 0600 file per secret in `<root>/run/credentials/<app>/`
  (a 0700 folder). Under systemd the unit loads each as a credential (`LoadCredential=`), which
  the app finds in `$CREDENTIALS_DIRECTORY`, a folder only its own processes see; on the process
  backend `CREDENTIALS_DIRECTORY` names that folder itself. Never in the environment, the unit
  file or `systemctl show` (that prints the path, not the value).

Files are written only when their content changed (no writes at an unchanged restart), on a
worker thread.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import options as opts
from ..config import Config
from ..manifest import Manifest
from ..storage import atomic_write_bytes, json_bytes
from .base import AppSpec

log = logging.getLogger(__name__)


def options_dir(config: Config, app_id: str) -> Path:
    return config.run_dir / "options" / app_id


def credentials_dir(config: Config, app_id: str) -> Path:
    return config.run_dir / "credentials" / app_id


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    try:
        if path.read_bytes() == data and path.stat().st_mode & 0o777 == mode:
            return
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data, mode=mode)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def prepare_files(config: Config, manifest: Manifest) -> tuple[Path | None, tuple[str, ...]]:
    """Write what the app gets (blocking): (its options file or None, the names of its set secrets)."""
    app_id = manifest.id
    schema = manifest.options
    secret_names = {o.name for o in schema if o.secret}
    creds = credentials_dir(config, app_id)
    damaged: list[tuple[Path, Path | None]] = []
    stored = opts.read_values(opts.secrets_path(config.root, app_id), damaged) if secret_names else {}
    have = {k: v for k, v in stored.items() if k in secret_names and isinstance(v, str)}
    if have or creds.exists():
        _private_dir(creds)
        for name, value in have.items():
            _write_if_changed(creds / name, value.encode(), 0o600)
        for stale in creds.iterdir():  # a secret forgotten, or an option the manifest dropped
            if stale.name not in have:
                stale.unlink(missing_ok=True)
    if not schema:
        return None, ()
    values = opts.effective(schema, opts.read_values(opts.values_path(config.root, app_id), damaged))
    for path, aside in damaged:  # the app's actor emits state_file_damaged when it finds one itself
        log.warning("%s: %s was damaged, set aside as %s: its options are back to their defaults", app_id, path, aside)
    folder = options_dir(config, app_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "options.json"
    _write_if_changed(path, json_bytes(values), 0o644)
    return path, tuple(sorted(have))


async def with_options(spec: AppSpec, manifest: Manifest, config: Config) -> AppSpec:
    """`spec` with the app's options file and credentials (written first); unchanged without options."""
    if not manifest.options:
        return spec
    path, names = await trio.to_thread.run_sync(prepare_files, config, manifest)
    env: dict[str, Any] = dict(spec.env)
    if path is not None:
        env["HH_OPTIONS_FILE"] = str(path)
    return attrs.evolve(spec, env=tuple(sorted(env.items())), options_file=path,
                        credentials_dir=credentials_dir(config, manifest.id) if names else None,
                        credentials=names)


def credentials_wall(scope: str, environ: dict[str, str]) -> list[str]:
    """Unit lines hiding every unit's credentials from the app, its own excepted (systemd binds
    that one back itself). A system manager keeps them in /run/credentials and hides the others
    on its own; a user manager keeps them in $XDG_RUNTIME_DIR/credentials, which ProtectHome=
    hides only when that is under /run/user. Blocking (makes the folder, so the mount has a point)."""
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if scope != "user" or not runtime.startswith("/") or not re.fullmatch(r"[A-Za-z0-9/._@+-]+", runtime):
        return []
    folder = Path(runtime) / "credentials"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return []
    return [f"TemporaryFileSystem={folder}:ro"]
