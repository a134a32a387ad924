"""JobApp: the actor of one job app, a program run on a schedule (`schedule`, `timeout`).

States: stopped (schedule paused), scheduled (waiting for its next run), running (a run in
progress), plus installing, install_failed, config_error and awaiting_approval as for a service.

- StartApp arms the schedule (and, unless it comes from the boot restore, runs the job now);
  StopApp ends a run in progress and pauses the schedule; RunJob runs it now either way.
- The TTL clock wakes the actor at each elapse of the schedule (homehelper.oncalendar, the same
  parser on both backends). On the process backend the actor then starts the run; under systemd the
  job's timer has started it already (homehelper.backends.jobs) and the actor reads how it went.
- A failed run (non-zero exit, signal, timeout) is a JobFailed event, which notifies like a crash;
  a run that ends well is JobFinished. The last run is kept in run/jobs/<id>.json, written once a run.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ..backends import logs
from ..backends.base import app_spec, log_file
from ..backends.installer import Installer
from ..backends.jobs import SEEN_WITHIN, JobRunner, RunResult, runner_for
from ..bus.acl import app_secrets
from ..errors import BackendError, DiskFull, InstallFailed
from ..manifest import Manifest
from ..messages import (
    AppConfigError,
    AppInstalled,
    AppInstallFailed,
    AppStarted,
    CancelDeadline,
    JobFailed,
    JobFinished,
    JobScheduled,
    JobStarted,
    RunJob,
    ScheduleDeadline,
)
from ..oncalendar import Calendar, JobSpec
from ..storage import atomic_write_json
from . import ActorError, ActorRef
from .app import AppActor, AppContext
from .statefile import check_mapping, read_state

log = logging.getLogger(__name__)
_LAST = ("result", "exit_status", "started", "duration", "error")
# The longest the TTL clock sleeps for a job before the actor looks at the wall clock again: a Pi has no
# real-time clock, so its wall clock can jump (NTP after boot) while trio's monotonic clock does not.
MAX_WAIT = 3600.0


def _check_record(value: Any) -> tuple[dict[str, Any], list[str]]:
    return check_mapping(value, lambda key, v: None if key in ("armed", "last") else "unknown field")


def local_now() -> datetime:
    """The machine's wall clock in its own zone (systemd's timers read calendars in local time)."""
    return datetime.now().astimezone()


class JobApp(AppActor):
    port_kind = "service"

    def __init__(self, manifest: Manifest, ctx: AppContext) -> None:
        super().__init__(manifest, ctx)
        self.backend = ctx.need_backend()
        self.installer: Installer = ctx.installer or Installer(ctx.config)
        self.runner: JobRunner = runner_for(self.backend, manifest.id)
        self.armed = False
        self.running = False
        self.next_run: float | None = None
        self.last: dict[str, Any] | None = None
        self.prepared_digest: str | None = None
        self._mark: Any = None  # the runner's record of the last run seen (systemd: its start stamp)
        self._due: datetime | None = None  # the elapse the pending deadline is for
        self._op = trio.Lock()
        self._run_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self.record_path = ctx.config.run_dir / "jobs" / f"{manifest.id}.json"

    @property
    def job(self) -> JobSpec:
        assert self.manifest.job is not None, "a job manifest has its job fields"
        return self.manifest.job

    @property
    def calendar(self) -> Calendar:
        return self.job.calendar

    def wall(self) -> datetime:
        """Now, for the calendar; a test's subclass follows trio's (mock) clock instead."""
        return local_now()

    @property
    def log_path(self) -> Path:
        return log_file(self.ctx.config.logs_dir(self.app_id))

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(desired=self.desired, backend=self.backend.name, job=self.job_info())
        return snap

    def job_info(self) -> dict[str, Any]:
        return {"schedule": self.job.schedule, "timeout": self.job.timeout, "armed": self.armed,
                "running": self.running, "next_run": self.next_run, "last_run": self.last}

    def me(self) -> ActorRef[Any]:
        if self.ctx.apps is None:
            raise TypeError("a job needs AppContext.apps to address itself")
        return self.ctx.apps.ref(self.app_id)

    # --- life of the actor ------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        record, damaged = await trio.to_thread.run_sync(read_state, self.record_path, _check_record, {},
                                                        "the last run is forgotten")
        if damaged is not None:
            self.ctx.emit(damaged)
        last = record.get("last")
        if isinstance(last, dict) and set(last) <= set(_LAST):
            self.last = last
        await self._runs_while_away()
        self._announce()

    async def _runs_while_away(self) -> None:
        """Under systemd the timer runs the job while HomeHelper is down: the last such run is shown,
        and a failed one alerts as if HomeHelper had seen it."""
        try:
            seen = await self.runner.last()
            self._mark = await self.runner.mark()
        except BackendError as exc:
            log.warning("%s: cannot read its last run: %s", self.app_id, exc)
            return
        known = self.last.get("started") if self.last else None
        if seen is not None and (not isinstance(known, (int, float)) or seen.started > known + 1):
            await self._finished(seen, "")

    async def on_stop(self) -> None:
        self._cancel_deadline()

    def _announce(self) -> None:
        self.ctx.emit(JobScheduled(self.app_id, self.next_run, self.last))

    async def handle_other(self, msg: Any) -> Any:
        match msg:
            case RunJob(_, reason):
                return await self.run_now(reason)
        return await super().handle_other(msg)

    # --- commands ---------------------------------------------------------------
    async def start(self, reason: str) -> Any:
        async with self._op:
            self.desired = "running"
            if not await self._ready(reason):
                return self.snapshot()
            if not self.armed:
                await self.runner.arm(True)
                self.armed = True
                self._mark = await self.runner.mark()
                self.ctx.emit(AppStarted(self.app_id, None, reason))
            self._schedule()
            if not self.running:
                self.set_state("scheduled", reason)
        if reason != "boot":
            return await self.run_now(reason)
        return self.snapshot()

    async def stop(self, reason: str) -> Any:
        async with self._op:
            self.desired = "stopped"
            self._run_scope.cancel()
            self._cancel_deadline()
            self.next_run = None
            if self.running:
                await self.runner.stop()
            if self.armed or reason == "removed":
                await self.runner.arm(False)
            self.armed = False
            if reason == "removed":
                await self.runner.remove()
            self.set_state("stopped", reason)
            self._announce()
            return self.snapshot()

    async def run_now(self, reason: str) -> Any:
        """Run it now (reason "schedule": the TTL clock says the calendar elapsed)."""
        async with self._op:
            if reason == "schedule":
                if not self.armed:
                    return self.snapshot()  # a deadline left over from before a stop
                if self._due is not None and self.wall() < self._due - timedelta(seconds=1):
                    self._schedule()  # woken before its time: a capped wait, or the wall clock moved
                    return self.snapshot()
                self._schedule(after_due=True)
            if self.running:
                return self.snapshot()  # never two runs of one job at once
            if reason != "schedule" and not await self._ready(reason):
                return self.snapshot()
            self.running = True
            self._run_scope = trio.CancelScope()
            assert self._nursery is not None
            by_timer = reason == "schedule" and self.runner.fires_itself
            if not by_timer:
                self._begin(reason)
            self._nursery.start_soon(self._watch_run, reason, by_timer, self._run_scope)
            return self.snapshot()

    async def apply_manifest(self, manifest: Manifest) -> Any:
        async with self._op:
            changed = manifest.digest != self.manifest.digest
            self.manifest = manifest
            if not changed or manifest.job is None:
                return
            if self.state in ("config_error", "install_failed"):
                self.set_state("stopped", "manifest changed")
            if self.armed:  # a new schedule, timeout or limits: its units are written again
                if not await self._ready("manifest changed"):
                    return
                self._schedule()

    async def install(self, force: bool) -> Any:
        async with self._op:
            await self._install(force)
            return self.snapshot()

    # --- internals (called with _op held) ---------------------------------------
    async def _ready(self, reason: str) -> bool:
        """Approved, installed, units written: False (and a state saying why) otherwise."""
        if self.held_for_approval(reason):
            return False
        try:
            if not self.installer.is_current(self.manifest):
                await self._install(force=False)
        except (InstallFailed, DiskFull):
            return False
        if self.prepared_digest == self.manifest.digest:
            return True
        if not self.manifest.entry_path.is_file():
            self._config_error(f"entry point {self.manifest.entry} is missing")
            return False
        secrets = await app_secrets(self.ctx.identities, self.ctx.config.redis_url, self.app_id)
        try:
            await self.runner.prepare(app_spec(self.manifest, self.ctx.config, 0, secrets=secrets), self.job)
        except BackendError as exc:
            self._config_error(exc.message)
            return False
        self.prepared_digest = self.manifest.digest
        self.measure_exposure(self._nursery)
        return True

    async def _install(self, force: bool) -> None:
        previous = self.state
        self.set_state("installing")
        try:
            disk = await self.installer.install(self.manifest, self.ctx.emit, force)
        except (InstallFailed, DiskFull) as exc:
            self.last_error = exc.message
            self.desired = "stopped"
            self.set_state("install_failed", exc.message)
            self.ctx.emit(AppInstallFailed(self.app_id, exc.message, str(exc.detail.get("output_tail", ""))))
            raise
        self.ctx.emit(AppInstalled(self.app_id, disk))
        self.set_state(previous if previous not in ("install_failed", "installing") else "stopped", "installed")

    def _config_error(self, error: str) -> None:
        self.last_error = error
        self.set_state("config_error", error)
        self.ctx.emit(AppConfigError(self.app_id, error, ""))

    def _begin(self, reason: str) -> None:
        self.set_state("running", reason)
        self.ctx.emit(JobStarted(self.app_id, reason))

    def _schedule(self, after_due: bool = False) -> None:
        """The next elapse as a deadline in the TTL clock. After a firing, counted from the elapse it
        was for, so a clock that fires a little early cannot fire the same elapse twice."""
        now = self.wall()
        base = max(now, self._due) if after_due and self._due is not None else now
        due = self.calendar.next_elapse(base)
        self._due = due
        self.next_run = due.timestamp() if due is not None else None
        self._announce()
        if due is None or self.ctx.ttl is None:
            return
        delay = min(max(0.0, (due - now).total_seconds()), MAX_WAIT)
        self._tell_nowait(self.ctx.ttl, ScheduleDeadline(self._key, delay, self.me(), RunJob(self.app_id, "schedule")))

    def _cancel_deadline(self) -> None:
        self._due = None
        if self.ctx.ttl is not None:
            self._tell_nowait(self.ctx.ttl, CancelDeadline(self._key))

    @property
    def _key(self) -> str:
        return f"job:{self.app_id}"

    @staticmethod
    def _tell_nowait(ref: ActorRef[Any], msg: Any) -> None:
        try:
            ref.tell_nowait(msg)
        except ActorError as exc:  # the clock is stopping or swamped: the next start schedules again
            log.warning("could not tell %s %s: %s", ref.name, type(msg).__name__, exc)

    # --- a run --------------------------------------------------------------------
    async def _watch_run(self, reason: str, by_timer: bool, scope: trio.CancelScope) -> None:
        offset = logs.size(self.log_path)
        started = time.time()
        result: RunResult | None = None

        def rotated() -> None:
            nonlocal offset
            offset = 0

        with scope:
            try:
                async with trio.open_nursery() as nursery:
                    # A run's log is capped as a service's is (a day-long run printing in a loop).
                    nursery.start_soon(partial(logs.keep_capped, self.log_path, on_rotate=rotated))
                    result = await self._one_run(reason, by_timer, started)
                    nursery.cancel_scope.cancel()
            finally:
                self.running = False
        if result is None:  # stopped (the stop says so), or no run came from the timer
            return
        async with self._op:
            self._mark = await self.runner.mark()
            await self._finished(result, logs.read_since(self.log_path, offset)[-2000:])

    async def _one_run(self, reason: str, by_timer: bool, started: float) -> RunResult | None:
        try:
            if by_timer:  # systemd's timer starts it: see that it did
                if not await self.runner.started_since(self._mark, SEEN_WITHIN):
                    return None
                async with self._op:
                    self._begin(reason)
            else:
                mark = await self.runner.mark()
                await self.runner.start()
                if not await self.runner.started_since(mark, SEEN_WITHIN):
                    raise BackendError(f"{self.app_id}: the run did not begin within {SEEN_WITHIN:g} s")
            return await self.runner.finish(self.job.timeout, started)
        except BackendError as exc:
            return RunResult("start-failed", None, started, time.time() - started, exc.message)

    async def _finished(self, result: RunResult, tail: str) -> None:
        self.last = {k: v for k, v in result.to_json().items() if k in _LAST}
        if result.ok:
            self.ctx.emit(JobFinished(self.app_id, result.duration, result.started))
        else:
            why = result.error or (f"exited with status {result.exit_status}" if result.result == "exit-code"
                                   else f"ended: {result.result}")
            self.last_error = why
            self.ctx.emit(JobFailed(self.app_id, result.result, result.exit_status, result.duration, result.started,
                                    why, tail))
        self.set_state("scheduled" if self.armed else "stopped", "run ended")
        self._announce()
        await trio.to_thread.run_sync(atomic_write_json, self.record_path, {"armed": self.armed, "last": self.last})
