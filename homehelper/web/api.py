"""The REST API under /api (described by openapi.py, served at /openapi.json)."""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from ..errors import BadRequest, Conflict, PayloadTooLarge
from ..messages import SendTestNotification
from . import logs, ops
from .deps import MAX_BODY, WebDeps
from .openapi import spec

STARTED = time.time()


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {raw[:40]!r}", param=name) from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name!r} must be from {lo} to {hi}, got {value}", param=name)
    return value


async def json_body(required: bool = True) -> Any:
    """The request's JSON, or a clear 400/413 (nothing is changed on bad input); None for no body if not required."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"request body over {MAX_BODY} bytes", limit=MAX_BODY)
    raw = await request.get_data()
    if not raw:
        if not required:
            return None
        raise BadRequest("this request needs a JSON body")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    except (ValueError, RecursionError):  # an integer of 5000 digits, 30000 nested lists: within 64 KiB
        raise BadRequest("JSON too deeply nested or with a number too long") from None


def register_api(app: QuartTrio, deps: WebDeps) -> None:
    auth = deps.auth
    assert auth is not None

    @app.get("/openapi.json")
    async def openapi() -> Any:
        return jsonify(spec())

    @app.get("/api/health")
    async def health() -> Any:
        return {"status": "ok", "node": deps.config.node_id, "uptime": round(time.time() - STARTED, 1)}

    @app.get("/api/system")
    async def system() -> Any:
        return await ops.system(deps, history=request.args.get("history", "1") != "0")

    @app.get("/api/apps")
    async def apps() -> Any:
        return jsonify(await ops.list_apps(deps))

    @app.get("/api/apps/<app_id>")
    async def one_app(app_id: str) -> Any:
        return await ops.get_app(deps, app_id)

    @app.post("/api/apps/<app_id>/approve")
    async def approve(app_id: str) -> Any:
        """Approve what the app asks for; the body may carry {"grants": [...]}, the list the user saw."""
        return await ops.approve(deps, app_id, await json_body(required=False))

    @app.post("/api/apps/<app_id>/<action>")
    async def action(app_id: str, action: str) -> Any:
        settled = await ops.act(deps, app_id, action)  # the websocket's action: the same call, the same reply
        return ops.ui_reply(app_id, settled) if action in ("open", "keepalive") else settled

    @app.get("/api/apps/<app_id>/logs")
    async def app_logs(app_id: str) -> Any:
        await ops.get_app(deps, app_id)  # 404 for an unknown app
        lines = int_arg("lines", 200, 1, logs.MAX_LINES)
        query = logs.query_from(*(request.args.get(k) for k in ("grep", "since", "until")))
        return {"app": app_id, "lines": await logs.tail(deps.config, app_id, lines, query, deps.logs)}

    @app.get("/api/apps/<app_id>/logs/download")
    async def app_logs_download(app_id: str) -> Any:
        await ops.get_app(deps, app_id)
        return Response(logs.download(deps.config, app_id, deps.logs), mimetype="text/plain", headers={
            "Content-Disposition": f'attachment; filename="{app_id}.log"'})

    @app.post("/api/rescan")
    async def rescan() -> Any:
        return {"summary": await ops.rescan(deps)}

    @app.get("/api/events")
    async def events() -> Any:
        limit = int_arg("limit", 100, 1, ops.MAX_EVENTS)
        source = request.args.get("source", "local")
        if source == "redis":  # the bounded Redis stream: history that outlives this process
            return jsonify(await ops.redis_events(deps, limit))
        if source != "local":
            raise BadRequest(f"query parameter 'source' must be local or redis, got {source[:40]!r}", param="source")
        return jsonify(await ops.events(deps, limit))

    @app.get("/api/config")
    async def get_config() -> Any:
        return deps.config.to_json()

    @app.patch("/api/config")
    async def patch_config() -> Any:
        return await ops.set_config(deps, await json_body())

    @app.post("/api/notify/test")
    async def notify_test() -> Any:
        """Send a test notification to every notify.urls entry; says what each did."""
        if deps.notifier is None:
            raise Conflict("notifications are not running")
        return await deps.notifier.ask(SendTestNotification(), timeout=120)

    @app.get("/api/tokens")
    async def tokens() -> Any:
        return jsonify(auth.tokens())

    @app.post("/api/tokens")
    async def new_token() -> Any:
        body = await json_body()
        if not isinstance(body, dict):
            raise BadRequest("send {\"name\": \"...\"}")
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest("'name' must be a string")
        return await auth.create_token_saved(name), 201

    @app.delete("/api/tokens/<token_id>")
    async def delete_token(token_id: str) -> Any:
        await auth.delete_token_saved(token_id)
        return {"deleted": token_id}
