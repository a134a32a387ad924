"""What the web layer depends on (`WebDeps`, built by serve.py), where its two origins are, and
the one rule for who is asking, shared by the dashboard (app.py) and the app origin (proxy.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..actors import ActorRef, Broadcast, Supervisor
from ..actors.eventlog import EventLog
from ..actors.machineview import MachineView
from ..actors.readmodel import AppsView
from ..config import Config
from ..errors import Unauthorized
from .auth import Auth
from .guard import host_name
from .logs import LogSources

MAX_BODY = 64 * 1024  # every request body the API takes is small JSON


@attrs.define
class WebDeps:
    """Everything the web layer talks to, passed in by serve.py."""

    config: Config
    broadcast: Broadcast
    apps: Supervisor
    scanner: ActorRef[Any]
    view: AppsView  # the registry's read model of every app: what the web shows and acts on
    sensors: ActorRef[Any] | None = None
    # the sensors' and the history's read model (serve.py's is fed by them): a refresh reads it, no ask
    machine: MachineView = attrs.field(factory=MachineView)
    bridge: ActorRef[Any] | None = None  # the Redis bridge: its stream's history (GetEventHistory)
    # the bridge's state, read in memory with no mailbox hop (serve.py: the running bridge's)
    bus_state: Callable[[], dict[str, Any]] | None = None
    # the event log: serve.py hands the instance (read directly, no mailbox hop), tests may hand its ref
    event_log: EventLog | ActorRef[Any] | None = None
    notifier: ActorRef[Any] | None = None  # answers SendTestNotification (POST /api/notify/test)
    backup: ActorRef[Any] | None = None  # the backup actor: RunBackup, RestoreAppData (web/backup.py)
    history: ActorRef[Any] | None = None  # the metrics history (GetMetricHistory) and Redis figures
    updater: ActorRef[Any] | None = None  # apps added and updated from a source (web/sources.py)
    set_config: Callable[[dict[str, Any]], Any] | None = None  # changes -> new Config (may be async)
    auth: Auth | None = None  # built from config.root when None
    dashboard_port: int | None = None  # the ports really bound (serve_app sets them; port 0 in tests)
    apps_port: int | None = None
    logs: LogSources | None = None  # where each app's log is read: the journal or its files (web/logs.py)
    fleet: Any = None  # the fleet's asking side (actors/fleet.py FleetLink): GET /api/fleet, cross-node actions


def _origin(scope: Any, port: int) -> str:
    """scheme://<the name the client used>:port, for the other listener of this server."""
    host = next((v.decode("latin-1") for n, v in scope.get("headers", ()) if n == b"host"), None)
    name = host_name(host) if host else "127.0.0.1"
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{name}:{port}"


def apps_port(deps: WebDeps) -> int:
    """Where app pages are served: the bound port, else `apps_port`, else the dashboard's port + 1."""
    return deps.apps_port or deps.config.apps_port or (deps.dashboard_port or deps.config.port) + 1


def apps_origin(deps: WebDeps, scope: Any) -> str:
    return _origin(scope, apps_port(deps))


def dashboard_origin(deps: WebDeps, scope: Any) -> str:
    return _origin(scope, deps.dashboard_port or deps.config.port)


def is_loopback(addr: str | None) -> bool:
    try:
        return addr is not None and ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def same_origin(origin: str | None, host: str | None) -> bool:
    """The browser's Origin names this server (host and port), whatever the scheme."""
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def identify(auth: Auth, config: Config, authorization: str | None, session: Callable[[], bool],
             remote_addr: str | None, *, foreign_tokens: bool = False) -> str | None:
    """Who is asking: 'token', 'session', 'loopback' or None, in that order, on either origin.

    'token': a valid `Authorization: Bearer` API token. 'session': `session()` found a live one (the
    dashboard's cookie on the dashboard, that app's own cookie on the app origin: the caller says
    which). 'loopback': a loopback client while `auth.loopback_without_login` is on. A bearer token
    that is not ours is refused on the dashboard; on the app origin (`foreign_tokens`) it may be the
    app's own (the proxy passes those through) and is passed by."""
    if authorization is not None and authorization[:7].lower() == "bearer ":
        if auth.check_token(authorization[7:].strip()):
            return "token"
        if not foreign_tokens:
            raise Unauthorized("invalid API token")
    if session():
        return "session"
    if config.auth.loopback_without_login and is_loopback(remote_addr):
        return "loopback"
    return None
