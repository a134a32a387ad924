"""The Quart-trio application factory and what it depends on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from quart import jsonify
from quart_trio import QuartTrio

from ..actors import ActorRef, Broadcast, Supervisor
from ..config import Config
from ..errors import HomeHelperError
from ..messages import ListApps


@attrs.define
class WebDeps:
    """Everything the web layer talks to, passed in by serve.py."""

    config: Config
    bus: Broadcast
    registry: ActorRef[Any]
    apps: Supervisor
    scanner: ActorRef[Any]
    sensors: ActorRef[Any] | None = None
    event_log: Any = None
    set_config: Callable[[dict[str, Any]], Any] | None = None


def create_app(deps: WebDeps) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    @app.errorhandler(HomeHelperError)
    async def _error(exc: HomeHelperError) -> Any:
        return jsonify(exc.to_json()), exc.status

    @app.get("/")
    async def index() -> str:
        apps = await deps.registry.ask(ListApps())
        rows = "".join(f"<li>{a['id']} - {a['state']}</li>" for a in apps)
        return f"<!doctype html><title>HomeHelper</title><h1>HomeHelper</h1><ul>{rows}</ul>"

    @app.get("/api/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/api/apps")
    async def apps() -> Any:
        return jsonify(await deps.registry.ask(ListApps()))

    return app
