"""The read model of app state: one record per app, updated from events as they are published.

The registry owns it (scans add and remove records, events change them); the web reads it
directly, with no ask and no mailbox hop: the app list, one app, where the proxy sends a page,
how long an opened UI has left, and whether an action has settled. Events are applied inside
`Broadcast.publish`, so an app actor's reply to a command never arrives before the change it
announced is visible here.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio
from trio.lowlevel import ParkingLot

from ..approvals import normalize
from ..errors import UnknownApp
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
    AppQuarantined,
    AppStarted,
    AppStateChanged,
    AppStopped,
    JobFailed,
    JobFinished,
    JobScheduled,
    PortAssigned,
    UIDeadlines,
)

log = logging.getLogger(__name__)

PERSISTED = ("name", "type", "folder", "digest", "desired", "port", "user_stopped")
# Reasons that carry the user's intent (the web, the CLI and the bus send "user").
_BY_USER = ("user", "api")
# What the read model follows: an app's bus traffic (readings, heartbeats) never touches it.
FOLLOWED = (AppStateChanged, AppStarted, AppStopped, AppHealthChanged, PortAssigned, AppInstalled, AppCrashed,
            AppConfigError, AppInstallFailed, AppQuarantined, AppAwaitingApproval, AppApproved, AppExposureMeasured,
            UIDeadlines, JobScheduled, JobFailed, JobFinished)
# An action is complete when its app leaves these.
TRANSIENT = ("starting", "stopping", "installing")


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
    # a Streamlit run's deadlines on trio's clock (UIDeadlines); the JSON shows the seconds left
    idle_due: float | None = attrs.field(default=None, repr=False, eq=False)
    life_due: float | None = attrs.field(default=None, repr=False, eq=False)

    def to_json(self) -> dict[str, Any]:
        # Read field by field, not by attrs.asdict: every refresh shows every app, and asdict's
        # generic walk was most of a refresh's cost. Tuples become lists, as in any JSON.
        data = {k: getattr(self, k) for k in _SHOWN}
        data["permissions"], data["devices"] = list(self.permissions), list(self.devices)
        data["has_ui"] = self.type == "streamlit" or self.ui is not None
        if self.job is not None:  # a job's state says whether a run is under way
            data["job"] = {**self.job, "running": self.state == "running"}
        data["has_options"] = bool(self.manifest is not None and self.manifest.options)  # the card's Settings
        if self.type == "streamlit":  # seconds before an idle stop and before the max-lifetime stop
            data["ttl_left"], data["max_lifetime_left"] = self.time_left()
        else:
            data["ttl_left"] = data["max_lifetime_left"] = None  # no idle stop
        return data

    def time_left(self) -> tuple[float, float]:
        """(idle, max lifetime) seconds left of this run, 0 when not running."""
        if self.state != "running" or self.idle_due is None or self.life_due is None:
            return 0.0, 0.0
        now = trio.current_time()
        return round(max(0.0, self.idle_due - now), 1), round(max(0.0, self.life_due - now), 1)

    def persisted(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PERSISTED}

    def apply(self, ev: Any) -> None:
        """One event's change to this record."""
        match ev:
            case AppStateChanged(state=state, reason=reason):
                self.state = state
                if reason == "adopted":  # found running by the backend: the user left it running
                    self.desired = "running"
                elif state == "stopped" and (reason in _BY_USER or reason == "exited"):
                    # A stop from any state (running, backoff, quarantined, ...) sticks, and so does
                    # an app's own clean exit under on-failure: the next start of HomeHelper leaves it.
                    self.desired = "stopped"
                    self.user_stopped = self.user_stopped or reason in _BY_USER
                if state in ("stopped", "install_failed", "config_error"):
                    self.healthy = None
            case AppStarted(port=port, reason=reason):
                self.port = port if port is not None else self.port
                self.last_error = None
                if reason in (*_BY_USER, "boot"):
                    self.desired = "running"
                if reason in _BY_USER:
                    self.user_stopped = False
            case AppStopped(reason=reason):
                # Also when HomeHelper stops a Streamlit app at shutdown (no state change then): the
                # proxy must not send a page to a port nobody listens on.
                self.state, self.healthy = "stopped", None
                if reason in _BY_USER or reason == "exited":
                    self.desired = "stopped"
            case AppHealthChanged(healthy=healthy, detail=detail):
                self.healthy, self.health_detail = healthy, detail
            case PortAssigned(port=port):
                self.port = port
            case AppInstalled(disk_bytes=disk):
                self.disk_bytes = disk
            case AppCrashed(exit_status=status, log_tail=tail, error=error):
                last_line = f": {tail.splitlines()[-1]}" if tail.strip() else ""
                self.last_error = error or f"exited with status {status}{last_line}"
            case (AppConfigError(error=error) | AppInstallFailed(error=error) | AppQuarantined(error=error)
                  | JobFailed(error=error)):
                self.last_error = error
            case AppAwaitingApproval(reason=reason, message=message):
                self.approved, self.last_error = False, message
                if reason in ("user", "boot", "api"):
                    self.desired = "running"
            case AppApproved(grants=grants):
                self.approved = self.manifest is not None and normalize(self.manifest.grants) == grants
                if self.state == "awaiting_approval":
                    self.last_error = None
            case AppExposureMeasured(exposure=exposure, level=level):
                self.exposure, self.exposure_level = exposure, level
            case UIDeadlines(idle_due=idle, life_due=life):
                self.idle_due, self.life_due = idle, life
            case JobScheduled(next_run=next_run, last_run=last_run, armed=armed):
                self.job = {**(self.job or {}), "next_run": next_run, "last_run": last_run, "armed": armed}
            case JobFinished():
                self.last_error = None


