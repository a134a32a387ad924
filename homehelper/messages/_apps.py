"""Messages about apps: discovery, lifecycle, health, install, ports, deadlines."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command, Event

# --- commands ---------------------------------------------------------------


@attrs.frozen
class Rescan(Command):
    """Scan apps/ again and report what changed."""


@attrs.frozen
class StartApp(Command):
    app_id: str
    reason: str = "user"


@attrs.frozen
class StopApp(Command):
    app_id: str
    reason: str = "user"


@attrs.frozen
class RestartApp(Command):
    app_id: str
    reason: str = "user"


@attrs.frozen
class InstallApp(Command):
    app_id: str
    force: bool = False


@attrs.frozen
class OpenUI(Command):
    """Start a Streamlit app if needed; reply once it is ready (or fail)."""

    app_id: str


@attrs.frozen
class KeepAlive(Command):
    """User activity on an app's UI: pushes its idle deadline back."""

    app_id: str


@attrs.frozen
class ApproveApp(Command):
    """The user approves the permissions and devices the app's manifest asks for.

    `grants`: the list the user was shown; refused when it is not what the manifest asks for now.
    None: whatever the manifest asks for now (a caller that showed nothing must not send it).
    """

    app_id: str
    grants: tuple[str, ...] | None = None


@attrs.frozen
class GetApp(Command):
    """Ask: one app's snapshot (a dict)."""

    app_id: str


@attrs.frozen
class ListApps(Command):
    """Ask: every app's snapshot (a list of dicts)."""


@attrs.frozen
class ApplyManifest(Command):
    """To an app actor: its manifest changed on disk."""

    manifest: Any  # homehelper.manifest.Manifest


@attrs.frozen
class AllocatePort(Command):
    """Ask: a free port for this app ('service' or 'streamlit'); the same one again if it has one."""

    app_id: str
    kind: str
    avoid: tuple[int, ...] = ()  # ports found taken by the caller, e.g. a failed bind


@attrs.frozen
class ScheduleDeadline(Command):
    """Tell the TTL clock: send `message` to `owner` after `delay` s, unless touched or cancelled."""

    key: str
    delay: float
    owner: Any  # ActorRef
    message: Any


@attrs.frozen
class TouchDeadline(Command):
    """Push a deadline back to now + `delay` (or its own delay)."""

    key: str
    delay: float | None = None


@attrs.frozen
class CancelDeadline(Command):
    key: str


@attrs.frozen
class GetDeadlines(Command):
    """Ask: {key: seconds left} for every pending deadline."""


# --- events -----------------------------------------------------------------


@attrs.frozen
class AppDiscovered(Event):
    app_id: str
    name: str
    type: str
    path: str


@attrs.frozen
class ManifestChanged(Event):
    app_id: str
    digest: str


@attrs.frozen
class AppRemoved(Event):
    app_id: str


@attrs.frozen
class ScanApplied(Event):
    """The registry took a scan in: `apps` valid apps, `invalid` broken folders (what tests and the
    dashboard can wait on instead of polling)."""

    apps: int
    invalid: int


@attrs.frozen
class AppInvalid(Event):
    """A folder in apps/ whose manifest is wrong; `errors` names each field."""

    folder: str
    errors: tuple[str, ...]
    app_id: str | None = None


@attrs.frozen
class AppStateChanged(Event):
    app_id: str
    state: str
    previous: str
    reason: str = ""


@attrs.frozen
class AppStarted(Event):
    app_id: str
    port: int | None
    reason: str = "user"


@attrs.frozen
class AppStopped(Event):
    """reason: user, idle_ttl, max_lifetime, crashed, evicted, shutdown, removed."""

    app_id: str
    reason: str
    exit_status: int | None = None


@attrs.frozen
class AppHealthChanged(Event):
    app_id: str
    healthy: bool
    detail: str = ""


@attrs.frozen
class AppCrashed(Event):
    app_id: str
    exit_status: int | None
    restarts: int
    next_try_in: float | None
    log_tail: str = ""
    error: str = ""  # the app actor's own words for it (its last_error), what the app card shows


@attrs.frozen
class AppQuarantined(Event):
    app_id: str
    restarts: int
    retry_in: float
    error: str = ""


@attrs.frozen
class AppConfigError(Event):
    """The app cannot start at all (missing entry point, import error): not retried."""

    app_id: str
    error: str
    log_tail: str = ""


@attrs.frozen
class AppInstallProgress(Event):
    app_id: str
    step: str
    detail: str = ""


@attrs.frozen
class AppInstalled(Event):
    app_id: str
    disk_bytes: int = 0


@attrs.frozen
class AppInstallFailed(Event):
    app_id: str
    error: str
    output_tail: str = ""


@attrs.frozen
class AppAwaitingApproval(Event):
    """A start was held: the app asks for `grants` the user has not approved (reason: what started it)."""

    app_id: str
    grants: tuple[str, ...]
    reason: str = "user"
    message: str = ""


@attrs.frozen
class AppApproved(Event):
    """The user approved exactly `grants` (sorted) for this app."""

    app_id: str
    grants: tuple[str, ...]


@attrs.frozen
class AppExposureMeasured(Event):
    """`systemd-analyze security` of the app's unit, measured after the unit was written.

    exposure: 0.0 (walled in) to 10.0 (exposed); level: systemd's word for it (OK, MEDIUM, EXPOSED, UNSAFE).
    """

    app_id: str
    exposure: float
    level: str


@attrs.frozen
class PortAssigned(Event):
    app_id: str
    port: int


@attrs.frozen
class AppProcessChanged(Event):
    """An app's main process (and cgroup, under systemd) changed; None when it has none.

    The sensor actor follows these to measure each app's CPU, memory and tasks.
    """

    app_id: str
    pid: int | None
    cgroup: str | None = None  # e.g. /sys/fs/cgroup/user.slice/.../hh-sensor-logger.service


@attrs.frozen
class ApplyScan(Command):
    """From the scanner to the registry: every valid manifest and every invalid folder now."""

    manifests: tuple[Any, ...]  # homehelper.manifest.Manifest
    invalid: tuple[tuple[str, tuple[str, ...]], ...]  # (folder, errors)
