"""One actor per app: it holds the app's state machine.

The base class knows what every app has (manifest, state, port, last error)
and answers snapshots; `ServiceApp` and `StreamlitApp` add how each kind runs.
States: stopped, installing, install_failed, starting, running, stopping,
backoff, quarantined, config_error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..bus.acl import AppIdentities
from ..config import Config
from ..errors import Conflict
from ..manifest import Manifest
from ..messages import (
    AllocatePort,
    ApplyManifest,
    AppStateChanged,
    GetApp,
    InstallApp,
    KeepAlive,
    OpenUI,
    RestartApp,
    StartApp,
    StopApp,
)
from . import Actor, ActorRef

STATES = ("stopped", "installing", "install_failed", "starting", "running", "stopping",
          "backoff", "quarantined", "config_error")


@attrs.define
class AppContext:
    """What an app actor needs from the rest of the tree, passed in (no global core)."""

    config: Config
    emit: Callable[[object], None]  # the broadcast's publish
    ports: ActorRef[Any]
    ttl: ActorRef[Any] | None = None
    identities: AppIdentities | None = None  # each app's Redis credentials (homehelper.bus.acl)
    extra: dict[str, Any] = attrs.field(factory=dict)  # backends and helpers, by name


class AppActor(Actor):
    """Base of the per-app actors. Subclasses override `start`, `stop`, ..."""

    port_kind = "service"

    def __init__(self, manifest: Manifest, ctx: AppContext) -> None:
        self.manifest = manifest
        self.ctx = ctx
        self.name = f"app:{manifest.id}"
        self.state = "stopped"
        self.port: int | None = None
        self.last_error: str | None = None

    @property
    def app_id(self) -> str:
        return self.manifest.id

    def set_state(self, state: str, reason: str = "") -> None:
        if state != self.state:
            previous, self.state = self.state, state
            self.ctx.emit(AppStateChanged(self.app_id, state, previous, reason))

    async def allocate_port(self, avoid: tuple[int, ...] = ()) -> int:
        self.port = await self.ctx.ports.ask(AllocatePort(self.app_id, self.port_kind, avoid))
        return self.port

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.app_id, "type": self.manifest.type, "state": self.state,
                "port": self.port, "last_error": self.last_error, "ui": self.manifest.ui}

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetApp():
                return self.snapshot()
            case ApplyManifest(manifest):
                return await self.apply_manifest(manifest)
            case StartApp(_, reason):
                return await self.start(reason)
            case StopApp(_, reason):
                return await self.stop(reason)
            case RestartApp(_, reason):
                return await self.restart(reason)
            case InstallApp(_, force):
                return await self.install(force)
            case OpenUI():
                return await self.open_ui()
            case KeepAlive():
                return await self.keep_alive()
            case _:
                return await self.handle_other(msg)

    # --- hooks for subclasses ---------------------------------------------
    async def apply_manifest(self, manifest: Manifest) -> Any:
        self.manifest = manifest

    async def start(self, reason: str) -> Any:
        raise Conflict(f"{self.app_id}: no backend runs {self.manifest.type} apps yet", app=self.app_id)

    async def stop(self, reason: str) -> Any:
        raise Conflict(f"{self.app_id} is not running", app=self.app_id)

    async def restart(self, reason: str) -> Any:
        await self.stop(reason)
        return await self.start(reason)

    async def install(self, force: bool) -> Any:
        raise Conflict(f"{self.app_id}: nothing to install", app=self.app_id)

    async def open_ui(self) -> Any:
        raise Conflict(f"{self.app_id} has no UI to open", app=self.app_id)

    async def keep_alive(self) -> Any:
        return None

    async def handle_other(self, msg: Any) -> Any:
        raise Conflict(f"{self.app_id}: cannot handle {type(msg).__name__}", app=self.app_id)

