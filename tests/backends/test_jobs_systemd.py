"""Job apps under a real systemd user manager: a timer and a oneshot service with the sandbox and limits
of a service app, `systemd-analyze verify` clean; the timer runs the job at the calendar's times, the actor
reads each run back; run-now, a failing run and a run past its timeout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from homehelper.backends import SystemdBackend
from homehelper.backends.base import app_spec
from homehelper.backends.jobs import SystemdJobs, timer_name
from homehelper.config import Config
from homehelper.messages import GetApp, JobFailed, JobFinished, JobStarted, RunJob, StartApp, StopApp
from tests.actors.test_job import harness, runs, write_job
from tests.backends.apps import make_config, wait_until

pytestmark = pytest.mark.systemd


@pytest.fixture
def config(state_root: Path) -> Config:
    return make_config(state_root)


async def test_a_jobs_timer_and_oneshot_unit_verify_with_the_service_sandbox(
        systemd_backend: SystemdBackend, systemd_user: Any, config: Config) -> None:
    manifest = write_job(config.apps_dir, "tick", "Mon..Fri 07:00", timeout=30, resources={"memory_mb": 64})
    assert manifest.job is not None
    jobs = SystemdJobs(systemd_backend, "tick")
    await jobs.prepare(app_spec(manifest, config, 0, Path(sys.executable)), manifest.job)
    service = systemd_backend.unit_dir / systemd_backend.unit("tick")
    timer = systemd_backend.unit_dir / timer_name("tick", systemd_backend.prefix)
    verify = await trio.run_process(["systemd-analyze", "--user", "verify", str(timer), str(service)],
                                    env=systemd_user.env, capture_stderr=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert not [ln for ln in verify.stderr.decode().splitlines() if "Unknown key" in ln or "gnoring" in ln]
    text = service.read_text()
    for line in ("Type=oneshot", "TimeoutStartSec=30000ms", "MemoryMax=64M", "ProtectSystem=strict",
                 "PrivateNetwork=yes", "Restart=no", "CapabilityBoundingSet="):
        assert line in text.splitlines(), line
    assert "Type=exec" not in text
    assert "OnCalendar=Mon..Fri 07:00" in timer.read_text().splitlines()
    await jobs.remove()
    assert not timer.exists() and not service.exists()


async def test_the_timer_runs_a_job_every_two_seconds_and_run_now_and_failures_are_seen(
        systemd_backend: SystemdBackend, systemd_user: Any, config: Config) -> None:
    tick = write_job(config.apps_dir, "tick", "*:*:0/2")
    bad = write_job(config.apps_dir, "bad", "daily", env={"FAIL": "3"})
    slow = write_job(config.apps_dir, "slow", "daily", timeout=2, env={"SLEEP": "60"})
    timer = timer_name("tick", systemd_backend.prefix)
    async with harness(config, systemd_backend) as h:
        ref = h.add(tick)
        snap = await ref.ask(StartApp("tick", reason="boot"), timeout=120)  # armed: the timer is on
        assert snap["state"] == "scheduled" and snap["backend"] == "systemd"
        assert systemd_user.systemctl("is-active", timer).stdout.strip() == "active"
        assert systemd_user.systemctl("is-enabled", timer).stdout.strip() == "enabled"
        await h.until(JobFinished, "tick", count=2)
        assert [e.reason for e in h.of(JobStarted, "tick")[:2]] == ["schedule", "schedule"]
        for t in runs(config, "tick")[:2]:  # systemd started them just after even seconds
            assert t % 2 < 1.5, t
        snap = await ref.ask(GetApp("tick"))
        assert snap["job"]["last_run"]["result"] == "success" and 0 <= snap["job"]["last_run"]["duration"] < 10
        await ref.ask(StopApp("tick"), timeout=30)
        assert systemd_user.systemctl("is-active", timer).stdout.strip() == "inactive"

        bad_ref = h.add(bad)
        snap = await bad_ref.ask(RunJob("bad"), timeout=120)
        assert snap["state"] == "running"
        failed = (await h.until(JobFailed, "bad"))[0]
        assert failed.result == "exit-code" and failed.exit_status == 3
        assert "the meter did not answer" in failed.log_tail
        assert h.of(JobStarted, "bad")[0].reason == "user"

        slow_ref = h.add(slow)
        await slow_ref.ask(RunJob("slow"), timeout=120)
        failed = (await h.until(JobFailed, "slow"))[0]
        assert failed.result == "timeout" and failed.duration < 30
        for app_id, r in (("tick", ref), ("bad", bad_ref), ("slow", slow_ref)):
            await r.ask(StopApp(app_id, reason="removed"), timeout=30)
        assert not (systemd_backend.unit_dir / timer).exists()


async def test_a_run_that_failed_while_homehelper_was_away_is_shown_and_alerts(
        systemd_backend: SystemdBackend, systemd_user: Any, config: Config) -> None:
    away = write_job(config.apps_dir, "away", "*:*:0/2", env={"FAIL": "5"})
    service = systemd_backend.unit("away")

    def started() -> int:
        out = systemd_user.systemctl("show", "-p", "ExecMainStartTimestampMonotonic", "--value", service)
        return int(out.stdout.strip() or 0)

    async with harness(config, systemd_backend) as h:
        await h.add(away).ask(StartApp("away", reason="boot"), timeout=120)
        seen = (await h.until(JobFailed, "away"))[0]
    # HomeHelper is gone; its timer is not: wait for a run it did not see.
    first = started()
    await wait_until(lambda: started() != first and systemd_user.systemctl("is-active", service).stdout.strip()
                     in ("inactive", "failed"), 30)
    async with harness(config, systemd_backend) as h:
        ref = h.add(away)
        failed = (await h.until(JobFailed, "away"))[0]  # from on_start: no new run needed
        assert failed.exit_status == 5 and failed.started > seen.started
        snap = await ref.ask(GetApp("away"))
        assert snap["job"]["last_run"]["started"] == failed.started
        await ref.ask(StopApp("away", reason="removed"), timeout=30)
