"""What the REST API and the websocket both do: snapshots and actions (commands down).

App state comes from the registry's read model (`deps.view`, read directly: no ask), resources
and the system panel from the sensor actor. An action goes to the app's own actor, which
publishes its progress as events; `act` then waits until the app has settled and answers with
its record, the same for REST and the websocket.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..actors import ActorError, ActorRef, Broadcast
from ..actors.eventlog import EventLog
from ..actors.settings import dotted, merge, save_changes
from ..config import Config, change_config
from ..errors import BadRequest, Conflict, HomeHelperError, Unavailable, UnknownApp
from ..manifest import ID_RE
from ..messages import (
    ApproveApp,
    ConfigChanged,
    EnableApp,
    GetEventHistory,
    GetMetricHistory,
    GetSystemSnapshot,
    InstallApp,
    KeepAlive,
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
SETTLE_TIMEOUT = 120.0  # how long an action waits for its app to leave starting/stopping/installing
MAX_EVENTS = 1000
FRESH_ENOUGH = 1.0  # seconds: how old a system sample a refresh may show
MACHINE_CHART = ("machine", "1h", 120)  # the system panel's charts: the last hour in 120 points


def check_app_id(app_id: Any) -> str:
    """An app id by the manifest's rule, else UnknownApp (before anything is asked or touched)."""
    if not isinstance(app_id, str) or not ID_RE.fullmatch(app_id):
        raise UnknownApp(str(app_id)[:80])
    return app_id


def _resources(system: dict[str, Any] | None, app_id: str) -> dict[str, Any] | None:
    apps = (system or {}).get("apps")
    return apps.get(app_id) if isinstance(apps, dict) else None


async def _last_sample(deps: WebDeps) -> dict[str, Any] | None:
    if deps.sensors is None:
        return None
    if (reading := deps.machine.reading()) is not None:
        return reading
    try:
        snap = await deps.sensors.ask(GetSystemSnapshot(fresh=False), timeout=5)
    except Exception:  # resources are a bonus on the app list; never fail the list for them
        return None
    return snap if isinstance(snap, dict) else None


async def list_apps(deps: WebDeps) -> list[dict[str, Any]]:
    apps = deps.view.apps()
    system = await _last_sample(deps)
    for a in apps:
        a["resources"] = _resources(system, a["id"])
    return apps


async def get_app(deps: WebDeps, app_id: Any) -> dict[str, Any]:
    """One app's record (an invalid folder's too, by the name the list shows) with its resources."""
    if not isinstance(app_id, str):
        raise UnknownApp(str(app_id)[:80])
    app = deps.view.app(app_id)
    app["resources"] = _resources(await _last_sample(deps), app_id)
    return app


async def system(deps: WebDeps, history: bool = True) -> dict[str, Any]:
    if deps.sensors is None:
        return {"available": False, "now": None, "history": []}
    machine = deps.machine
    # Readings at most FRESH_ENOUGH old: a person's click never needs newer, and rapid or concurrent
    # refreshes (twenty phones on the LAN) then share one sample instead of taking twenty. Read from
    # the machine's read model: only a stale reading or an unread chart costs an ask.
    now = machine.reading(FRESH_ENOUGH)
    if now is None:
        now = await deps.sensors.ask(GetSystemSnapshot(fresh=True), timeout=10)
    if not history:
        return {"available": True, "now": now, "history": []}
    hist: Any = machine.chart(MACHINE_CHART)
    if hist is None and deps.history is not None:  # the history on disk: the charts outlive a restart
        try:
            hist = await deps.history.ask(GetMetricHistory(*MACHINE_CHART), timeout=10)
        except (HomeHelperError, ActorError):  # a stalled card: this run's ring instead, not a failed refresh
            hist = None
    points = hist.get("points", []) if isinstance(hist, dict) else []
    # The longer series: after a restart the file's (the charts outlive it); in a fresh root's first
    # minutes this run's samples, where the file has one or two steps (its first may lack the CPU,
    # which needs two readings, and a chart of one point draws nothing).
    if len(points) < machine.ring_size():
        points = machine.ring()
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
    apps = deps.view.apps()
    for a in apps:
        a["resources"] = _resources(sys_now["now"], a["id"])
    return {"apps": apps, "system": sys_now, "events": await events(deps, 50), "bus": await bus_state(deps)}


