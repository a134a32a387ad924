"""Backups on the dashboard and API: take one now, list them, download one, restore one app's data.

The work is the backup actor's (homehelper.actors.backup); these routes only ask it. Routes:
POST /api/backups, GET /api/backups, GET /api/backups/<name>, POST /api/apps/<app_id>/restore.
"""

from __future__ import annotations

import os
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from ..actors.backup import list_archives
from ..backup.archive import backup_folder
from ..backup.schedule import ARCHIVE_RE
from ..errors import BadRequest, Conflict, NotFound
from ..messages import RestoreAppData, RunBackup
from .api import json_body
from .deps import WebDeps
from .ops import get_app

BACKUP_TIMEOUT = 3600.0  # a large data folder on a slow USB stick
MAX_PASSPHRASE = 1024


def register_backup(app: QuartTrio, deps: WebDeps) -> None:
    def actor() -> Any:
        if deps.backup is None:  # a state of this server (a bare web app), not a failure of it
            raise Conflict("backups are not available on this server")
        return deps.backup

    @app.post("/api/backups")
    async def take_backup() -> Any:
        """Write an archive now; the body may carry {"passphrase": "..."} to seal the secrets in it."""
        body = await json_body(required=False)
        passphrase = body.get("passphrase") if isinstance(body, dict) else None
        if passphrase is not None and (not isinstance(passphrase, str) or not 8 <= len(passphrase) <= MAX_PASSPHRASE):
            raise BadRequest(f"passphrase must be a string of 8 to {MAX_PASSPHRASE} characters")
        reason = "cli" if request.headers.get("Authorization") else "dashboard"
        ref = actor()
        return {"backup": await ref.ask(RunBackup(reason, passphrase), timeout=BACKUP_TIMEOUT)}

    @app.get("/api/backups")
    async def backups() -> Any:
        folder = backup_folder(deps.config)
        found = await trio.to_thread.run_sync(list_archives, folder)
        return {"folder": str(folder), "schedule": deps.config.backup.schedule or None,
                "keep": deps.config.backup.keep, "backups": found}

    @app.get("/api/backups/<name>")
    async def download(name: str) -> Any:
        if not ARCHIVE_RE.match(name):
            raise NotFound(f"no backup named {name[:80]!r}")
        path = backup_folder(deps.config) / name
        try:
            f = await trio.open_file(path, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no backup named {name!r}") from None
        size = (await trio.to_thread.run_sync(os.fstat, f.fileno())).st_size

        async def chunks() -> Any:
            async with f:
                while chunk := await f.read(256 * 1024):
                    yield chunk

        return Response(chunks(), mimetype="application/gzip", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)})

    @app.post("/api/apps/<app_id>/restore")
    async def restore(app_id: str) -> Any:
        """Replace the app's data with its copy in a backup: {"archive": "<name in the backup folder>"}."""
        body = await json_body()
        archive = body.get("archive") if isinstance(body, dict) else None
        if not isinstance(archive, str) or not archive or len(archive) > 4096:
            raise BadRequest("send {\"archive\": \"<the backup's name>\"}")
        ref = actor()
        await get_app(deps, app_id)  # 404 for an app this server does not know
        result = await ref.ask(RestoreAppData(app_id, archive), timeout=BACKUP_TIMEOUT)
        return {"restored": result}
