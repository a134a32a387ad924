"""Adding an app from a source and updating it, on the dashboard and API (the updater actor does the work).

POST /api/apps/add                 {"source", "subdir"?, "ref"?}: fetch and check, reply a preview (the
                                   manifest, its permissions) and a token; nothing is installed.
                                   {"token"}: install the previewed app.
GET  /api/apps/<id>/source         the recorded source (URL redacted) and the installed versions
POST /api/apps/<id>/check-update   is there a new commit on the tracked ref?
POST /api/apps/<id>/update         {"to"?}: update (or switch to an installed version), rolling back on failure
POST /api/apps/<id>/auto-update    {"enabled": bool}: check daily and update
"""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from ..errors import BadRequest, Conflict
from ..messages import CheckUpdate, ConfirmAdd, GetSource, PreviewSource, SetAutoUpdate, UpdateApp
from .api import json_body
from .deps import WebDeps
from .ops import get_app

FETCH_TIMEOUT = 900.0  # a clone over Wi-Fi, then checking the files
UPDATE_TIMEOUT = 3 * 3600.0  # a clone, a venv rebuilt on a Pi, the health check, perhaps a rollback
MAX_FIELD = 2000


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"send {{\"{key}\": \"...\"}}")
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise BadRequest(f"{key}: a string of at most {MAX_FIELD} characters")
    return value


def register_sources(app: QuartTrio, deps: WebDeps) -> None:
    def actor() -> Any:
        if deps.updater is None:
            raise Conflict("adding apps from a source is not available on this server")
        return deps.updater

    @app.post("/api/apps/add")
    async def add_app() -> Any:
        body = await json_body()
        if not isinstance(body, dict):
            raise BadRequest("send a JSON object")
        token = _text(body, "token")
        if token is not None:
            return {"added": await actor().ask(ConfirmAdd(token), timeout=FETCH_TIMEOUT)}
        source = _text(body, "source", required=True)
        assert source is not None
        preview = await actor().ask(PreviewSource(source, _text(body, "subdir") or "", _text(body, "ref")),
                                    timeout=FETCH_TIMEOUT)
        return {"preview": preview}

    @app.get("/api/apps/<app_id>/source")
    async def source(app_id: str) -> Any:
        await get_app(deps, app_id)
        return await actor().ask(GetSource(app_id), timeout=30)

    @app.post("/api/apps/<app_id>/check-update")
    async def check_update(app_id: str) -> Any:
        await get_app(deps, app_id)
        return await actor().ask(CheckUpdate(app_id), timeout=FETCH_TIMEOUT)

    @app.post("/api/apps/<app_id>/update")
    async def update(app_id: str) -> Any:
        body = await json_body(required=False)
        to = _text(body, "to") if isinstance(body, dict) else None
        await get_app(deps, app_id)
        return await actor().ask(UpdateApp(app_id, to), timeout=UPDATE_TIMEOUT)

    @app.post("/api/apps/<app_id>/auto-update")
    async def auto_update(app_id: str) -> Any:
        body = await json_body()
        enabled = body.get("enabled") if isinstance(body, dict) else None
        if not isinstance(enabled, bool):
            raise BadRequest("send {\"enabled\": true} or {\"enabled\": false}")
        await get_app(deps, app_id)
        return await actor().ask(SetAutoUpdate(app_id, enabled), timeout=60)