async def bus_state(deps: WebDeps) -> dict[str, Any] | None:
    """Whether events reach Redis or stay on the in-process bus (the dashboard says which): the
    running bridge's state, read in memory; None without a bridge."""
    return deps.bus_state() if deps.bus_state is not None else None


async def act(deps: WebDeps, app_id: Any, action: Any) -> dict[str, Any]:
    """Act and settle, the one way REST and the websocket act: send the action to the app's actor,
    wait until the app leaves a transient state (a start answers once launched and goes on to wait
    for health), and answer {"app": its record, "result": the actor's reply}."""
    cls = ACTIONS.get(action) if isinstance(action, str) else None
    if cls is None:
        raise BadRequest(f"unknown action {str(action)[:40]!r}; one of {', '.join(ACTIONS)}", action=str(action)[:40])
    return await _act_and_settle(deps, app_id, cls(check_app_id(app_id)), ACTION_TIMEOUT.get(action, 30.0))


async def approve(deps: WebDeps, app_id: Any, body: Any) -> dict[str, Any]:
    """The user approves the permissions and devices the app asks for: the list they saw, when sent.
    An app held for approval that was wanted running starts, and this settles like a start."""
    seen: tuple[str, ...] | None = None
    if body is not None:
        grants = body.get("grants") if isinstance(body, dict) else None
        if not isinstance(grants, list) or len(grants) > 200 or not all(isinstance(g, str) for g in grants):
            raise BadRequest("send {\"grants\": [...]}: the list of permissions and devices you approve")
        seen = tuple(grants)
    return await _act_and_settle(deps, app_id, ApproveApp(check_app_id(app_id), seen), ACTION_TIMEOUT["start"])


def app_ref(deps: WebDeps, app_id: Any) -> ActorRef[Any]:
    """The actor of an app a command may go to: UnknownApp, or Conflict for an invalid manifest."""
    record = deps.view.app(check_app_id(app_id))
    if record["state"] == "invalid":
        raise Conflict(f"{app_id} has an invalid manifest: fix it, then rescan", app=app_id,
                       errors=record.get("errors"))
    if app_id not in deps.apps:
        raise UnknownApp(app_id)
    return deps.apps.ref(app_id)


async def _act_and_settle(deps: WebDeps, app_id: str, command: Any, timeout: float) -> dict[str, Any]:
    result = await app_ref(deps, app_id).ask(command, timeout=timeout)
    # The view took the actor's events as they were published: it is as current as the reply.
    with trio.move_on_after(SETTLE_TIMEOUT):
        await deps.view.settled(app_id)
    return {"app": await get_app(deps, app_id), "result": result if _jsonable(result) else None}


def ui_reply(app_id: str, settled: dict[str, Any]) -> dict[str, Any]:
    """What the UI modal needs after open or keepalive: where to frame the app, how long it has left."""
    app = settled["app"]
    return {"app": app_id, "url": f"/apps/{app_id}/ui/", "state": app["state"], "ttl_left": app.get("ttl_left"),
            "max_lifetime_left": app.get("max_lifetime_left")}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


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
    new = await persist_config_change(deps.config, deps.broadcast, changes)
    deps.config = new
    return new.to_json()


async def persist_config_change(config: Config, broadcast: Broadcast, changes: dict[str, Any]) -> Config:
    """Without a settings actor (a bare web app): validate, persist over config.json, announce; the new Config."""
    new = change_config(config, changes)
    await trio.to_thread.run_sync(save_changes, config.config_file, changes)
    broadcast.publish(ConfigChanged(_dotted(changes)))
    return new


_merge = merge
_dotted = dotted


__all__ = ["ACTIONS", "act", "app_ref", "approve", "check_app_id", "events", "get_app", "list_apps", "rescan",
           "set_config", "snapshot", "system", "ui_reply"]
