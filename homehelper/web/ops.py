"""What the REST API and the websocket both do: snapshots (asks) and actions (commands down).

Snapshots come from the registry's read model (one ask answers the whole app list) and the
sensor actor; actions go to the app's own actor, which publishes its progress as events.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..actors import ActorError, Broadcast
from ..actors.eventlog import EventLog
from ..actors.settings import dotted, merge, save_changes
from ..config import Config, change_config
from ..errors import BadRequest, Conflict, HomeHelperError, Unavailable, UnknownApp
from ..messages import (
    ApproveApp,
    ConfigChanged,
    EnableApp,
    GetApp,
    GetBusState,
    GetEventHistory,
    GetHistory,
    GetSystemSnapshot,
    InstallApp,
    KeepAlive,
    ListApps,
    OpenUI,
    Rescan,
    RestartApp,
    RunJob,
    StartApp,
    StopApp,
)

if TYPE_CHECKING:
    from .deps import WebDeps

ACTIONS: dict[str, Callable[[str], Any]] = {
    "start": StartApp, "stop": StopApp, "restart": RestartApp, "install": InstallApp, "open": OpenUI,
    "keepalive": KeepAlive,
    "enable": lambda app_id: EnableApp(app_id, True),  # a service app starts at boot; it installs first
    "disable": lambda app_id: EnableApp(app_id, False),
    "run": RunJob,  # a job: run it now ("run now" on its card)
}
# A start may install first (pip on a Pi is slow); the websocket reports progress meanwhile.
ACTION_TIMEOUT = {"install": 900.0, "start": 300.0, "restart": 300.0, "open": 120.0, "enable": 900.0, "run": 900.0}
MAX_EVENTS = 1000
FRESH_ENOUGH = 1.0  # seconds: how old a system sample a refresh may show
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


def check_app_id(app_id: Any) -> str:
    if not isinstance(app_id, str) or not _SAFE_ID.fullmatch(app_id):
        raise UnknownApp(str(app_id)[:80])
    return app_id


def _resources(system: dict[str, Any] | None, app_id: str) -> dict[str, Any] | None:
    apps = (system or {}).get("apps")
    return apps.get(app_id) if isinstance(apps, dict) else None


async def _last_sample(deps: WebDeps) -> dict[str, Any] | None:
    if deps.sensors is None:
        return None
    try:
        snap = await deps.sensors.ask(GetSystemSnapshot(fresh=False), timeout=5)
    except Exception:  # resources are a bonus on the app list; never fail the list for them
        return None
    return snap if isinstance(snap, dict) else None


async def list_apps(deps: WebDeps) -> list[dict[str, Any]]:
    apps = await deps.registry.ask(ListApps())
    system = await _last_sample(deps)
    for a in apps:
        a["resources"] = _resources(system, a["id"])
    return list(apps)


async def get_app(deps: WebDeps, app_id: str) -> dict[str, Any]:
    app = dict(await deps.registry.ask(GetApp(check_app_id(app_id))))
    app["resources"] = _resources(await _last_sample(deps), app_id)
    return app


async def system(deps: WebDeps, history: bool = True) -> dict[str, Any]:
    if deps.sensors is None:
        return {"available": False, "now": None, "history": []}
    # Readings at most FRESH_ENOUGH old: a person's click never needs newer, and rapid or concurrent
    # refreshes (twenty phones on the LAN) then share one sample instead of taking twenty.
    now = await deps.sensors.ask(GetSystemSnapshot(fresh=False), timeout=10)
    if not isinstance(now, dict) or not isinstance(now.get("age_s"), (int, float)) or now["age_s"] > FRESH_ENOUGH:
        now = await deps.sensors.ask(GetSystemSnapshot(fresh=True), timeout=10)
    hist = await deps.sensors.ask(GetHistory(), timeout=10) if history else []
    points = hist.get("points", []) if isinstance(hist, dict) else list(hist)
    return {"available": True, "now": now, "history": points[-120:]}


async def events(deps: WebDeps, limit: int = 100) -> list[dict[str, Any]]:
    """Recent events, newest last: read from the event log itself, or asked of its actor (GetEventHistory)."""
    limit = max(1, min(int(limit), MAX_EVENTS))
    log = deps.event_log
    if log is None:
        return []
    if isinstance(log, EventLog):
        return log.recent(limit)
    return list(await log.ask(GetEventHistory(limit), timeout=10))


async def redis_events(deps: WebDeps, limit: int = 100) -> list[dict[str, Any]]:
    """Recent events from the bridge's Redis stream, newest last. Without Redis that is a state of
    this server, not a failure of it: 409, pointing at the in-process history."""
    if deps.bridge is None:
        raise Conflict("no Redis bridge runs: the in-process history is at /api/events")
    try:
        return list(await deps.bridge.ask(GetEventHistory(limit), timeout=10))
    except Unavailable as exc:
        raise Conflict(f"{exc.message}; the in-process history is at /api/events") from None


async def snapshot(deps: WebDeps) -> dict[str, Any]:
    """Everything the dashboard shows, in one reply (what the refresh button asks for).

    One fresh sample serves both the system panel and the apps' resources: a refresh costs one
    sensor reading, however many apps there are.
    """
    sys_now = await system(deps)
    apps = list(await deps.registry.ask(ListApps()))
    for a in apps:
        a["resources"] = _resources(sys_now["now"], a["id"])
    return {"apps": apps, "system": sys_now, "events": await events(deps, 50), "bus": await bus_state(deps)}


async def bus_state(deps: WebDeps) -> dict[str, Any] | None:
    """Whether events reach Redis or stay on the in-process bus (the dashboard says which)."""
    if deps.bridge is None:
        return None
    try:
        state: dict[str, Any] = await deps.bridge.ask(GetBusState(), timeout=2)
    except (HomeHelperError, ActorError):
        return None
    return state


async def act(deps: WebDeps, app_id: str, action: str) -> Any:
    """Send an action to the app's actor and wait for its answer (the app's new snapshot, or what it returns)."""
    cls = ACTIONS.get(action)
    if cls is None:
        raise BadRequest(f"unknown action {action!r}; one of {', '.join(ACTIONS)}", action=action)
    record = await deps.registry.ask(GetApp(check_app_id(app_id)))
    if record.get("state") == "invalid":
        raise Conflict(f"{app_id} has an invalid manifest: fix it, then rescan", app=app_id,
                       errors=record.get("errors"))
    if app_id not in deps.apps:
        raise UnknownApp(app_id)
    result = await deps.apps.ref(app_id).ask(cls(app_id), timeout=ACTION_TIMEOUT.get(action, 30.0))
    return result


async def approve(deps: WebDeps, app_id: str, body: Any) -> Any:
    """The user approves the permissions and devices the app asks for: the list they saw, when sent."""
    seen: tuple[str, ...] | None = None
    if body is not None:
        grants = body.get("grants") if isinstance(body, dict) else None
        if not isinstance(grants, list) or len(grants) > 200 or not all(isinstance(g, str) for g in grants):
            raise BadRequest("send {\"grants\": [...]}: the list of permissions and devices you approve")
        seen = tuple(grants)
    record = await deps.registry.ask(GetApp(check_app_id(app_id)))
    if record.get("state") == "invalid":
        raise Conflict(f"{app_id} has an invalid manifest: fix it, then rescan", app=app_id)
    if app_id not in deps.apps:
        raise UnknownApp(app_id)
    return await deps.apps.ref(app_id).ask(ApproveApp(app_id, seen), timeout=ACTION_TIMEOUT["start"])


async def actor_snapshot(deps: WebDeps, app_id: str) -> Any:
    """The app actor's own snapshot (newer than the registry's by the events still in flight)."""
    return await deps.apps.ref(check_app_id(app_id)).ask(GetApp(app_id), timeout=10)


async def after_action(deps: WebDeps, app_id: str, result: Any) -> dict[str, Any]:
    """The app's record for an action's reply, with the actor's own answer laid over it: the
    registry learns of the change from events a moment later, the actor knows it now."""
    app = await get_app(deps, app_id)
    if isinstance(result, dict):
        app.update({k: result[k] for k in ("state", "port", "last_error", "healthy", "approved", "job") if k in result})
    return app


async def rescan(deps: WebDeps) -> Any:
    return await deps.scanner.ask(Rescan(), timeout=60)


async def set_config(deps: WebDeps, changes: Any) -> dict[str, Any]:
    """Validate and apply a change; it is persisted, announced as ConfigChanged, and the new config returned.

    serve.py gives `deps.set_config`: the settings actor, which applies changes one at a time and
    updates `deps.config` itself, in order (concurrent requests never put an older config back).
    """
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("send a JSON object of config keys to change, e.g. {\"log_level\": \"DEBUG\"}")
    if deps.set_config is not None:
        result = deps.set_config(changes)
        new = await result if inspect.isawaitable(result) else result
        return (new if new is not None else deps.config).to_json()
    new = await persist_config_change(deps.config, deps.bus, changes)
    deps.config = new
    return new.to_json()


async def persist_config_change(config: Config, bus: Broadcast, changes: dict[str, Any]) -> Config:
    """Without a settings actor (a bare web app): validate, persist over config.json, announce; the new Config."""
    new = change_config(config, changes)
    await trio.to_thread.run_sync(save_changes, config.config_file, changes)
    bus.publish(ConfigChanged(_dotted(changes)))
    return new


_merge = merge
_dotted = dotted


__all__ = ["ACTIONS", "act", "check_app_id", "events", "get_app", "list_apps", "rescan", "set_config",
           "snapshot", "system"]
