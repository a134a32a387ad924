"""The options API: GET /api/apps/<id>/options (schema, values, which secrets are set) and PUT
(change some; a bad value is a 400 naming the option and changes nothing). A password's value
never comes back: the reply says only "set" or "not set"."""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from ..errors import BadRequest
from ..messages import GetOptions, SetOptions
from . import ops
from .api import json_body
from .deps import WebDeps

# A change restarts a running app: its stop (up to TimeoutStopSec) and its start.
SET_TIMEOUT = 60.0


async def get_options(deps: WebDeps, app_id: str) -> Any:
    return await ops.app_ref(deps, app_id).ask(GetOptions(app_id), timeout=10)


async def set_options(deps: WebDeps, app_id: str, changes: Any) -> Any:
    if not isinstance(changes, dict):
        raise BadRequest("send an object: option name -> value (null: back to the default)")
    return await ops.app_ref(deps, app_id).ask(SetOptions(app_id, changes), timeout=SET_TIMEOUT)


def register_options(app: QuartTrio, deps: WebDeps) -> None:
    @app.get("/api/apps/<app_id>/options")
    async def app_options(app_id: str) -> Any:
        return await get_options(deps, app_id)

    @app.put("/api/apps/<app_id>/options")
    async def put_app_options(app_id: str) -> Any:
        body = await json_body()
        return await set_options(deps, app_id, body)
