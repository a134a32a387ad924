"""JobApp on the process backend: the TTL clock fires each run at the calendar's times, a failing run is
a JobFailed event and a notification at a real HTTP receiver, a run that outlives its timeout is ended,
stop pauses the schedule. (The systemd half: tests/backends/test_jobs_systemd.py.)"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.app import AppContext
from homehelper.actors.job import MAX_WAIT, JobApp
from homehelper.backends import ProcessBackend
from homehelper.backends.installer import Installer
from homehelper.config import Config, NotifyConfig
from homehelper.manifest import Manifest, load_manifest
from homehelper.messages import (
    GetApp,
    GetDeadlines,
    JobFailed,
    JobFinished,
    JobScheduled,
    JobStarted,
    RunJob,
    StartApp,
    StopApp,
)
from homehelper.serve import Overrides, build_tree
from tests.backends.apps import make_config
from tests.fixtures.common import example_app

# Appends when it ran to its data folder; FAIL=n exits with n; SLEEP=s sleeps first.
JOB = """
import os, sys, time
time.sleep(float(os.environ.get("SLEEP", "0")))
with open(os.path.join(os.environ["HH_DATA_DIR"], "runs"), "a") as f:
    f.write(f"{time.time()}\\n")
print("job ran", flush=True)
if os.environ.get("FAIL"):
    print("RuntimeError: the meter did not answer", file=sys.stderr, flush=True)
    sys.exit(int(os.environ["FAIL"]))
"""


def write_job(apps_dir: Path, app_id: str, schedule: str, **manifest: Any) -> Manifest:
    folder = apps_dir / app_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(JOB))
    (folder / "homehelper.json").write_text(json.dumps({"id": app_id, "type": "job", "schedule": schedule,
                                                        **manifest}))
    return load_manifest(folder, apps_dir)


class Harness:
    def __init__(self, sup: Supervisor, ctx: AppContext) -> None:
        self.sup, self.ctx = sup, ctx
        self.events: list[Any] = []
        self.timed: list[tuple[float, Any]] = []  # (trio's clock, event)
        self.changed = trio.Event()

    def add(self, manifest: Manifest, cls: type[JobApp] = JobApp) -> Any:
        # Named by app id, as the registry names app actors: a job addresses itself by it.
        return self.sup.start_child(ChildSpec(manifest.id, lambda: cls(manifest, self.ctx)))

    def of(self, kind: type, app_id: str) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.app_id == app_id]

    async def until(self, kind: type, app_id: str, count: int = 1, timeout: float = 30) -> list[Any]:
        """Wait for the events themselves (no polling: a mock clock may have hours to go)."""
        with trio.fail_after(timeout):
            while len(self.of(kind, app_id)) < count:
                await self.changed.wait()
        return self.of(kind, app_id)


@asynccontextmanager
async def harness(config: Config, backend: Any, notify: NotifyConfig | None = None) -> AsyncIterator[Harness]:
    """serve's tree without a scanner: the tests add their job actors under its apps supervisor."""
    broadcast = Broadcast()
    if notify is not None:
        config = attrs.evolve(config, notify=notify)  # serve's notifier reads notify.* at start
    async with trio.open_nursery() as nursery:
        rt = await build_tree(config, nursery, Overrides(backend=backend, broadcast=broadcast, scan=False,
                                                         sensors=False))
        h = Harness(rt.apps, rt.ctx)

        async def collect() -> None:
            with broadcast.subscribe() as sub:
                async for event in sub:
                    h.events.append(event)
                    h.timed.append((trio.current_time(), event))
                    h.changed.set()
                    h.changed = trio.Event()

        nursery.start_soon(collect)
        await trio.lowlevel.checkpoint()
        yield h
        nursery.cancel_scope.cancel()


@pytest.fixture
def config(state_root: Path) -> Config:
    return make_config(state_root)


def runs(config: Config, app_id: str) -> list[float]:
    try:
        return [float(x) for x in (config.data_dir(app_id) / "runs").read_text().split()]
    except FileNotFoundError:
        return []


async def test_a_job_every_two_seconds_runs_at_the_calendars_times(config: Config) -> None:
    manifest = write_job(config.apps_dir, "meter", "*:*:0/2")
    backend = ProcessBackend(config.run_dir / "procs")
    async with harness(config, backend) as h:
        ref = h.add(manifest)
        snap = await ref.ask(StartApp("meter", reason="boot"), timeout=120)  # arms it; no run now
        assert snap["state"] == "scheduled" and snap["job"]["armed"] is True
        assert not h.of(JobStarted, "meter")
        done = await h.until(JobFinished, "meter", count=2)
        assert [e.reason for e in h.of(JobStarted, "meter")[:2]] == ["schedule", "schedule"]
        # Each run began just after an even second, as `*:*:0/2` says (systemd's calendar).
        for t in runs(config, "meter")[:2]:
            assert t % 2 < 1.5, t
        assert done[0].duration < 10
        nexts = [e.next_run for e in h.of(JobScheduled, "meter") if e.next_run is not None]
        assert nexts and all(n % 2 == 0 for n in nexts)
        snap = await ref.ask(GetApp("meter"))
        assert snap["job"]["last_run"]["result"] == "success" and snap["job"]["next_run"] > snap["job"]["last_run"][
            "started"]
        # stop pauses the schedule: no deadline left, no run after it
        await ref.ask(StopApp("meter"), timeout=30)
        assert "job:meter" not in await h.ctx.ttl.ask(GetDeadlines())  # type: ignore[union-attr]
        count = len(runs(config, "meter"))
        await trio.sleep(2.5)
        assert len(runs(config, "meter")) == count
        record = json.loads((config.run_dir / "jobs" / "meter.json").read_text())
        assert record["last"]["result"] == "success"


