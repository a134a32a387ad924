"""The OpenAPI 3.0 document for /api, written by hand (tests/web check it against the live server)."""

from __future__ import annotations

from typing import Any

from .fleet import PATHS as FLEET_PATHS
from .history import PATHS as HISTORY_PATHS
from .sourcesdoc import openapi_paths as source_paths

APP_ID = {"name": "app_id", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "the app's id (its manifest `id`)"}
ERROR = {"$ref": "#/components/schemas/Error"}
APP = {"$ref": "#/components/schemas/App"}


def _err(*codes: int) -> dict[str, Any]:
    words = {400: "bad input (named in the body)", 401: "no session or token", 403: "CSRF or Origin check failed",
             404: "unknown app or resource", 409: "the app's state does not allow it", 413: "body too large",
             429: "rate limited", 502: "the backend failed", 503: "busy or not running"}
    return {str(c): {"description": words[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _ok(schema: dict[str, Any], description: str = "OK", code: str = "200") -> dict[str, Any]:
    return {code: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_err(401, 503)}, **extra}


OBJ: dict[str, Any] = {"type": "object"}
OPTIONS = {"type": "object", "required": ["app", "options", "values", "secrets"], "properties": {
    "app": {"type": "string"}, "options": {"type": "array", "items": OBJ}, "values": OBJ,
    "secrets": {"type": "object", "additionalProperties": {"type": "string", "enum": ["set", "not set"]}},
    "restarted": {"type": "boolean"}}}
ACTION = {"type": "object", "required": ["app"], "properties": {"app": {"$ref": "#/components/schemas/App"}}}
# open and keepalive: the app's state and the seconds before its idle and max-lifetime stops (null: none)
UI_LEFT: dict[str, Any] = {"state": {"type": "string"}, "ttl_left": {"type": "number", "nullable": True},
                           "max_lifetime_left": {"type": "number", "nullable": True}}


def _action(verb: str, codes: tuple[int, ...] = (403, 404, 409, 502)) -> dict[str, Any]:
    return {"post": _op(f"{verb} the app (waits for the app's answer)", {**_ok(ACTION), **_err(*codes)},
                        parameters=[APP_ID])}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "HomeHelper", "version": "1",
                 "description": "Run the apps of a HomeHelper node. Log in at /login (session cookie; send the page's "
                                "CSRF token as X-CSRF-Token on POST/PATCH/DELETE) or send `Authorization: Bearer "
                                "<token>` (tokens: POST /api/tokens)."},
        "security": [{"session": []}, {"bearer": []}],
        "paths": {
            "/api/health": {"get": {"summary": "liveness (no login needed)", "security": [],
                                    "responses": _ok({"type": "object", "required": ["status"],
                                                      "properties": {"status": {"type": "string", "enum": ["ok"]}}})}},
            "/api/system": {"get": _op("machine metrics now and recent history", _ok({
                "type": "object", "required": ["available", "history"],
                "properties": {"available": {"type": "boolean"}, "now": {"type": "object", "nullable": True},
                               "history": {"type": "array", "items": OBJ}}}),
                parameters=[{"name": "history", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}}])},
            "/api/apps": {"get": _op("every app", _ok({"type": "array", "items": APP}))},
            "/api/apps/{app_id}": {"get": _op("one app", {**_ok({"$ref": "#/components/schemas/App"}), **_err(404)},
                                              parameters=[APP_ID])},
            "/api/apps/{app_id}/start": _action("start"),
            "/api/apps/{app_id}/stop": _action("stop"),
            "/api/apps/{app_id}/restart": _action("restart"),
            "/api/apps/{app_id}/install": _action("install (again)"),
            "/api/apps/{app_id}/enable": _action("enable (start at boot; service apps, installed first)"),
            "/api/apps/{app_id}/disable": _action("disable (no start at boot)"),
            "/api/backups": {
                "get": _op("the backups in the backup folder, newest first", _ok(OBJ)),
                "post": _op("write a backup now (waits for it); {\"passphrase\": ...} seals the secrets in it",
                            {**_ok(OBJ), **_err(400, 403, 409, 413)}, requestBody={"required": False, "content": {
                                "application/json": {"schema": {"type": "object", "properties": {
                                    "passphrase": {"type": "string", "minLength": 8}}}}}})},
            "/api/backups/{name}": {"get": _op("download a backup", {"200": {
                "description": "the archive", "content": {"application/gzip": {"schema": {
                    "type": "string", "format": "binary"}}}}, **_err(404)}, parameters=[
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}])},
            "/api/apps/{app_id}/restore": {"post": _op(
                "replace the app's data with its copy in a backup (stopped meanwhile, started again)",
                {**_ok(OBJ), **_err(400, 403, 404, 409, 413)}, parameters=[APP_ID], requestBody={
                    "required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["archive"], "properties": {"archive": {"type": "string"}}}}}})},
            "/api/apps/{app_id}/run": _action("run (a job: run it now)"),
            "/api/apps/{app_id}/approve": {"post": _op(
                "approve the permissions and devices the app asks for; an app waiting for it (awaiting_approval) "
                "that was wanted running starts", {**_ok(ACTION), **_err(400, 403, 404, 409, 413, 502)},
                parameters=[APP_ID],
                requestBody={"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["grants"], "properties": {"grants": {
                        "type": "array", "items": {"type": "string"},
                        "description": "the list the user was shown; 409 when the manifest now asks for another"}},
                    "example": {"grants": ["gpio", "/dev/ttyUSB0"]}}}}})},
            "/api/apps/{app_id}/open": {"post": _op(
                "start a UI app if needed and return where to frame it", {**_ok({
                    "type": "object", "required": ["url", "app"],
                    "properties": {"url": {"type": "string"}, "app": {"type": "string"}, **UI_LEFT}}),
                    **_err(403, 404, 409, 502)},
                parameters=[APP_ID])},
            "/api/apps/{app_id}/keepalive": {"post": _op(
                "the user is still looking at the app's UI: push its idle deadline back", {**_ok({
                    "type": "object", "required": ["app"],
                    "properties": {"app": {"type": "string"}, **UI_LEFT}}),
                    **_err(403, 404, 409)}, parameters=[APP_ID])},
            "/api/apps/{app_id}/logs": {"get": _op("the last lines of the app's logs (matching grep, since, until)", {
                **_ok({"type": "object", "required": ["app", "lines"], "properties": {
                    "app": {"type": "string"}, "lines": {"type": "array", "items": {"type": "string"}}}}),
                **_err(400, 404)}, parameters=[APP_ID, {"name": "lines", "in": "query",
                                                       "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                                               {"name": "grep", "in": "query",
                                                "schema": {"type": "string", "maxLength": 200}},
                                               *({"name": t, "in": "query", "schema": {"type": "string"},
                                                  "description": "10m, 2h, 1d, 30s or an ISO time"}
                                                 for t in ("since", "until"))])},
            "/api/apps/{app_id}/logs/download": {"get": _op("the app's logs as a text file", {
                "200": {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_err(404)}, parameters=[APP_ID])},
            "/api/apps/{app_id}/options": {  # homehelper/web/options.py; docs/options.md
                "get": _op("the app's options: schema, values, and for each password only 'set' or 'not set'",
                           {**_ok(OPTIONS), **_err(404, 409)}, parameters=[APP_ID]),
                "put": _op("change options (null: back to the default, or forget a password); a bad value is a "
                           "400 naming the option and changes nothing; a running app restarts",
                           {**_ok(OPTIONS), **_err(400, 403, 404, 409, 413, 502)}, parameters=[APP_ID],
                           requestBody={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "example": {"interval": 10, "api_key": "s3cret"}}}}})},
            "/api/rescan": {"post": _op("scan apps/ again", {**_ok({"type": "object", "required": ["summary"],
                                                                     "properties": {"summary": OBJ}}), **_err(403)})},
            "/api/events": {"get": _op("recent events, newest last: from this process (local) or the Redis stream",
                                       {**_ok({"type": "array", "items": OBJ}), **_err(400, 409)},
                                       parameters=[{"name": "limit", "in": "query",
                                                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                                                   {"name": "source", "in": "query",
                                                    "schema": {"enum": ["local", "redis"], "default": "local"}}])},
            "/api/config": {
                "get": _op("the running configuration", _ok(OBJ)),
                "patch": _op("change editable keys (validated, applied, announced as config_changed)",
                             {**_ok(OBJ), **_err(400, 403, 413)},
                             requestBody={"required": True, "content": {"application/json": {"schema": {
                                 "type": "object", "minProperties": 1,
                                 "example": {"log_level": "DEBUG"}}}}}),
            },
            "/api/notify/test": {"post": _op(
                "send a test notification to every notify.urls entry (see docs/operations.md)", {**_ok({
                    "type": "object", "required": ["sent", "results"], "properties": {
                        "sent": {"type": "integer", "description": "how many URLs took the message"},
                        "results": {"type": "array", "items": {"type": "object", "required": ["url", "ok"],
                                                               "properties": {
                            "url": {"type": "string", "description": "the URL without its secrets"},
                            "ok": {"type": "boolean"}, "error": {"type": "string", "nullable": True}}}}}}),
                    **_err(403, 409, 429)})},
            **HISTORY_PATHS,
            **source_paths(_op, _ok, _err, APP_ID),
            **FLEET_PATHS,
            "/api/tokens": {
                "get": _op("API tokens (without their secrets)", _ok({"type": "array", "items": {
                    "$ref": "#/components/schemas/Token"}})),
                "post": _op("create an API token; its secret is shown only in this reply", {
                    **_ok({"allOf": [{"$ref": "#/components/schemas/Token"}, {
                        "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}]},
                        "created", "201"), **_err(400, 403, 413)},
                    requestBody={"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64}}}}}}),
            },
            "/api/tokens/{token_id}": {"delete": _op("revoke an API token", {**_ok(OBJ), **_err(403, 404)},
                                                     parameters=[{"name": "token_id", "in": "path", "required": True,
                                                                  "schema": {"type": "string"}}])},
        },
        "components": {
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "hh_session"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                         "detail": OBJ}},
                "App": {"type": "object", "required": ["id", "state"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "type": {"type": "string", "nullable": True, "enum": ["service", "streamlit", "job", None]},
                    "state": {"type": "string"}, "port": {"type": "integer", "nullable": True},
                    "healthy": {"type": "boolean", "nullable": True},
                    "last_error": {"type": "string", "nullable": True},
                    "permissions": {"type": "array", "items": {"type": "string"},
                                    "description": "what the manifest asks for beyond the default sandbox"},
                    "devices": {"type": "array", "items": {"type": "string"}, "description": "device nodes asked for"},
                    "approved": {"type": "boolean",
                                 "description": "nothing asked for, or the user approved exactly this list"},
                    "sandbox": {"type": "string", "enum": ["sandboxed", "unsandboxed"],
                                "description": "sandboxed: walled in by its systemd unit"},
                    "exposure": {"type": "number", "nullable": True,
                                 "description": "systemd-analyze security of its unit: 0 walled in, 10 exposed"},
                    "exposure_level": {"type": "string", "nullable": True},
                    "resources": {"type": "object", "nullable": True,
                                  "description": "CPU / memory from the sensor actor, when it measures this app"},
                    "ttl_left": {"type": "number", "nullable": True,
                                 "description": "a Streamlit app: seconds before its idle stop (0 when not running)"},
                    "max_lifetime_left": {"type": "number", "nullable": True},
                    "errors": {"type": "array", "items": {"type": "string"},
                               "description": "manifest errors (state 'invalid')"},
                    "job": {"type": "object", "nullable": True, "description": "a job: schedule, timeout, "
                            "next_run and last_run {started, duration, result, exit_status, error} (docs/jobs.md)"}}},
                "Token": {"type": "object", "required": ["id", "name", "created"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "created": {"type": "integer"}}},
            },
        },
    }
