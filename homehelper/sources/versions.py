"""Where an added app's versions live, which one is current, and what was recorded of its source.

    apps/<id>                      a symlink to .versions/<id>/<version>: what the scanner sees
    apps/.versions/<id>/<version>  each installed version's files (the scanner skips dot folders)
    registry/sources.json          per app: kind, url, subdir, ref, current and previous version, ...

The versions stay inside apps/ because the scanner refuses symlinks that lead out of it. Switching
is one `rename` of a new symlink over the old, so a scan sees either version, never neither.
Blocking: run on a worker thread; the updater actor is the one writer of sources.json.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import Conflict
from ..manifest import MANIFEST_NAME
from ..storage import atomic_write_json, read_json
from .fetch import Staged
from .git import redact

KEEP_VERSIONS = 3  # the current one, the previous one (to roll back to) and one more to choose
KEEP_DATA_COPIES = 2
SOURCES = "sources.json"


def versions_root(config: Config, app_id: str) -> Path:
    return config.apps_dir / ".versions" / app_id


def sources_file(config: Config) -> Path:
    return config.registry_dir / SOURCES


def read_sources(config: Config) -> dict[str, dict[str, Any]]:
    data = read_json(sources_file(config), {})
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def write_sources(config: Config, sources: dict[str, dict[str, Any]]) -> None:
    # 0600: a URL may carry a token the user gave for a private repository
    atomic_write_json(sources_file(config), sources, mode=0o600)


def shown(rec: dict[str, Any]) -> dict[str, Any]:
    """A record fit for the API and the CLI: the URL redacted."""
    out = {k: v for k, v in rec.items() if k != "url"}
    out["url"] = redact(str(rec.get("url", "")))
    return out


def current_version(config: Config, app_id: str) -> str | None:
    link = config.apps_dir / app_id
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target.name if target.parent == Path(".versions") / app_id else None


def list_versions(config: Config, app_id: str) -> list[dict[str, Any]]:
    folder = versions_root(config, app_id)
    current = current_version(config, app_id)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except FileNotFoundError:
        return []
    return [{"version": p.name, "current": p.name == current, "installed_at": p.stat().st_mtime}
            for p in entries if p.is_dir() and not p.name.startswith(".")]


def check_new_app(config: Config, app_id: str) -> None:
    """Conflict when `app_id` is taken by a folder in apps/ (another app, or a folder of that name)."""
    if (config.apps_dir / app_id).exists() or (config.apps_dir / app_id).is_symlink():
        raise Conflict(f"an app {app_id!r} is already in {config.apps_dir}/: remove it first, or "
                       f"update it with `homehelper update {app_id}`", app=app_id)


def install_version(config: Config, staged: Staged) -> Path:
    """Move the staged files to .versions/<id>/<version> (kept if already there); its path."""
    dest = versions_root(config, staged.manifest.id) / staged.version
    if dest.is_dir():
        shutil.rmtree(staged.folder, ignore_errors=True)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.folder, dest)  # same filesystem (staging is under apps/.versions too)
    os.utime(dest)
    return dest


def switch(config: Config, app_id: str, version: str) -> None:
    """Point apps/<id> at `version`, atomically."""
    if not (versions_root(config, app_id) / version).is_dir():
        raise Conflict(f"{app_id} has no version {version!r} installed", app=app_id)
    link = config.apps_dir / app_id
    if link.exists() and not link.is_symlink():
        raise Conflict(f"{link} is a folder, not a version HomeHelper installed: refused to replace it")
    tmp = config.apps_dir / f".{app_id}.switch-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(Path(".versions") / app_id / version, tmp)
    os.replace(tmp, link)


def manifests_differ(config: Config, app_id: str, a: str, b: str) -> bool:
    """Whether two installed versions' manifests differ (the scanner notices only those)."""
    def read(version: str) -> bytes:
        try:
            return (versions_root(config, app_id) / version / MANIFEST_NAME).read_bytes()
        except OSError:
            return b""
    return read(a) != read(b)


def prune(config: Config, app_id: str, keep: tuple[str, ...]) -> None:
    """Remove the oldest versions beyond KEEP_VERSIONS, never one in `keep`."""
    versions = list_versions(config, app_id)
    for v in versions[KEEP_VERSIONS:]:
        if v["version"] not in keep and not v["current"]:
            shutil.rmtree(versions_root(config, app_id) / v["version"], ignore_errors=True)


def copy_data(config: Config, app_id: str, version: str) -> Path | None:
    """A copy of the app's data folder before an update, under <root>/backups/updates/<id>/."""
    data = config.data_dir(app_id)
    if not data.is_dir():
        return None
    base = config.root / "backups" / "updates" / app_id
    dest = base / f"{time.strftime('%Y%m%dT%H%M%S')}-{version[:12]}"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copytree(data, dest, symlinks=True)
    copies = sorted(base.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in copies[KEEP_DATA_COPIES:]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def restore_data(config: Config, app_id: str, copy: Path) -> None:
    """Put the copy back as the app's data (the app is stopped); what the failed version wrote goes."""
    data = config.data_dir(app_id)
    if data.exists():
        aside = data.with_name(f"{app_id}.failed-update-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(data, aside)
        shutil.rmtree(aside, ignore_errors=True)
    shutil.copytree(copy, data, symlinks=True)