# What the API shows of a record: all but the parsed manifest and the deadlines on trio's clock.
_SHOWN = tuple(a.name for a in attrs.fields(AppRecord) if a.name not in ("manifest", "idle_due", "life_due"))


class AppsView:
    """Every app's record, and the folders whose manifest is invalid; read by the web as it is."""

    def __init__(self) -> None:
        self.records: dict[str, AppRecord] = {}
        self.invalid: dict[str, tuple[str, ...]] = {}
        self._changed = ParkingLot()  # woken at every applied event: `settled` waits on it

    def clear(self) -> None:
        self.records.clear()
        self.invalid.clear()
        self._changed.unpark_all()

    def apply(self, ev: Any) -> bool:
        """Apply an event if it is about a known app; True when what the registry saves changed."""
        rec = self.records.get(getattr(ev, "app_id", None))  # type: ignore[arg-type]
        if rec is None or not isinstance(ev, FOLLOWED):
            return False
        before = rec.persisted()
        rec.apply(ev)
        self._changed.unpark_all()
        return rec.type in ("service", "job") and rec.persisted() != before

    def get(self, app_id: str) -> AppRecord | None:
        return self.records.get(app_id)

    def app(self, app_id: str) -> dict[str, Any]:
        """One app as the API shows it (an invalid folder too); UnknownApp when there is none."""
        rec = self.records.get(app_id)
        if rec is not None:
            return rec.to_json()
        if app_id in self.invalid:
            return self._invalid(app_id, self.invalid[app_id])
        raise UnknownApp(app_id)

    def apps(self) -> list[dict[str, Any]]:
        apps = [r.to_json() for r in sorted(self.records.values(), key=lambda r: r.id)]
        return apps + [self._invalid(folder, errs) for folder, errs in sorted(self.invalid.items())]

    @staticmethod
    def _invalid(folder: str, errors: tuple[str, ...]) -> dict[str, Any]:
        return {"id": folder, "folder": folder, "state": "invalid", "errors": list(errors), "type": None}

    async def settled(self, app_id: str) -> None:
        """Return once the app is in no transient state (or gone): an action on it is complete."""
        while (rec := self.records.get(app_id)) is not None and rec.state in TRANSIENT:
            await self._changed.park()
