"""Routes of the fleet: GET /api/fleet, POST /api/fleet/<node>/apps/<app>/<action>.

Reading the fleet reads Redis when a person looks (the refresh button, a click); nothing polls. An
action on this node's own app goes the usual way (ops.act); on another node it goes through that
node's command stream and the answer (or the timeout, named) comes back here.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Any

from quart import g, request
from quart_trio import QuartTrio

from ..actors import ActorRef, Supervisor
from ..actors.fleet import FleetLink
from ..actors.machineview import MachineView
from ..actors.readmodel import AppsView
from ..bus.commands import ACTIONS, FleetCommand
from ..errors import Conflict
from . import ops
from .deps import WebDeps


def performer(view: AppsView, apps: Supervisor, sensors: ActorRef[Any] | None, machine: MachineView) -> Any:
    """How this node acts on a command from another node: as the web acts (ops.act / ops.approve)."""
    deps: Any = SimpleNamespace(view=view, apps=apps, sensors=sensors, machine=machine)

    async def perform(cmd: FleetCommand) -> dict[str, Any]:
        if cmd.action == "approve":
            body = None if cmd.grants is None else {"grants": list(cmd.grants)}
            return await ops.approve(deps, cmd.app, body)
        return await ops.act(deps, cmd.app, cmd.action)

    return perform


def _user() -> str:
    who = getattr(g, "who", None) or "unknown"
    return f"{who}@{request.remote_addr or '?'}"


def register(app: QuartTrio, deps: WebDeps) -> None:
    def link() -> FleetLink:
        fleet: FleetLink | None = getattr(deps, "fleet", None)
        if fleet is None:
            raise Conflict("no fleet on this server")
        return fleet

    @app.get("/api/fleet")
    async def fleet() -> Any:
        """Every node over this Redis: online, offline since when, or unknown (Redis away)."""
        fleet = getattr(deps, "fleet", None)
        if fleet is None:
            return {"enabled": False, "node": deps.config.node_id, "redis": "none", "error": None, "nodes": []}
        return await fleet.fleet()

    async def fleet_action(name: str, app_id: str, action: str) -> Any:
        """Start, stop, restart or approve an app on any node; the answer, or the timeout, named."""
        body = await request.get_json(silent=True) if action == "approve" else None
        own = link()
        if name == own.node:  # this node's own app: the usual way, no round trip through Redis
            settled = (await ops.approve(deps, app_id, body) if action == "approve"
                       else await ops.act(deps, app_id, action))
            return {"ok": True, "node": name, "app_id": app_id, "action": action, "timeout": False, **settled}
        grants = None
        if isinstance(body, dict) and isinstance(body.get("grants"), list):
            grants = tuple(str(x)[:100] for x in body["grants"][:200])
        return await own.send(name, app_id, action, _user(), grants)

    for verb in ACTIONS:  # one route per action, as the OpenAPI document lists them (<name>: the node id)
        app.add_url_rule(f"/api/fleet/<name>/apps/<app_id>/{verb}", f"fleet_{verb}",
                         partial(fleet_action, action=verb), methods=["POST"])


_ERR = {"$ref": "#/components/schemas/Error"}
_NODE = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "the node id"}
_APP = {"name": "app_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "bad input (named in the body)", 401: "no session or token", 404: "no such app on this node",
             409: "an invalid manifest, or no fleet", 503: "the fleet's Redis did not answer"}
    return {str(c): {"description": words[c], "content": {"application/json": {"schema": _ERR}}} for c in codes}


def _action_doc(verb: str) -> dict[str, Any]:
    return {"post": {
        "summary": f"{verb} an app on any node of the fleet: this node acts itself, another node through its "
                   "command stream; the reply says ok, or names the timeout",
        "parameters": [_NODE, _APP],
        "responses": {"200": {"description": "the node's answer (ok false: refused, expired or timed out)",
                              "content": {"application/json": {"schema": {"type": "object",
                                                                          "required": ["ok", "timeout"]}}}},
                      **_errors(400, 401, 404, 409, 503)}}}


PATHS: dict[str, Any] = {
    "/api/fleet": {"get": {
        "summary": "every node over this Redis: online, offline since when, or unknown while Redis is away",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "type": "object", "required": ["enabled", "node", "redis", "nodes"]}}}}, **_errors(401)}}},
    **{f"/api/fleet/{{name}}/apps/{{app_id}}/{verb}": _action_doc(verb) for verb in ACTIONS},
}
