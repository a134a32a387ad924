"""Messages of backups: taking one (now or on the schedule), listing them, restoring one app's data."""

from __future__ import annotations

import attrs

from ._base import Command, Event


@attrs.frozen
class RunBackup(Command):
    """Ask the backup actor: write an archive now; replies its summary (path, size, apps...)."""

    reason: str = "manual"  # manual | dashboard | cli | scheduled
    passphrase: str | None = attrs.field(default=None, repr=False)  # else backup.passphrase_file's, if any


@attrs.frozen
class ListBackups(Command):
    """Ask the backup actor: the archives in the backup folder, newest first."""


@attrs.frozen
class RestoreAppData(Command):
    """Ask the backup actor: replace `app_id`'s data with its copy in `archive` (the app is stopped
    meanwhile, and started again if it was running)."""

    app_id: str
    archive: str  # a name in the backup folder, or an absolute path


@attrs.frozen
class BackupStarted(Event):
    path: str
    reason: str = "manual"


@attrs.frozen
class BackupCompleted(Event):
    path: str
    size: int
    apps: tuple[str, ...] = ()
    seconds: float = 0.0
    reason: str = "manual"
    removed: tuple[str, ...] = ()  # older archives rotation removed


@attrs.frozen
class BackupFailed(Event):
    """Notifies (notify_rules.KINDS: backup_failed)."""

    error: str
    path: str = ""
    reason: str = "manual"


@attrs.frozen
class AppDataRestored(Event):
    app_id: str
    archive: str
    files: int = 0
