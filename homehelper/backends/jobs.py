"""How a job app's runs happen, on either backend, behind one small interface (`JobRunner`).

Under systemd a job is its app's unit made `Type=oneshot` (the same sandbox, limits and walls as
a service app: units.render_unit with `AppSpec.run_timeout`) plus a `hh-<id>.timer` with the
schedule as `OnCalendar=`: systemd starts the runs, also while HomeHelper is down, and the job's
actor looks at each one when its calendar says it is due. On the process backend the TTL clock
wakes the job's actor at the same calendar times (homehelper.oncalendar) and the actor starts the run.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import attrs
import trio

from ..errors import BackendError, UnsafeUnitValue
from ..oncalendar import JobSpec, parse_calendar
from .base import AppSpec, Backend, probe_delays, wait_pid_exit
from .process import ProcessBackend
from .systemd import SystemdBackend, parse_show

TIMER_PROPS = ("Id", "ActiveState", "SubState", "MainPID", "Result", "ExecMainCode", "ExecMainStatus",
               "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic")
SEEN_WITHIN = 15.0  # a timer's run shows up within this long of its elapse (AccuracySec=1s), or not at all


@attrs.frozen
class RunResult:
    """How one run ended: result is systemd's (success, exit-code, signal, timeout, ...) or start-failed."""

    result: str
    exit_status: int | None
    started: float  # wall clock
    duration: float  # seconds
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "success"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def timer_name(app_id: str, prefix: str) -> str:
    return f"{prefix}{app_id}.timer"


