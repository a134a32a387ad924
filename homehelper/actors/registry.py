"""The registry: which apps exist, what state each is in, and their actors.

It turns scans into app actors (one per valid app, under the `apps`
supervisor) and keeps a read model of every app, fed by the events the app
actors publish, so one ask answers the dashboard's whole app list. What must
survive a restart (the app's folder, type, manifest digest, whether the user
left it running) is written atomically, and only when it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ..approvals import ApprovalStore, normalize
from ..errors import BadRequest, UnknownApp
from ..manifest import Manifest
from ..messages import (
    AppApproved,
    AppAwaitingApproval,
    AppConfigError,
    AppCrashed,
    AppExposureMeasured,
    AppHealthChanged,
    AppInstalled,
    AppInstallFailed,
    ApplyManifest,
    ApplyScan,
    AppQuarantined,
    AppStarted,
    AppStateChanged,
    AppStopped,
    GetApp,
    JobFailed,
    JobFinished,
    JobScheduled,
    ListApps,
    PortAssigned,
    ScanApplied,
    StartApp,
    StopApp,
)
from ..storage import LatestWriter
from . import Actor, ActorError, Broadcast, ChildSpec, Supervisor
from .statefile import check_mapping, is_port, read_state

log = logging.getLogger(__name__)

AppFactory = Callable[[Manifest], Actor]
_PERSISTED = ("name", "type", "folder", "digest", "desired", "port", "user_stopped")
# Reasons that carry the user's intent (the web, the CLI and the bus send "user").
_BY_USER = ("user", "api")
# What the read model follows: an app's bus traffic (readings, heartbeats) never wakes the registry.
_FOLLOWED = (AppStateChanged, AppStarted, AppStopped, AppHealthChanged, PortAssigned, AppInstalled, AppCrashed,
             AppConfigError, AppInstallFailed, AppQuarantined, AppAwaitingApproval, AppApproved, AppExposureMeasured,
             JobScheduled, JobFailed, JobFinished)


@attrs.define
class AppRecord:
    id: str
    name: str
    type: str
    folder: str
    digest: str
    version: str = ""
    description: str = ""
    state: str = "stopped"
    port: int | None = None
    healthy: bool | None = None
    health_detail: str = ""
    last_error: str | None = None
    desired: str = "stopped"  # what the user last asked for: running | stopped
    user_stopped: bool = False  # the user's stop holds against the manifest's autostart too
    disk_bytes: int | None = None
    ttl: float | None = None
    ui: str | None = None
    permissions: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    approved: bool = True  # nothing asked for, or exactly this list approved
    sandbox: str = "unsandboxed"  # sandboxed: walled in by its systemd unit
    exposure: float | None = None  # systemd-analyze security of its unit, 0 (walled) to 10
    exposure_level: str | None = None
    job: dict[str, Any] | None = None  # a job's schedule, timeout, next run (wall clock) and last run
    manifest: Manifest | None = attrs.field(default=None, repr=False, eq=False)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, v: a.name != "manifest")
        data["has_ui"] = self.type == "streamlit" or self.ui is not None
        return data

    def persisted(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _PERSISTED}


def _saved_entry(app_id: str, rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"must be an object, found {type(rec).__name__}"
    for key in ("name", "folder", "digest"):
        if not isinstance(rec.get(key), str):
            return f"{key} must be a string"
    if rec.get("type") not in ("service", "streamlit", "job"):
        return "type must be 'service', 'streamlit' or 'job'"
    if rec.get("desired") not in ("running", "stopped"):
        return "desired must be 'running' or 'stopped'"
    if rec.get("port") is not None and not is_port(rec["port"]):
        return "port must be a port number or null"
    if not isinstance(rec.get("user_stopped", False), bool):
        return "user_stopped must be true or false"
    return None


def check_saved(value: Any) -> tuple[dict[str, Any], list[str]]:
    """registry/apps.json: app id -> the persisted fields; bad entries are dropped (their apps rebuilt)."""
    return check_mapping(value, _saved_entry)


class Registry(Actor):
    name = "registry"

    def __init__(self, apps: Supervisor, factory: AppFactory, bus: Broadcast, state_file: Path | None,
                 approvals: ApprovalStore | None = None) -> None:
        self.apps = apps
        self.factory = factory
        self.bus = bus
        self.state_file = state_file
        self.records: dict[str, AppRecord] = {}
        self.invalid: dict[str, tuple[str, ...]] = {}
        self.saved: dict[str, Any] = {}  # what the file holds (read in on_start)
        self.first_scan = True
        self.approvals = approvals
        # written on a worker thread, a burst of changes folded into one write
        self.writer = LatestWriter(state_file) if state_file is not None else None

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.state_file is not None:
            self.saved, damaged = await trio.to_thread.run_sync(
                read_state, self.state_file, check_saved, {},
                "apps rebuilt from a scan and what the backend reports running; the others stay stopped")
            if damaged is not None:
                self.bus.publish(damaged)
        sub = self.bus.subscribe(maxlen=4096, accept=lambda e: isinstance(e, _FOLLOWED) and e.app_id in self.records)
        nursery.start_soon(self._follow, sub)
        if self.writer is not None:
            await nursery.start(self.writer.run)

    async def on_stop(self) -> None:
        self._save()
        if self.writer is not None:
            await self.writer.flush()

    async def handle(self, msg: Any) -> Any:
        match msg:
            case ApplyScan(manifests, invalid):
                await self._apply_scan(manifests, dict(invalid))
            case ListApps():
                apps = [r.to_json() for r in sorted(self.records.values(), key=lambda r: r.id)]
                apps += [{"id": folder, "folder": folder, "state": "invalid", "errors": list(errs), "type": None}
                         for folder, errs in sorted(self.invalid.items())]
                return apps
            case GetApp(app_id):
                if app_id in self.records:
                    return self.records[app_id].to_json()
                if app_id in self.invalid:
                    return {"id": app_id, "folder": app_id, "state": "invalid", "errors": list(self.invalid[app_id])}
                raise UnknownApp(app_id)
            case _:
                raise BadRequest(f"registry: unknown message {type(msg).__name__}")

    async def _apply_scan(self, manifests: tuple[Manifest, ...], invalid: dict[str, tuple[str, ...]]) -> None:
        self.invalid = invalid
        found = {m.id: m for m in manifests}
        for app_id in self.records.keys() - found.keys():
            await self._remove(app_id)
        boot: list[str] = []
        for app_id, m in found.items():
            rec = self.records.get(app_id)
            if rec is not None and rec.type != m.type:
                await self._remove(app_id)
                rec = None
            if rec is None:
                saved = self.saved.get(app_id, {})
                rec = AppRecord(app_id, m.name, m.type, m.path.name, m.digest,
                                desired=saved.get("desired", "stopped"), port=saved.get("port"),
                                user_stopped=saved.get("user_stopped", False))
                self._fill(rec, m)
                self.records[app_id] = rec
                if app_id in self.apps:  # an actor that outlived a crash of this registry: take it over
                    await self._tell(app_id, ApplyManifest(m))
                else:
                    self.apps.start_child(ChildSpec(app_id, self._maker(app_id)))
                autostart = self.first_scan and m.autostart and not rec.user_stopped
                if m.type in ("service", "job") and (rec.desired == "running" or autostart):  # job: armed
                    boot.append(app_id)
            elif rec.digest != m.digest or rec.manifest != m:
                self._fill(rec, m)
                rec.digest = m.digest
                await self._tell(app_id, ApplyManifest(m))
        self.first_scan = False
        self._save()
        if self.writer is not None:
            await self.writer.flush()  # on disk before the boot starts it decided on
        self.bus.publish(ScanApplied(len(found), len(invalid)))
        for app_id in boot:  # bring back what was running before (adopted if still up)
            await self._tell(app_id, StartApp(app_id, reason="boot"))

    def _maker(self, app_id: str) -> Callable[[], Actor]:
        """Each (re)start builds the actor from the app's latest manifest."""

        def make() -> Actor:
            rec = self.records[app_id]
            assert rec.manifest is not None
            actor = self.factory(rec.manifest)
            rec.sandbox = getattr(actor, "sandbox", rec.sandbox)
            return actor

        return make

    def _fill(self, rec: AppRecord, m: Manifest) -> None:
        rec.manifest, rec.name, rec.folder = m, m.name, m.path.name
        rec.version, rec.description, rec.ui = m.version, m.description, m.ui
        rec.ttl = m.ttl if m.type == "streamlit" else None
        rec.permissions, rec.devices = m.permissions, m.devices
        rec.job = {**(rec.job or {}), "schedule": m.job.schedule, "timeout": m.job.timeout} if m.job else None
        rec.approved = not m.grants or (self.approvals is not None and self.approvals.is_approved(m.id, m.grants))

    async def _remove(self, app_id: str) -> None:
        """A folder went away: stop its app, then its actor."""
        if app_id in self.apps:
            with trio.move_on_after(15):
                try:
                    await self.apps.ref(app_id).ask(StopApp(app_id, reason="removed"), timeout=15)
                except Exception as exc:  # a stop that fails must not keep a removed app registered
                    log.info("stopping removed app %s: %s", app_id, exc)
            await self.apps.stop_child(app_id)
        self.records.pop(app_id, None)

    async def _tell(self, app_id: str, msg: Any) -> None:
        try:
            await self.apps.ref(app_id).tell(msg)
        except ActorError as exc:
            log.warning("cannot reach %s: %s", app_id, exc)

    async def _follow(self, sub: Any) -> None:
        """Mirror the app actors' events into the records (events come up, not asks)."""
        with sub:
            while True:
                for ev in await sub.receive_batch():
                    rec = self.records.get(ev.app_id)
                    if rec is not None:
                        self._update(rec, ev)

    def _update(self, rec: AppRecord, ev: Any) -> None:
        before = rec.persisted()
        match ev:
            case AppStateChanged(state=state, reason=reason):
                rec.state = state
                if reason == "adopted":  # found running by the backend: the user left it running
                    rec.desired = "running"
                elif state == "stopped" and (reason in _BY_USER or reason == "exited"):
                    # A stop from any state (running, backoff, quarantined, ...) sticks, and so does
                    # an app's own clean exit under on-failure: the next start of HomeHelper leaves it.
                    rec.desired = "stopped"
                    rec.user_stopped = rec.user_stopped or reason in _BY_USER
                if state in ("stopped", "install_failed", "config_error"):
                    rec.healthy = None
            case AppStarted(port=port, reason=reason):
                rec.port = port if port is not None else rec.port
                rec.last_error = None
                if reason in (*_BY_USER, "boot"):
                    rec.desired = "running"
                if reason in _BY_USER:
                    rec.user_stopped = False
            case AppStopped(reason=reason):
                rec.healthy = None
                if reason in _BY_USER or reason == "exited":
                    rec.desired = "stopped"
            case AppHealthChanged(healthy=healthy, detail=detail):
                rec.healthy, rec.health_detail = healthy, detail
            case PortAssigned(port=port):
                rec.port = port
            case AppInstalled(disk_bytes=disk):
                rec.disk_bytes = disk
            case AppCrashed(exit_status=status, log_tail=tail):
                rec.last_error = f"exited with status {status}" + (f": {tail.splitlines()[-1]}" if tail else "")
            case (AppConfigError(error=error) | AppInstallFailed(error=error) | AppQuarantined(error=error)
                  | JobFailed(error=error)):
                rec.last_error = error
            case AppAwaitingApproval(reason=reason, message=message):
                rec.approved, rec.last_error = False, message
                if reason in ("user", "boot", "api"):
                    rec.desired = "running"
            case AppApproved(grants=grants):
                rec.approved = rec.manifest is not None and normalize(rec.manifest.grants) == grants
                if rec.state == "awaiting_approval":
                    rec.last_error = None
            case AppExposureMeasured(exposure=exposure, level=level):
                rec.exposure, rec.exposure_level = exposure, level
            case JobScheduled(next_run=next_run, last_run=last_run):
                rec.job = {**(rec.job or {}), "next_run": next_run, "last_run": last_run}
            case JobFinished():
                rec.last_error = None
        if rec.type in ("service", "job") and rec.persisted() != before:
            self._save()

    def _save(self) -> None:
        """Hand what must survive a restart to the writer, when it changed."""
        data = {app_id: rec.persisted() for app_id, rec in sorted(self.records.items())}
        if data != self.saved and self.writer is not None:
            self.writer.submit(data)
            self.saved = data
