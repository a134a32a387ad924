"""ServiceApp: the actor of one long-running service app.

It installs the app's venv, runs it through the backend (systemd or process),
watches its main process and its health (service_health.py), and owns the restart policy:
backoff, then quarantine; a manual stop is never a crash; an app that cannot
start at all is a configuration error, not a tight restart loop. Every state
change is published as an event. After a HomeHelper restart a running app is
adopted as it is, never restarted.

One lock (`_op`) orders every transition: commands from the mailbox and the
background watchers (process exit, health, retry timer) never interleave.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import trio

from ..backends import logs
from ..backends.base import Backend, UnitStatus, app_spec, env_port, env_value, log_file
from ..backends.delivery import with_options
from ..backends.installer import Installer
from ..backends.journal import run_output
from ..backends.restarts import RestartTracker, judge_end
from ..bus.acl import app_secrets
from ..errors import BackendError, Conflict, DiskFull, HomeHelperError, InstallFailed
from ..manifest import Manifest
from ..messages import (
    AppConfigError,
    AppCrashed,
    AppHealthChanged,
    AppInstalled,
    AppInstallFailed,
    AppProcessChanged,
    AppQuarantined,
    AppStarted,
    AppStopped,
    EnableApp,
    PortAssigned,
)
from ..storage import atomic_write_json
from . import ActorError
from .app import AppActor, AppContext
from .service_health import alive_health, http_health, watchdog_health
from .statefile import check_mapping, is_port, read_state

log = logging.getLogger(__name__)


def _check_record(value: Any) -> tuple[dict[str, Any], list[str]]:
    def entry(key: str, v: Any) -> str | None:
        if key == "port":
            return None if v is None or is_port(v) else "must be a port number or null"
        if key == "stopped_by_user":
            return None if isinstance(v, bool) else "must be true or false"
        return "unknown field"

    return check_mapping(value, entry)


class ServiceApp(AppActor):
    port_kind = "service"
    # Timing; class attributes so a test can shorten them in a subclass.
    stable_after = 60.0  # healthy this long resets backoff and intensity
    quarantine_retry = 600.0
    startup_window = 15.0  # a death this soon after start, never healthy, may be a config error
    first_probe_every = 0.5  # health polls before the first success (then manifest.health.interval)

    def __init__(self, manifest: Manifest, ctx: AppContext) -> None:
        super().__init__(manifest, ctx)
        self.backend: Backend = ctx.need_backend()
        self.installer: Installer = ctx.installer or Installer(ctx.config)
        self.desired = "stopped"
        self.status = UnitStatus()
        self.healthy: bool | None = None
        self.healthy_since: float | None = None
        self.started_at = 0.0
        self.log_offset = 0
        self.log_since = 0.0  # wall time the current run began: its output in the journal
        disk = self.installer.marker(manifest).get("disk_bytes")
        self.disk_bytes = disk if isinstance(disk, int) and not isinstance(disk, bool) else 0
        self.tracker = self._new_tracker()
        self._op = trio.Lock()
        self._kick = trio.Event()
        self._run_scope = trio.CancelScope()  # health and log watch of the current run
        self._retry_scope = trio.CancelScope()
        self._refresh_due = False  # the watcher should read the backend's status (after a start)
        self._generation = 0  # bumped by every start and stop, to spot a status read that went stale
        self._nursery: trio.Nursery | None = None
        self.record_path = ctx.config.run_dir / "services" / f"{manifest.id}.json"

    def _new_tracker(self) -> RestartTracker:
        r = self.manifest.restart
        return RestartTracker(intensity=r.intensity, period=r.period, backoff_max=r.backoff_max,
                              stable_after=self.stable_after, quarantine_retry=self.quarantine_retry)

    @property
    def log_path(self) -> Path:
        return log_file(self.ctx.config.logs_dir(self.app_id))

    async def _output(self) -> str:
        """This run's output so far (the journal's or its file's)."""
        return await run_output(self.backend, self.app_id, self.log_path, self.log_offset, self.log_since)

    async def _read_record(self) -> dict[str, Any]:
        """run/services/<id>.json; a damaged one is set aside and said (the port is then read from the process)."""
        record, damaged = await trio.to_thread.run_sync(
            read_state, self.record_path, _check_record, {}, "the port is taken from the running process, if any")
        if damaged is not None:
            self.ctx.emit(damaged)
        return record

    async def _record(self, **extra: Any) -> None:
        """What a restarted HomeHelper needs: the port (to adopt the app) and `stopped_by_user` (so an
        enabled app the user stopped is not started again). Written when it changes only (an fsync per
        start would cost more than the start on an SD card)."""
        record = {"port": self.port, **extra}
        if await self._read_record() != record:
            await trio.to_thread.run_sync(atomic_write_json, self.record_path, record)

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(desired=self.desired, healthy=self.healthy, pid=self.status.pid, cgroup=self.status.cgroup,
                    restarts=self.tracker.restarts, exit_status=self.status.exit_status,
                    enabled=self.status.enabled, disk_bytes=self.disk_bytes, backend=self.backend.name,
                    unit=self.status.active)
        return snap

    # --- life of the actor ------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.status = await self.backend.status(self.app_id)
        if self.status.running:  # adoption: it kept running while HomeHelper was away
            port = (await self._read_record()).get("port")
            self.port = port if isinstance(port, int) else env_port(self.status.pid)
            if self.port is not None:  # no AppStarted for an adopted run: where it listens
                self.ctx.emit(PortAssigned(self.app_id, self.port))
            self.desired = "running"
            self.started_at = trio.current_time()
            self.log_offset = logs.size(self.log_path)
            self.log_since = time.time()
            self.set_state("starting", "adopted")
            self.ctx.emit(AppProcessChanged(self.app_id, self.status.pid, self.status.cgroup))
            self._begin_run()
            self.measure_exposure(nursery)  # from the cache when its unit is unchanged
            if self.ctx.identities is not None:  # its Redis user may be gone with a Redis restart
                nursery.start_soon(self.ctx.identities.adopt, self.app_id, env_value(self.status.pid, "HH_REDIS_URL"))
        nursery.start_soon(self._watch_process)
        # Enabled (start at boot) but found down, say after a crash while HomeHelper was away. The
        # registry restarts what the user left running and the manifest's autostart apps.
        # Not when the user stopped it: a stop sticks across HomeHelper restarts.
        if not self.status.running and self.status.enabled and not (await self._read_record()).get("stopped_by_user"):
            nursery.start_soon(self._start_quietly, "boot")

    async def _start_quietly(self, reason: str) -> None:
        try:
            await self.start(reason)
        except (BackendError, Conflict, DiskFull) as exc:  # already an event and a state; a log line too
            log.warning("%s: %s", self.app_id, exc)

    async def handle_other(self, msg: Any) -> Any:
        match msg:
            case EnableApp(_, enabled):
                return await self.enable(enabled)
        return await super().handle_other(msg)

    # --- commands ---------------------------------------------------------------
    async def start(self, reason: str) -> Any:
        async with self._op:
            if self.state in ("starting", "running"):
                return self.snapshot()
            self._retry_scope.cancel()
            self.desired = "running"
            if self.held_for_approval(reason):
                return self.snapshot()
            self.tracker = self._new_tracker()
            if not self.installer.is_current(self.manifest):
                await self._install(force=False)
            await self._launch(reason)
            return self.snapshot()

    async def stop(self, reason: str) -> Any:
        async with self._op:
            self.desired = "stopped"
            self._retry_scope.cancel()
            self._run_scope.cancel()
            was_running = self.status.running or self.state in ("starting", "running")
            if was_running:
                self.set_state("stopping", reason)
                await self.backend.stop(self.app_id)
                self._stopped_status()
            if reason == "removed":  # its folder is gone: so goes its unit
                await self.backend.remove(self.app_id)
            if reason in ("user", "api"):
                await self._record(stopped_by_user=True)
            self.set_state("stopped", reason)
            if was_running:
                self.ctx.emit(AppStopped(self.app_id, reason, self.status.exit_status))
            return self.snapshot()

    async def open_ui(self) -> Any:
        """The app's own page, proxied by the dashboard under /apps/<id>/ui/ (no idle TTL for services)."""
        if self.manifest.ui is None:
            raise Conflict(f"{self.app_id} has no UI (its manifest has no 'ui' path)", app=self.app_id)
        if self.state != "running":
            raise Conflict(f"{self.app_id} is {self.state}: start it to open its UI", app=self.app_id)
        return {"app_id": self.app_id, "url": f"/apps/{self.app_id}/ui/", "state": self.state, "ttl_left": None}

    async def install(self, force: bool) -> Any:
        async with self._op:
            was_running = self.status.running or self.state in ("starting", "running")
            if was_running:  # never rebuild a venv under a running app
                self._run_scope.cancel()
                await self.backend.stop(self.app_id)
                self._stopped_status()
            await self._install(force)
            if was_running and not self.held_for_approval("reinstalled"):  # adopted under an older manifest
                await self._launch("reinstalled")
            return self.snapshot()

    async def enable(self, enabled: bool) -> Any:
        async with self._op:
            if enabled:
                self.check_approved()  # at boot systemd would start it without asking us
            if enabled and not self.installer.is_current(self.manifest):
                await self._install(force=False)  # at boot systemd starts it without asking us
            if self.port is None:
                await self.allocate_port()
            await self.backend.prepare(await with_options(app_spec(self.manifest, self.ctx.config, self.port or 0,
                                                                   secrets=await self._secrets()),
                                                          self.manifest, self.ctx.config))
            await self.backend.enable(self.app_id, enabled)
            await self._refresh_status()
            return self.snapshot()

    async def apply_manifest(self, manifest: Manifest) -> Any:
        async with self._op:
            changed = manifest.digest != self.manifest.digest
            self.manifest = manifest
            if not changed:
                return
            self.tracker = self._new_tracker()
            if self.state == "config_error":
                self.set_state("stopped", "manifest changed")  # a fix deserves a new try, on request
            elif self.state == "awaiting_approval" and not self.unapproved():
                self.last_error = None
                self.set_state("stopped", "manifest changed")
            elif self.state in ("starting", "running"):
                # Limits, env or entry changed: they only apply to a new process.
                self._run_scope.cancel()
                self.set_state("stopping", "manifest changed")
                await self.backend.stop(self.app_id)
                self._stopped_status()
                if self.held_for_approval("manifest changed"):  # it asks for more: the user says so first
                    return
                if not self.installer.is_current(self.manifest):
                    await self._install(force=False)
                await self._launch("manifest changed")

    # --- internals (called with _op held) ---------------------------------------
    async def _install(self, force: bool) -> None:
        previous = self.state
        self.set_state("installing")
        try:
            self.disk_bytes = await self.installer.install(self.manifest, self.ctx.emit, force)
        except (InstallFailed, DiskFull) as exc:
            tail = str(exc.detail.get("output_tail", ""))
            self.last_error = exc.message
            self.desired = "stopped"
            self.set_state("install_failed", exc.message)
            self.ctx.emit(AppInstallFailed(self.app_id, exc.message, tail))
            raise
        self.ctx.emit(AppInstalled(self.app_id, self.disk_bytes))
        self.set_state(previous if previous not in ("install_failed", "installing") else "stopped", "installed")

    async def _launch(self, reason: str) -> None:
        """Start the process (install done); health decides when it counts as running."""
        config = self.ctx.config
        if not self.manifest.entry_path.is_file():
            return self._config_error(f"entry point {self.manifest.entry} is missing", "")
        await self.allocate_port()
        assert self.port is not None
        spec = await with_options(app_spec(self.manifest, config, self.port, secrets=await self._secrets()),
                                  self.manifest, config)
        try:
            await self.backend.prepare(spec)
        except BackendError as exc:  # a folder it cannot write: the error names it and the fix
            return self._config_error(exc.message, "")
        self.measure_exposure(self._nursery)
        await self._record()
        self.log_offset = logs.size(self.log_path)
        self.log_since = time.time()
        self.started_at = trio.current_time()
        self._generation += 1
        self.set_state("starting", reason)
        try:
            await self.backend.start(self.app_id)
        except BackendError as exc:
            await self._refresh_status()
            return self._config_error(exc.message, await self._output())
        self.ctx.emit(AppStarted(self.app_id, self.port, reason))
        self._begin_run()
        # The watcher reads the new PID: a `systemctl show` while the app boots is slow, and the
        # caller need not wait for it.
        self._refresh_due = True
        self._kick.set()

    async def _secrets(self) -> tuple[tuple[str, str], ...]:
        return await app_secrets(self.ctx.identities, self.ctx.config.redis_url, self.app_id)

    def _begin_run(self) -> None:
        self.healthy, self.healthy_since = None, None
        self._run_scope = trio.CancelScope()
        assert self._nursery is not None
        self._nursery.start_soon(self._run_watch, self._run_scope)

    async def _run_watch(self, scope: trio.CancelScope) -> None:
        """Health and log size of one run; cancelling `scope` ends both."""
        watch = {"http": http_health, "process": alive_health, "watchdog": watchdog_health}[self.manifest.health.type]
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch, self, scope)
                nursery.start_soon(self._log_watch)

    async def _refresh_status(self) -> UnitStatus:
        self._set_status(await self.backend.status(self.app_id))
        return self.status

    def _set_status(self, status: UnitStatus) -> None:
        previous, self.status = self.status, status
        if status.pid != previous.pid:
            self.ctx.emit(AppProcessChanged(self.app_id, status.pid, status.cgroup))

    def _stopped_status(self) -> None:
        """After a stop that succeeded the state is known; asking systemctl again would only cost time."""
        pid, self._refresh_due = self.status.pid, False
        self._generation += 1
        self.healthy = None
        self.status = UnitStatus(active="inactive", sub="dead", enabled=self.status.enabled)
        if pid is not None:
            self.ctx.emit(AppProcessChanged(self.app_id, None, None))

    def _config_error(self, error: str, tail: str) -> None:
        self.desired = "stopped"
        self.last_error = error
        self._run_scope.cancel()
        self.set_state("config_error", error)
        self.ctx.emit(AppConfigError(self.app_id, error, tail))

    async def _failed(self, why: str) -> None:
        """The run ended (or was ended) against the user's wish: classify, then retry or give up."""
        self._run_scope.cancel()
        tail = await self._output()
        st, now = self.status, trio.current_time()
        if self.healthy and st.result == "watchdog":  # systemd ended it: say so, as the process backend does
            self.ctx.emit(AppHealthChanged(self.app_id, False, "watchdog: no heartbeat in time"))
        self.healthy = None
        # "process" health says nothing about start-up: a quick death with an ImportError is still a
        # configuration error, not a crash to retry.
        never_healthy = self.healthy_since is None or self.manifest.health.type == "process"
        verdict, reason = judge_end(why, st, self.manifest.restart.policy, tail, never_healthy,
                                    now - self.started_at, self.startup_window)
        if verdict == "config_error":
            return self._config_error(reason, tail)
        if verdict == "exited":
            self.desired = "stopped"
            self.set_state("stopped", "exited")
            self.ctx.emit(AppStopped(self.app_id, "exited", st.exit_status))
            return
        self.last_error = reason
        if verdict == "given_up":
            self.desired = "stopped"
            self.ctx.emit(AppCrashed(self.app_id, st.exit_status, self.tracker.restarts, None, tail[-2000:], reason))
            self.set_state("stopped", "crashed")
            self.ctx.emit(AppStopped(self.app_id, "crashed", st.exit_status))
            return
        if self.healthy_since is not None and self.manifest.health.type != "http":
            self.tracker.healthy_for(now - self.healthy_since)  # no polls told it along the way
        state, delay = self.tracker.crashed(now)
        self.ctx.emit(AppCrashed(self.app_id, st.exit_status, self.tracker.restarts, delay, tail[-2000:], reason))
        self.set_state(state, reason)
        if state == "quarantined":
            self.ctx.emit(AppQuarantined(self.app_id, self.tracker.restarts, delay, reason))
        self._retry_scope = trio.CancelScope()
        assert self._nursery is not None
        self._nursery.start_soon(self._retry_after, delay, self._retry_scope)

    # --- background tasks -------------------------------------------------------
    async def _watch_process(self) -> None:
        """Notice the main process ending: the backend watches it cheaply (no systemctl polling)."""
        while True:
            if self._refresh_due:
                # Ask outside the lock, so a StopApp arriving now does not wait for systemctl show.
                generation = self._generation
                status = await self.backend.status(self.app_id)
                async with self._op:
                    if generation != self._generation or not self._refresh_due:
                        continue  # a command came in between: what it did is newer than `status`
                    self._refresh_due = False
                    self._set_status(status)
                    if not status.running and self.desired == "running" and self.state in ("starting", "running"):
                        await self._failed("exited")  # it died before we even saw its PID
                continue
            if not self.status.running:
                await self._kick.wait()
                self._kick = trio.Event()
                continue
            watched = self.status
            await self.backend.wait_exit(watched)
            async with self._op:
                if self.status.pid != watched.pid:
                    continue  # stopped or restarted by a command meanwhile
                await self._refresh_status()
                if self.status.running:
                    continue  # restarted outside HomeHelper (systemctl restart): adopt the new process
                if self.desired == "running" and self.state in ("starting", "running"):
                    await self._failed("exited")
                elif self.state in ("starting", "running"):
                    self.set_state("stopped", "exited")

    async def _retry_after(self, delay: float, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(delay)
            async with self._op:
                if self.desired != "running" or self.state not in ("backoff", "quarantined"):
                    return
                if self.held_for_approval("restart"):  # its manifest asks for more since it last ran
                    return
                try:
                    await self._launch("restart")
                except (HomeHelperError, ActorError) as exc:  # no port, a reload failed: try again later
                    await self._failed(f"restart failed: {exc}")

    async def _log_watch(self) -> None:
        def rotated() -> None:
            self.log_offset = 0

        await logs.keep_capped(self.log_path, on_rotate=rotated)