def render_timer(app_id: str, job: JobSpec, prefix: str) -> str:
    """The timer unit of a job. The schedule was parsed (homehelper.oncalendar): it holds only letters,
    digits and `*.,:/ -`, so no specifier, quote or line break reaches the file; checked again here."""
    parse_calendar(job.schedule)
    if not all(c.isalnum() or c in "*.,:/ -" for c in job.schedule):
        raise UnsafeUnitValue(f"schedule {job.schedule!r} holds characters a calendar event does not have",
                              field="schedule")
    return "\n".join([
        "# Written by HomeHelper; edits are overwritten. The app's manifest is the source.",
        "[Unit]",
        f"Description=Schedule of HomeHelper job {app_id}",
        "",
        "[Timer]",
        f"OnCalendar={job.schedule}",
        # systemd's default (1 min) would move a `*:*:0/10` run by up to a minute; 1 s keeps the
        # dashboard's "next run" true at the cost of a wake-up per run.
        "AccuracySec=1s",
        f"Unit={prefix}{app_id}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


class JobRunner(Protocol):
    fires_itself: bool  # True: the backend starts scheduled runs (a systemd timer); False: the actor does

    async def prepare(self, spec: AppSpec, job: JobSpec) -> None: ...
    async def arm(self, armed: bool) -> None: ...
    async def mark(self) -> Any:
        """Something that tells the runs so far from the next one (compare with `started_since`)."""
        ...
    async def start(self) -> None: ...
    async def started_since(self, mark: Any, within: float) -> bool:
        """True once a run began after `mark` (False if none did within `within` s)."""
        ...
    async def finish(self, timeout: float, started: float) -> RunResult: ...
    async def stop(self) -> None: ...
    async def remove(self) -> None: ...
    async def last(self) -> RunResult | None:
        """The last run the backend knows of that is over (systemd: runs while HomeHelper was down)."""
        ...


def runner_for(backend: Backend, app_id: str) -> JobRunner:
    if isinstance(backend, SystemdBackend):
        return SystemdJobs(backend, app_id)
    if isinstance(backend, ProcessBackend):
        return ProcessJobs(backend, app_id)
    raise BackendError(f"{app_id}: the {backend.name} backend cannot run jobs", app=app_id)


class ProcessJobs:
    """Runs started by the actor (woken by the TTL clock); the timeout is kept here."""

    fires_itself = False

    def __init__(self, backend: ProcessBackend, app_id: str) -> None:
        self.backend, self.app_id = backend, app_id

    async def prepare(self, spec: AppSpec, job: JobSpec) -> None:
        await self.backend.prepare(spec)

    async def arm(self, armed: bool) -> None:
        return None  # the actor's deadline in the TTL clock is the schedule

    async def mark(self) -> Any:
        return None

    async def start(self) -> None:
        await self.backend.start(self.app_id)

    async def started_since(self, mark: Any, within: float) -> bool:
        return True  # the actor started it

    async def finish(self, timeout: float, started: float) -> RunResult:
        status = await self.backend.status(self.app_id)
        timed_out = False
        with trio.move_on_after(timeout) as scope:
            await self.backend.wait_exit(status)
        if scope.cancelled_caught:
            timed_out = True
            await self.backend.stop(self.app_id)
        status = await self.backend.status(self.app_id)
        duration = time.time() - started
        if timed_out:
            return RunResult("timeout", status.exit_status, started, duration, f"ran longer than its timeout of "
                             f"{timeout:g} s and was ended")
        return RunResult(status.result, status.exit_status, started, duration)

    async def stop(self) -> None:
        await self.backend.stop(self.app_id)

    async def remove(self) -> None:
        await self.backend.remove(self.app_id)

    async def last(self) -> RunResult | None:
        return None  # runs happen only while HomeHelper runs: the actor saw each one


class SystemdJobs:
    """A oneshot service and its timer; runs are read back with `systemctl show`."""

    fires_itself = True

    def __init__(self, backend: SystemdBackend, app_id: str) -> None:
        self.backend, self.app_id = backend, app_id
        self.service = backend.unit(app_id)
        self.timer = timer_name(app_id, backend.prefix)

    async def prepare(self, spec: AppSpec, job: JobSpec) -> None:
        await self.backend.prepare(attrs.evolve(spec, run_timeout=job.timeout))
        text = render_timer(self.app_id, job, self.backend.prefix)
        if await trio.to_thread.run_sync(self.backend._write, self.timer, text):
            await self.backend.daemon_reload()

    async def arm(self, armed: bool) -> None:
        # enable: the timer comes back with the machine even without HomeHelper; --now: from now on.
        # Disarming a timer never written (a job removed before its first start) is no error.
        await self.backend.systemctl("enable" if armed else "disable", "--now", self.timer, check=armed)

    async def _show(self) -> dict[str, str]:
        proc = await self.backend.systemctl("show", "-p", ",".join(TIMER_PROPS), self.service, check=False)
        return (parse_show(proc.stdout.decode(errors="replace")) or [{}])[0]

    async def mark(self) -> Any:
        return (await self._show()).get("ExecMainStartTimestampMonotonic", "0")

    async def start(self) -> None:
        # Not `systemctl start`: for a oneshot it returns only when the run has ended.
        await self.backend.systemctl("start", "--no-block", self.service)

    async def started_since(self, mark: Any, within: float) -> bool:
        with trio.move_on_after(within):
            for delay in probe_delays(cap=1.0):
                props = await self._show()
                if props.get("ExecMainStartTimestampMonotonic", "0") != mark:
                    return True
                await trio.sleep(delay)
        return False

    async def finish(self, timeout: float, started: float) -> RunResult:
        # systemd ends it at TimeoutStartSec= (Result=timeout); the margin only guards against a lost run.
        with trio.move_on_after(timeout + 30):
            for delay in probe_delays(cap=1.0):
                props = await self._show()
                if props.get("ActiveState") not in ("activating", "deactivating", "active", "reloading"):
                    return self._result(props, started)
                pid = int(props.get("MainPID") or 0)
                if pid:
                    await wait_pid_exit(pid)  # a pidfd: no polling while it runs
                else:
                    await trio.sleep(delay)
        await self.stop()
        return RunResult("timeout", None, started, time.time() - started, "the run did not end: stopped")

    def _result(self, props: dict[str, str], fallback: float) -> RunResult:
        start_us = int(props.get("ExecMainStartTimestampMonotonic") or 0)
        exit_us = int(props.get("ExecMainExitTimestampMonotonic") or 0)
        # Monotonic stamps (the manager's clock is the machine's): turned into wall time here.
        started = time.time() - (time.monotonic() - start_us / 1e6) if start_us else fallback
        duration = max(0.0, (exit_us - start_us) / 1e6) if exit_us >= start_us > 0 else time.time() - started
        code = props.get("ExecMainCode", "0")
        status = int(props.get("ExecMainStatus") or 0) if code != "0" else None
        result = props.get("Result", "success")
        error = "ran longer than its timeout and was ended" if result == "timeout" else ""
        return RunResult(result, status, started, duration, error)

    async def last(self) -> RunResult | None:
        props = await self._show()
        if int(props.get("ExecMainStartTimestampMonotonic") or 0) == 0 or props.get("ActiveState") in (
                "activating", "deactivating"):
            return None
        return self._result(props, time.time())

    async def stop(self) -> None:
        await self.backend.stop(self.app_id)

    async def remove(self) -> None:
        await self.backend.systemctl("disable", "--now", self.timer, check=False)
        if await trio.to_thread.run_sync(self.backend._write, self.timer, None):
            await self.backend.daemon_reload()
        await self.backend.remove(self.app_id)
