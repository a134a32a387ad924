"""Judging a service app: is it healthy, did it crash or can it not start at
all, and when should it be tried again. Pure logic, timed by the caller, so
the policy is tested on a mock clock.
"""

from __future__ import annotations

from collections import deque

import attrs

from .base import UnitStatus

# Lines in the log tail of a run that died at once which mean "this will never start":
# retrying cannot help until someone changes the app.
STARTUP_ERRORS = ("ModuleNotFoundError", "ImportError", "SyntaxError", "IndentationError", "TabError",
                  "can't open file", "No such file or directory")
EXEC_FAILED = (203, 200)  # systemd's EXIT_EXEC and EXIT_CHDIR: the program could not even be run


def startup_error(log_since_start: str, exit_status: int | None, result: str) -> str | None:
    """Why an app that never became healthy cannot start, or None if it may just have crashed."""
    if result == "exit-code" and exit_status in EXEC_FAILED:
        return f"the program could not be executed (status {exit_status})"
    for line in reversed(log_since_start.splitlines()):
        if any(marker in line for marker in STARTUP_ERRORS):
            return line.strip()[:300]
    return None


def judge_end(why: str, status: UnitStatus, policy: str, log_since_start: str, never_healthy: bool,
              ran_for: float, startup_window: float) -> tuple[str, str]:
    """What a run that ended against the user's wish means, with a reason:
    'exited' (a clean exit 0, a stop), 'config_error' (it cannot start at all),
    'given_up' (restart policy 'no') or 'crashed' (retry under the policy)."""
    if why == "exited" and status.result == "success" and status.exit_status in (0, None) and policy != "always":
        return "exited", "exited"
    if why == "exited" and never_healthy and ran_for < startup_window:
        error = startup_error(log_since_start, status.exit_status, status.result)
        if error is not None:
            return "config_error", error
    reason = f"exited: exit status {status.exit_status} ({status.result})" if why == "exited" else why
    if why == "exited" and status.result == "watchdog":  # systemd's WatchdogSec= ran out: it sent SIGABRT
        reason = "watchdog: no heartbeat in time (stopped by systemd)"
    return ("given_up" if policy == "no" else "crashed"), reason


@attrs.define
class RestartTracker:
    """Backoff 1 s doubling to `backoff_max`; more than `intensity` crashes within
    `period` (or one crash right after a quarantine retry) means quarantine.
    A run healthy for `stable_after` seconds wipes the slate."""

    intensity: int = 5
    period: float = 600.0
    backoff_max: float = 300.0
    backoff_initial: float = 1.0
    stable_after: float = 60.0
    quarantine_retry: float = 600.0
    recent: deque[float] = attrs.field(factory=deque)
    delay: float = attrs.field(default=None)
    probation: bool = False  # the last restart was a quarantine retry
    restarts: int = 0

    def __attrs_post_init__(self) -> None:
        if self.delay is None:
            self.delay = self.backoff_initial

    def reset(self) -> None:
        self.recent.clear()
        self.delay = self.backoff_initial
        self.probation = False

    def healthy_for(self, seconds: float) -> None:
        """Called while the app is healthy; past `stable_after` the crash history is forgotten."""
        if seconds >= self.stable_after and (self.recent or self.probation or self.delay != self.backoff_initial):
            self.reset()

    def crashed(self, now: float) -> tuple[str, float]:
        """('backoff', delay) or ('quarantined', retry_in) for a crash at `now`."""
        self.restarts += 1
        self.recent.append(now)
        while self.recent and self.recent[0] <= now - self.period:
            self.recent.popleft()
        if self.probation or len(self.recent) > self.intensity:
            self.recent.clear()
            self.delay = self.backoff_initial
            self.probation = True
            return "quarantined", self.quarantine_retry
        delay = self.delay
        self.delay = min(self.delay * 2, self.backoff_max)
        return "backoff", delay
