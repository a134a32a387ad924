"""Routes of the metrics history and the Redis figures: GET /api/history, GET /api/redis.

The history actor answers both; the dashboard (static/history.js) asks when a person looks:
on a refresh, on a click on a chart. Nothing here polls.
"""

from __future__ import annotations

from typing import Any

from quart import request
from quart_trio import QuartTrio

from ..errors import BadRequest, Conflict
from ..messages import GetHistoryState, GetMetricHistory, GetRedisStats
from .deps import WebDeps

RANGES = ["1h", "6h", "24h", "7d", "30d"]


def register(app: QuartTrio, deps: WebDeps) -> None:
    @app.get("/api/history")
    async def history() -> Any:
        """One series over a time range; without `series`, what the history holds and where."""
        series = request.args.get("series")
        if deps.history is None:
            if series is None:  # the page asks this first: a plain answer, not an error in its console
                return {"available": False}
            raise Conflict("no metrics history runs on this server")
        if series is None:
            return await deps.history.ask(GetHistoryState(), timeout=10)
        raw = request.args.get("points", "360")
        if not raw.isdigit() or len(raw) > 5:
            raise BadRequest(f"query parameter 'points' must be an integer, got {raw[:20]!r}", param="points")
        return await deps.history.ask(GetMetricHistory(series, request.args.get("range", "1h"), int(raw)), timeout=20)

    @app.get("/api/redis")
    async def redis() -> Any:
        """Redis's figures and the bridge's, read now (a page is looking), with their alerts."""
        if deps.history is not None:  # it keeps the alert levels
            return await deps.history.ask(GetRedisStats(), timeout=20)
        if deps.bridge is not None:
            return await deps.bridge.ask(GetRedisStats(), timeout=20)
        return {"enabled": False}


_ERR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "bad input (named in the body)", 401: "no session or token", 409: "no history on this server",
             503: "busy or not running"}
    return {str(c): {"description": words[c], "content": {"application/json": {"schema": _ERR}}} for c in codes}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


PATHS: dict[str, Any] = {
    "/api/history": {"get": {
        "summary": "a metrics series over a time range (machine, app:<id>, redis); without series, the history's state",
        "parameters": [
            {"name": "series", "in": "query", "schema": {"type": "string"},
             "description": "machine, redis or app:<id>"},
            {"name": "range", "in": "query", "schema": {"type": "string", "enum": RANGES}},
            {"name": "points", "in": "query", "schema": {"type": "integer", "minimum": 2, "maximum": 2000}}],
        "responses": {**_ok({"type": "object"}), **_errors(400, 401, 409, 503)}}},
    "/api/redis": {"get": {
        "summary": "Redis INFO and LATENCY figures and the bridge's own (publish latency, buffered, dropped), now",
        "responses": {**_ok({"type": "object"}), **_errors(401, 409, 503)}}},
}
