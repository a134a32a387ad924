"""One actor per app: it holds the app's state machine.

The base class knows what every app has (manifest, state, port, last error)
and answers snapshots; `ServiceApp` and `StreamlitApp` add how each kind runs.
States: stopped, installing, install_failed, starting, running, stopping,
backoff, quarantined, config_error, awaiting_approval.

The start gate lives here too: an app whose manifest asks for permissions or
devices starts only once the user approved that exact list (homehelper.approvals);
until then a start leaves it in `awaiting_approval`, and approving it starts it
if it was wanted running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..approvals import ApprovalStore, describe, normalize
from ..backends.base import Backend
from ..backends.exposure import ExposureMeter
from ..backends.installer import Installer
from ..bus.acl import AppIdentities
from ..config import Config
from ..errors import Conflict, Unavailable
from ..manifest import Manifest
from ..messages import (
    AllocatePort,
    AppApproved,
    AppAwaitingApproval,
    AppExposureMeasured,
    ApplyManifest,
    ApproveApp,
    AppStateChanged,
    GetApp,
    GetOptions,
    InstallApp,
    KeepAlive,
    OpenUI,
    RestartApp,
    SetOptions,
    StartApp,
    StopApp,
)
from . import Actor, ActorRef, Supervisor
from .options import handle_options

STATES = ("stopped", "installing", "install_failed", "starting", "running", "stopping",
          "backoff", "quarantined", "config_error", "awaiting_approval")


@attrs.define
class AppContext:
    """What an app actor needs from the rest of the tree, passed in (no global core)."""

    config: Config
    emit: Callable[[object], None]  # the broadcast's publish
    ports: ActorRef[Any]
    ttl: ActorRef[Any] | None = None
    identities: AppIdentities | None = None  # each app's Redis credentials (homehelper.bus.acl)
    backend: Backend | None = None  # how apps run: service and Streamlit apps need one
    installer: Installer | None = None  # shared, so one install runs at a time; None: each actor makes its own
    apps: Supervisor | None = None  # the apps supervisor: a Streamlit app addresses itself through it
    slots: ActorRef[Any] | None = None  # the Streamlit slots (caps Streamlit apps running at once); None: no cap
    approvals: ApprovalStore | None = None  # None: an app asking for permissions never starts
    exposure: ExposureMeter | None = None  # systemd-analyze security scores; None: not measured

    def need_backend(self) -> Backend:
        if self.backend is None:
            raise TypeError("AppContext.backend is needed by service and Streamlit apps")
        return self.backend


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
        self.desired = "stopped"  # running: approving a held start starts it
        self._exposure: tuple[float, str] | None = None

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
                "port": self.port, "last_error": self.last_error, "ui": self.manifest.ui,
                "permissions": list(self.manifest.permissions), "devices": list(self.manifest.devices),
                "approved": not self.unapproved(), "sandbox": self.sandbox}

    # --- approval and sandbox ---------------------------------------------------
    @property
    def sandbox(self) -> str:
        """sandboxed: a systemd unit walls it in; unsandboxed: it runs as HomeHelper's user, like HomeHelper."""
        backend = self.ctx.backend
        on_systemd = getattr(backend, "name", None) == "systemd"
        return "sandboxed" if on_systemd else "unsandboxed"  # Streamlit apps run as units too

    def unapproved(self) -> tuple[str, ...]:
        """What the manifest asks for, when the user has not approved exactly that; () when free to start."""
        grants = normalize(self.manifest.grants)
        store = self.ctx.approvals
        if not grants or (store is not None and store.is_approved(self.app_id, grants)):
            return ()
        return grants

    def approval_message(self) -> str:
        return (f"{self.app_id} asks for {describe(self.manifest.grants)}: approve it on the dashboard "
                f"or with `homehelper approve {self.app_id}`")

    def held_for_approval(self, reason: str) -> bool:
        """The start gate: True (and the app waits in awaiting_approval) when its grants are not approved.

        Not an error: a boot restore or autostart arrives as a tell, and a held start is a state the
        user resolves, not a failure of the request.
        """
        grants = self.unapproved()
        if not grants:
            return False
        self.last_error = self.approval_message()
        self.set_state("awaiting_approval", self.last_error)
        self.ctx.emit(AppAwaitingApproval(self.app_id, grants, reason, self.last_error))
        return True

    def check_approved(self) -> None:
        """For commands that would let the app start later without us (enable at boot)."""
        if self.unapproved():
            raise Conflict(self.approval_message(), app=self.app_id, grants=list(self.manifest.grants))

    async def approve(self, seen: tuple[str, ...] | None) -> Any:
        current = normalize(self.manifest.grants)
        if seen is not None and normalize(seen) != current:
            raise Conflict(f"{self.app_id} now asks for {describe(self.manifest.grants)}, not for what was shown "
                           f"({describe(seen)}): review the new list", app=self.app_id,
                           grants=list(self.manifest.grants))
        if not current:
            return self.snapshot()  # nothing to approve
        store = self.ctx.approvals
        if store is None:
            raise Unavailable(f"{self.app_id}: approvals cannot be stored on this server", app=self.app_id)
        await store.approve(self.app_id, current)
        self.ctx.emit(AppApproved(self.app_id, current))
        if self.state == "awaiting_approval":
            self.last_error = None
            if self.desired == "running":
                return await self.start("approved")
            self.set_state("stopped", "approved")
        return self.snapshot()

    def measure_exposure(self, nursery: Any) -> None:
        """After the unit was written: its `systemd-analyze security` score, in the background."""
        meter, backend = self.ctx.exposure, self.ctx.backend
        if meter is not None and getattr(backend, "name", None) == "systemd" and nursery is not None:
            nursery.start_soon(self._measure, meter, backend)

    async def _measure(self, meter: Any, backend: Any) -> None:
        result = await meter.measure(backend, self.app_id)
        if result is not None and result != self._exposure:
            self._exposure = result
            self.ctx.emit(AppExposureMeasured(self.app_id, *result))

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
            case ApproveApp(_, grants):
                return await self.approve(grants)
            case GetOptions() | SetOptions():
                return await handle_options(self, msg)
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

