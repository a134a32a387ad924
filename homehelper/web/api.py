"""The REST API under /api (described by openapi.py, served at /openapi.json)."""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from ..errors import BadRequest, Conflict, PayloadTooLarge
from ..messages import GetDeadlines, SendTestNotification
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
        body = await json_body(required=False)
        result = await ops.approve(deps, app_id, body)
        return {"app": await ops.after_action(deps, app_id, result), "result": result if _jsonable(result) else None}

    @app.post("/api/apps/<app_id>/<action>")
    async def action(app_id: str, action: str) -> Any:
        if action not in ops.ACTIONS:
            raise BadRequest(f"unknown action {action!r}; one of {', '.join(ops.ACTIONS)}", action=action)
        result = await ops.act(deps, app_id, action)
        if action in ("open", "keepalive"):
            return await _ui_reply(app_id, result)
        return {"app": await ops.after_action(deps, app_id, result), "result": result if _jsonable(result) else None}

    async def _ttl_left(app_id: str) -> float | None:
        """Seconds before the app's nearest deadline (idle TTL, max lifetime), from the TTL clock."""
        if deps.ttl is None:
            return None
        left = await deps.ttl.ask(GetDeadlines(), timeout=5)
        mine = [v for k, v in left.items() if app_id in str(k).replace("/", ":").split(":")]
        return round(min(mine), 1) if mine else None

    async def _ui_reply(app_id: str, result: Any) -> dict[str, Any]:
        """What the UI modal needs: where to frame the app and how long it has left if idle."""
        reply: dict[str, Any] = dict(result) if isinstance(result, dict) and _jsonable(result) else {}
        reply.setdefault("url", f"/apps/{app_id}/ui/")
        if reply.get("ttl_left") is None:
            reply["ttl_left"] = await _ttl_left(app_id)
        reply["app"] = app_id
        return reply

    @app.get("/api/apps/<app_id>/logs")
    async def app_logs(app_id: str) -> Any:
        await ops.get_app(deps, app_id)  # 404 for an unknown app
        lines = int_arg("lines", 200, 1, logs.MAX_LINES)
        return {"app": app_id, "lines": await logs.tail(deps.config, app_id, lines)}

    @app.get("/api/apps/<app_id>/logs/download")
    async def app_logs_download(app_id: str) -> Any:
        await ops.get_app(deps, app_id)
        return Response(logs.download(deps.config, app_id), mimetype="text/plain", headers={
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
        return auth.create_token(name), 201

    @app.delete("/api/tokens/<token_id>")
    async def delete_token(token_id: str) -> Any:
        auth.delete_token(token_id)
        return {"deleted": token_id}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
