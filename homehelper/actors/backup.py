"""The backup actor: writes archives (asked, or on `backup.schedule`), rotates them, restores one
app's data. One backup or restore at a time.

The archive is written on a worker thread (homehelper.backup.archive): gzip, SHA-256 and SQLite
snapshots never run on the trio thread. Around each app's data the thread calls back into trio
(`trio.from_thread.run`) for what needs the actors: stopping an app that declares
`backup.stop`, running its `backup.pre` / `backup.post` commands, starting it again. A failure
is `BackupFailed` (which notifies, notify_rules.KINDS) and an error to whoever asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..backends.installer import Installer
from ..backup.archive import backup_folder, remove_leftovers, unique_path, write_archive
from ..backup.crypto import read_passphrase
from ..backup.restore import restore_app_data
from ..backup.schedule import ARCHIVE_RE, age_key, parse_schedule, rotate
from ..config import Config
from ..errors import ArchiveRefused, BackupError, HomeHelperError
from ..manifest import Manifest
from ..messages import (
    AppDataRestored,
    BackupCompleted,
    BackupFailed,
    BackupStarted,
    GetApp,
    ListBackups,
    RestoreAppData,
    RunBackup,
    StartApp,
    StopApp,
)
from . import Actor, Supervisor
from .scanner import scan_folder

log = logging.getLogger(__name__)

STOP_TIMEOUT = 120.0
RUNNING = ("running", "starting")


class BackupActor(Actor):
    name = "backup"

    def __init__(self, config: Config, emit: Callable[[object], None], apps: Supervisor | None = None,
                 installer: Installer | None = None, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.emit = emit
        self.apps = apps
        self.installer = installer
        self.wall = wall  # the Unix time, for calendar schedules (tests pass one that follows a MockClock)
        self.schedule = parse_schedule(config.backup.schedule)
        self.lock = trio.Lock()
        self.runs = 0

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.schedule is not None:  # no schedule: no timer at all
            nursery.start_soon(self._scheduled)

    async def _scheduled(self) -> None:
        assert self.schedule is not None
        while True:
            await trio.sleep(self.schedule.delay(self.wall()))
            try:
                await self.backup("scheduled")
            except HomeHelperError:
                pass  # BackupFailed said so (and notified); the next run is due on time regardless

    async def handle(self, msg: Any) -> Any:
        match msg:
            case RunBackup(reason=reason, passphrase=passphrase):
                return await self.backup(reason, passphrase)
            case ListBackups():
                return await trio.to_thread.run_sync(list_archives, backup_folder(self.config))
            case RestoreAppData(app_id=app_id, archive=archive):
                return await self.restore_app(app_id, archive)
        return None

    # --- backup ------------------------------------------------------------------------------
    async def backup(self, reason: str, passphrase: str | None = None) -> dict[str, Any]:
        async with self.lock:
            folder = backup_folder(self.config)
            path = folder  # until the archive has its name
            try:
                path = await trio.to_thread.run_sync(self._prepare, folder, self.wall())
                self.emit(BackupStarted(str(path), reason))
                if passphrase is None and self.config.backup.passphrase_file:
                    passphrase = await trio.to_thread.run_sync(read_passphrase, self.config.backup.passphrase_file)
                manifests = await trio.to_thread.run_sync(self._manifests)
                hook = _Hook(self, manifests)
                cancel = threading.Event()
                try:
                    # Abandoned on cancel (the server stops within its grace): the thread sees `cancel`
                    # at its next file and removes its partial archive.
                    summary: dict[str, Any] = await trio.to_thread.run_sync(lambda: write_archive(
                        self.config, path, manifests, passphrase=passphrase, hook=hook.call, cancel=cancel),
                        abandon_on_cancel=True)
                except trio.Cancelled:
                    cancel.set()
                    raise
                removed = await trio.to_thread.run_sync(rotate, folder, self.config.backup.keep, self.config.node_id)
            except Exception as exc:  # anything at all: said, notified, and the actor carries on
                error = exc.message if isinstance(exc, HomeHelperError) else f"{type(exc).__name__}: {exc}"
                log.warning("backup failed: %s", error)
                self.emit(BackupFailed(error, str(path), reason))
                raise BackupError(f"backup failed: {error}") from None
            summary["removed"] = [p.name for p in removed]
            summary["warnings"] = hook.warnings
            self.runs += 1
            self.emit(BackupCompleted(str(path), summary["size"], tuple(summary["apps"]), summary["seconds"],
                                      reason, tuple(summary["removed"])))
            return summary

    def _prepare(self, folder: Path, now: float) -> Path:
        if not self.config.backup.dir:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # our own folder under the state root
        elif not folder.is_dir():  # a USB disk or network mount: never made on the SD card below it
            raise BackupError(f"the backup folder {folder} does not exist (is the disk mounted?)")
        remove_leftovers(folder)
        return unique_path(folder, self.config.node_id, now)

    def _manifests(self) -> dict[str, Manifest]:
        found, _invalid = scan_folder(self.config.apps_dir)
        return {m.id: m for m in found}

    async def _app_state(self, app_id: str) -> str | None:
        if self.apps is None or app_id not in self.apps:
            return None
        snap = await self.apps.ref(app_id).ask(GetApp(app_id), timeout=10)
        return snap.get("state") if isinstance(snap, dict) else None

    async def stop_app(self, app_id: str) -> bool:
        """Stop the app if it runs; whether it did (so it is started again afterwards)."""
        if await self._app_state(app_id) not in RUNNING:
            return False
        assert self.apps is not None
        await self.apps.ref(app_id).ask(StopApp(app_id), timeout=STOP_TIMEOUT)
        return True

    async def start_app(self, app_id: str) -> None:
        assert self.apps is not None
        await self.apps.ref(app_id).ask(StartApp(app_id), timeout=STOP_TIMEOUT * 3)

    async def run_commands(self, manifest: Manifest, which: str) -> None:
        installer = self.installer or Installer(self.config)
        commands = manifest.backup.pre if which == "pre" else manifest.backup.post
        for i, command in enumerate(commands, 1):
            await installer.run_command(manifest, command, f"backup {which} command {i}")

    # --- restore of one app's data ------------------------------------------------------------
    async def restore_app(self, app_id: str, archive: str) -> dict[str, Any]:
        async with self.lock:
            path = self.archive_path(archive)
            was_running = await self.stop_app(app_id)
            try:
                result: dict[str, Any] = await trio.to_thread.run_sync(restore_app_data, path, self.config.root,
                                                                       app_id)
            finally:
                if was_running:
                    await self.start_app(app_id)
            result["restarted"] = was_running
            self.emit(AppDataRestored(app_id, path.name, result["files"]))
            return result

    def archive_path(self, archive: str) -> Path:
        """A name in the backup folder, or an absolute path (the CLI's, on this machine)."""
        if archive.startswith("/"):
            return Path(archive)
        if not ARCHIVE_RE.match(archive):
            raise ArchiveRefused(f"{archive[:80]!r} is not the name of a backup in the backup folder")
        return backup_folder(self.config) / archive


class _Hook:
    """Called on the archive's worker thread around each app's data; does the trio side's part."""

    def __init__(self, actor: BackupActor, manifests: dict[str, Manifest]) -> None:
        self.actor, self.manifests = actor, manifests
        self.stopped: set[str] = set()
        self.warnings: list[str] = []

    def call(self, app_id: str, when: str) -> None:
        manifest = self.manifests.get(app_id)
        if manifest is None:
            return
        if when == "before":
            trio.from_thread.run(self.before, manifest)
        else:
            trio.from_thread.run(self.after, manifest)

    async def before(self, m: Manifest) -> None:
        try:
            if m.backup.stop and await self.actor.stop_app(m.id):
                self.stopped.add(m.id)
            await self.actor.run_commands(m, "pre")
        except HomeHelperError as exc:
            raise BackupError(f"{m.id}: {exc.message}") from None

    async def after(self, m: Manifest) -> None:
        # Never raises: the data is copied; a failed post command or restart is a warning of the run.
        try:
            await self.actor.run_commands(m, "post")
        except HomeHelperError as exc:
            self.warnings.append(f"{m.id}: {exc.message}")
        if m.id in self.stopped:
            self.stopped.discard(m.id)
            try:
                await self.actor.start_app(m.id)
            except HomeHelperError as exc:
                self.warnings.append(f"{m.id}: not started again: {exc.message}")


def list_archives(folder: Path) -> list[dict[str, Any]]:
    """The archives HomeHelper wrote in `folder`, newest first (blocking)."""
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        if ARCHIVE_RE.match(p.name) and p.is_file() and not p.is_symlink():
            st = p.stat()
            out.append({"name": p.name, "size": st.st_size, "mtime": st.st_mtime})
    return sorted(out, key=lambda a: age_key(Path(a["name"])), reverse=True)
