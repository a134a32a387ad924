"""Messages about job apps: a run on a schedule or on request, and how each run ended."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command, Event


@attrs.frozen
class RunJob(Command):
    """Run the job now (the "run now" button, or its timer on the process backend: reason "schedule").
    A run already in progress is not doubled: the request is answered with the current snapshot."""

    app_id: str
    reason: str = "user"


@attrs.frozen
class JobStarted(Event):
    app_id: str
    reason: str  # schedule | user | api | cli


@attrs.frozen
class JobFinished(Event):
    """A run that succeeded (exit status 0 within its timeout)."""

    app_id: str
    duration: float  # seconds
    started: float  # wall clock of its start


@attrs.frozen
class JobFailed(Event):
    """A run that failed: a non-zero exit, a signal, its timeout, or a start that did not happen."""

    app_id: str
    result: str  # exit-code | signal | timeout | start-failed | ...
    exit_status: int | None
    duration: float
    started: float
    error: str = ""
    log_tail: str = ""


@attrs.frozen
class JobScheduled(Event):
    """When the job runs next (wall clock), or None: its schedule is paused or never elapses again;
    with the last run known ({result, exit_status, started, duration, error}), for the dashboard."""

    app_id: str
    next_run: float | None
    last_run: dict[str, Any] | None = None
    armed: bool = False  # its schedule runs it (start arms it, stop pauses it); run-now works either way