async def test_a_failing_job_is_an_event_and_a_notification_at_a_real_receiver(config: Config, receiver: Any) -> None:
    manifest = write_job(config.apps_dir, "pump", "daily", env={"FAIL": "3"})
    backend = ProcessBackend(config.run_dir / "procs")
    async with harness(config, backend, NotifyConfig(urls=(receiver.url(),))) as h:
        ref = h.add(manifest)
        snap = await ref.ask(RunJob("pump"), timeout=120)  # "run now": the schedule stays paused
        assert snap["state"] == "running" and snap["job"]["armed"] is False
        failed = (await h.until(JobFailed, "pump"))[0]
        assert failed.result == "exit-code" and failed.exit_status == 3
        assert "the meter did not answer" in failed.log_tail
        [(_path, body)] = await receiver.wait(1)
        assert "pump" in body["title"] and "job failed" in body["title"]
        assert "exit status 3" in body["message"] and body["type"] == "failure"
        snap = await ref.ask(GetApp("pump"))
        assert snap["state"] == "stopped" and snap["job"]["last_run"]["exit_status"] == 3
        assert snap["last_error"] == "exited with status 3"


@pytest.fixture
def installed(config: Config) -> Manifest:
    """The job's venv made beforehand in real time: the install's own timeouts must not meet a mock clock."""
    manifest = write_job(config.apps_dir, "slow", "*:*:0/10", timeout=30, env={"SLEEP": "3600"})
    trio.run(Installer(config).install, manifest, lambda e: None)
    return manifest


BASE = datetime(2026, 11, 28, 11, 59, 55, tzinfo=UTC)


class MockWallJob(JobApp):
    def wall(self) -> datetime:  # the wall clock follows trio's mock clock
        return BASE + timedelta(seconds=trio.current_time())


@pytest.fixture
def patient_clock() -> trio.testing.MockClock:
    """Jumps once nothing happened for 0.1 s of real time: a start's worker-thread hops finish first
    (with 0, each hop would skip the clock to the job's next 10-second tick)."""
    return trio.testing.MockClock(autojump_threshold=0.1)


async def test_on_a_mock_clock_the_deadline_is_the_next_elapse_and_a_run_past_its_timeout_is_ended(
        config: Config, installed: Manifest, patient_clock: trio.testing.MockClock) -> None:
    backend = ProcessBackend(config.run_dir / "procs")
    async with harness(config, backend) as h:
        ref = h.add(installed, MockWallJob)
        # No timeout on the asks: the clock would jump to it while the actor waits on a worker thread.
        await ref.ask(StartApp("slow", reason="boot"), timeout=math.inf)
        now = trio.current_time()  # the tree's other timers may have moved the autojump clock meanwhile
        left = (await h.ctx.ttl.ask(GetDeadlines()))["job:slow"]  # type: ignore[union-attr]
        assert abs(left - (5 - now)) < 0.01  # 11:59:55 -> 12:00:00
        failed = (await h.until(JobFailed, "slow", timeout=600))[0]
        assert failed.result == "timeout" and "timeout of 30 s" in failed.error
        assert h.of(JobStarted, "slow")[0].reason == "schedule"
        snap = await ref.ask(GetApp("slow"), timeout=math.inf)
        assert snap["state"] == "scheduled" and snap["job"]["last_run"]["result"] == "timeout"
        await ref.ask(StopApp("slow"), timeout=math.inf)


async def test_the_example_job_runs(config: Config) -> None:
    manifest = example_app("example-job", config.apps_dir)
    assert manifest.type == "job" and manifest.job is not None and manifest.job.schedule == "*:0/15"
    async with harness(config, ProcessBackend(config.run_dir / "procs")) as h:
        ref = h.add(manifest)
        await ref.ask(RunJob("example-job"), timeout=120)
        await h.until(JobFinished, "example-job")
        assert (config.data_dir("example-job") / "load.csv").read_text().count("\n") == 1


@pytest.fixture
def installed_daily(config: Config) -> Manifest:
    manifest = write_job(config.apps_dir, "nightly", "daily")
    trio.run(Installer(config).install, manifest, lambda e: None)
    return manifest


async def test_a_far_run_is_reached_in_capped_waits_that_look_at_the_wall_clock_again(
        config: Config, installed_daily: Manifest, autojump_clock: trio.testing.MockClock) -> None:
    backend = ProcessBackend(config.run_dir / "procs")
    async with harness(config, backend) as h:
        ref = h.add(installed_daily, MockWallJob)
        await ref.ask(StartApp("nightly", reason="boot"), timeout=math.inf)
        assert (await h.ctx.ttl.ask(GetDeadlines(), timeout=math.inf))["job:nightly"] == MAX_WAIT  # type: ignore
        await h.until(JobStarted, "nightly", timeout=10**6)
        # 11:59:55 to midnight: twelve capped waits that ran nothing, then the run at 00:00:00.
        midnight = BASE + timedelta(seconds=5, hours=12)
        (when,) = [t for t, e in h.timed if isinstance(e, JobStarted)]
        assert abs(when - midnight.timestamp() + BASE.timestamp()) < 1, when
        before = [e.next_run for t, e in h.timed if isinstance(e, JobScheduled) and t < when and e.next_run]
        assert before and set(before) == {midnight.timestamp()}
        assert h.of(JobStarted, "nightly")[0].reason == "schedule"
        await ref.ask(StopApp("nightly"), timeout=math.inf)
