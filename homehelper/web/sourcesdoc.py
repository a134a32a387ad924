"""The /openapi.json entries of web/sources.py (apart: openapi.py is imported by api.py, which sources.py uses)."""

from __future__ import annotations

from typing import Any


def _body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": bool(required), "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": props}}}}


def openapi_paths(op: Any, ok: Any, err: Any, app_id: Any) -> dict[str, Any]:
    """This module's routes for /openapi.json (op, ok, err: openapi.py's helpers)."""
    obj = {"type": "object"}
    s = {"type": "string"}
    return {
        "/api/apps/add": {"post": op(
            "preview an app from a source (git URL or path, a folder, a .tar.gz/.zip archive): its manifest and "
            "permissions, and a token; then {\"token\"} installs it", {**ok(obj), **err(400, 403, 404, 409, 413, 502)},
            requestBody=_body({"source": s, "subdir": s, "ref": s, "token": s}, []))},
        "/api/apps/{app_id}/source": {"get": op("where the app came from (URL redacted) and its installed versions",
                                                {**ok(obj), **err(404)}, parameters=[app_id])},
        "/api/apps/{app_id}/check-update": {"post": op("is there a new commit on the app's tracked ref",
                                                       {**ok(obj), **err(403, 404, 409, 502)}, parameters=[app_id])},
        "/api/apps/{app_id}/update": {"post": op(
            "update the app (or {\"to\": version} switch to one), rolling back when it fails its health check",
            {**ok(obj), **err(400, 403, 404, 409, 413, 502)}, parameters=[app_id],
            requestBody=_body({"to": s}, []))},
        "/api/apps/{app_id}/auto-update": {"post": op(
            "turn the daily update check on or off", {**ok(obj), **err(400, 403, 404, 409, 413)},
            parameters=[app_id], requestBody=_body({"enabled": {"type": "boolean"}}, ["enabled"]))},
    }
