"""ServiceApp end to end, on both backends: install, start, health, kill -9,
crash loop to quarantine, manual stop, config errors, adoption after a restart."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from homehelper.actors import ChildSpec, Restart
from homehelper.actors.service import ServiceApp
from homehelper.backends import logs
from homehelper.config import Config
from homehelper.errors import InstallFailed
from homehelper.manifest import Manifest, load_manifest
from homehelper.messages import (
    AppConfigError,
    AppCrashed,
    AppHealthChanged,
    AppInstalled,
    AppInstallFailed,
    ApplyManifest,
    AppProcessChanged,
    AppQuarantined,
    AppStarted,
    AppStateChanged,
    AppStopped,
    EnableApp,
    GetApp,
    InstallApp,
    StartApp,
    StopApp,
)
from homehelper.serve import Runtime
from tests.backends.apps import CRASHING_APP, HEALTHY_APP, IMPORT_ERROR_APP, make_config, wait_until, write_app
from tests.fixtures.common import example_app
from tests.fixtures.tree import Recorder, open_tree


class Harness:
    """`serve`'s tree without a scan: each test adds its app actors, named `app:<id>`, under `sup`."""

    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt, self.recorder = rt, recorder
        self.config, self.backend, self.broadcast = rt.config, rt.ctx.backend, rt.broadcast
        self.sup, self.ctx = rt.apps, rt.ctx

    @property
    def events(self) -> list[Any]:
        return self.recorder.events

    def add(self, manifest: Manifest, cls: type[ServiceApp] = ServiceApp) -> Any:
        return self.sup.start_child(ChildSpec(f"app:{manifest.id}", lambda: cls(manifest, self.ctx),
                                              Restart.PERMANENT))

    async def state(self, ref: Any) -> dict[str, Any]:
        return await ref.ask(GetApp(ref.name), timeout=10)

    async def until_state(self, ref: Any, *states: str, timeout: float = 20) -> dict[str, Any]:
        """The app's snapshot once it is in one of `states` (now, or on its next AppStateChanged to one)."""
        with trio.fail_after(timeout):
            while True:
                mark = len(self.events)
                snap = await self.state(ref)
                if snap["state"] in states:
                    return snap
                await self.recorder.wait_after(mark, lambda e: isinstance(e, AppStateChanged) and e.state in states,
                                               snap["id"], timeout=timeout)

    def of(self, kind: type, app_id: str) -> list[Any]:
        return self.recorder.of(kind, app_id)

    async def until_event(self, kind: type, app_id: str, count: int = 1, timeout: float = 20) -> list[Any]:
        return await self.recorder.wait(kind, app_id, count=count, timeout=timeout)


@asynccontextmanager
async def harness(config: Config, backend: Any) -> AsyncIterator[Harness]:
    async with open_tree(config, backend=backend, scan=False) as (rt, recorder):
        yield Harness(rt, recorder)


@pytest.fixture
def config(state_root: Path) -> Config:
    return make_config(state_root)


async def test_sensor_logger_installs_runs_heals_after_kill_9(any_backend: Any, config: Config) -> None:
    manifest = example_app("sensor-logger", config.apps_dir)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("sensor-logger"), timeout=60)
        snap = await h.until_state(ref, "running")
        assert snap["healthy"] is True and snap["pid"] and snap["backend"] == any_backend.name
        assert h.of(AppInstalled, "sensor-logger") and h.of(AppStarted, "sensor-logger")[0].port == snap["port"]
        assert h.of(AppProcessChanged, "sensor-logger")[-1].pid == snap["pid"]
        readings = config.data_dir("sensor-logger") / "readings.jsonl"
        await wait_until(readings.exists)
        os.kill(snap["pid"], signal.SIGKILL)
        crash = (await h.until_event(AppCrashed, "sensor-logger"))[0]
        assert crash.exit_status == 9 and crash.next_try_in == 1.0
        await h.until_event(AppHealthChanged, "sensor-logger", count=2)
        again = await h.until_state(ref, "running")
        assert again["pid"] != snap["pid"] and again["port"] == snap["port"]
        lines = logs.tail(config.logs_dir("sensor-logger") / "app.log", 5)
        assert any("serving on" in line for line in lines)
        await ref.ask(StopApp("sensor-logger"))


@pytest.mark.slow
async def test_crash_loop_backs_off_then_quarantines(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "crashy", CRASHING_APP,
                         restart={"intensity": 2, "period": 60, "backoff_max": 2})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        started = trio.current_time()
        await ref.ask(StartApp("crashy"), timeout=60)
        quarantined = (await h.until_event(AppQuarantined, "crashy", timeout=30))[0]
        crashes = h.of(AppCrashed, "crashy")
        assert [c.next_try_in for c in crashes] == [1.0, 2.0, ServiceApp.quarantine_retry]
        assert all(c.exit_status == 3 and "sensor bus lost" in c.log_tail for c in crashes)
        assert quarantined.restarts == 3 and quarantined.retry_in == ServiceApp.quarantine_retry
        assert trio.current_time() - started >= 3.0  # it waited 1 s, then 2 s: no tight loop
        snap = await h.state(ref)
        assert snap["state"] == "quarantined" and snap["pid"] is None
        await trio.sleep(1.5)
        assert len(h.of(AppStarted, "crashy")) == 3  # quarantine holds: no start since
        await ref.ask(StopApp("crashy"))
        assert (await h.state(ref))["state"] == "stopped"


async def test_manual_stop_stays_stopped(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("web"), timeout=60)
        pid = (await h.until_state(ref, "running"))["pid"]
        snap = await ref.ask(StopApp("web"))
        assert snap["state"] == "stopped" and snap["pid"] is None
        await trio.sleep(2.5)  # longer than the first backoff
        assert (await h.state(ref))["state"] == "stopped"
        assert not h.of(AppCrashed, "web") and len(h.of(AppStarted, "web")) == 1
        assert [e.reason for e in h.of(AppStopped, "web")] == ["user"]
        assert not (await any_backend.status("web")).running
        assert _gone(pid)


async def test_import_error_is_a_config_error_not_a_loop(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "broken", IMPORT_ERROR_APP)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("broken"), timeout=60)
        error = (await h.until_event(AppConfigError, "broken"))[0]
        assert "definitely_not_a_module_hh" in error.error and "Traceback" in error.log_tail
        await trio.sleep(2)
        snap = await h.state(ref)
        assert snap["state"] == "config_error" and len(h.of(AppStarted, "broken")) == 1
        assert not h.of(AppCrashed, "broken")


async def test_unhealthy_app_is_restarted(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "sick", HEALTHY_APP, env={"FAIL_HEALTH": "1"},
                         health={"interval": 1, "timeout": 1, "failures": 2, "grace": 1})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("sick"), timeout=60)
        unhealthy = (await h.until_event(AppHealthChanged, "sick"))[0]
        assert unhealthy.healthy is False and "503" in unhealthy.detail
        await h.until_event(AppStarted, "sick", count=2)  # restarted after its backoff
        await ref.ask(StopApp("sick"))


async def test_bad_requirements_leave_install_failed(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "badreq", HEALTHY_APP)
    (manifest.path / "requirements.txt").write_text("--no-index\nhh-no-such-package-anywhere==9.9\n")
    manifest = load_manifest(manifest.path, config.apps_dir)
    other = write_app(config.apps_dir, "web", HEALTHY_APP)
    async with harness(config, any_backend) as h:
        ref, other_ref = h.add(manifest), h.add(other)
        await other_ref.ask(StartApp("web"), timeout=60)
        with pytest.raises(InstallFailed):
            await ref.ask(StartApp("badreq"), timeout=60)
        failed = (await h.until_event(AppInstallFailed, "badreq"))[0]
        assert "No matching distribution found for hh-no-such-package-anywhere" in failed.output_tail
        snap = await h.state(ref)
        assert snap["state"] == "install_failed" and "requirements failed" in snap["last_error"]
        assert (await h.until_state(other_ref, "running"))["healthy"]  # the other app is untouched
        await other_ref.ask(StopApp("web"))


async def test_restarted_homehelper_adopts_running_apps(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("web"), timeout=60)
        first = await h.until_state(ref, "running")
        await ref.ask(EnableApp("web", True))
    # HomeHelper is gone (its whole tree cancelled); the app ran on. A new tree adopts it.
    assert (await any_backend.status("web")).running
    fresh_backend = _fresh(any_backend)
    async with harness(config, fresh_backend) as h2:
        ref = h2.add(manifest)
        snap = await h2.until_state(ref, "running")
        assert snap["pid"] == first["pid"] and snap["port"] == first["port"] and snap["enabled"]
        assert not h2.of(AppStarted, "web")  # adopted, not restarted
        os.kill(snap["pid"], signal.SIGKILL)  # and it is watched like its own
        await h2.until_event(AppCrashed, "web")
        assert (await h2.until_state(ref, "running"))["pid"] != snap["pid"]
        await ref.ask(StopApp("web"))


async def test_forced_reinstall_of_a_running_app(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("web"), timeout=60)
        first = await h.until_state(ref, "running")
        await ref.ask(InstallApp("web", force=True), timeout=60)
        assert len(h.of(AppInstalled, "web")) == 2
        again = await h.until_state(ref, "running")
        assert again["pid"] != first["pid"] and not h.of(AppCrashed, "web")
        await ref.ask(StopApp("web"))


def _fresh(backend: Any) -> Any:
    from homehelper.backends import ProcessBackend, SystemdBackend

    if isinstance(backend, SystemdBackend):
        return SystemdBackend("user", environ=backend.environ, prefix=backend.prefix)
    return ProcessBackend(backend.state_dir)


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie this test process has not reaped."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_enabled_app_found_down_is_started_and_removed_app_loses_its_unit(any_backend: Any,
                                                                                config: Config) -> None:
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(EnableApp("web", True), timeout=30)
        await ref.ask(StartApp("web"), timeout=60)
        pid = (await h.until_state(ref, "running"))["pid"]
    os.kill(pid, signal.SIGKILL)  # it dies while HomeHelper is away
    await wait_until(lambda: _gone(pid))
    async with harness(config, _fresh(any_backend)) as h2:
        ref = h2.add(manifest)
        snap = await h2.until_state(ref, "running")
        assert snap["pid"] != pid and h2.of(AppStarted, "web")[0].reason == "boot"
        await ref.ask(StopApp("web", reason="removed"))
        status = await h2.backend.status("web")
        assert not status.loaded and not status.running and not status.enabled


async def test_changed_manifest_restarts_a_running_app_with_its_new_settings(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP, env={"MODE": "one"})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("web"), timeout=60)
        first = await h.until_state(ref, "running")
        changed = write_app(config.apps_dir, "web", HEALTHY_APP, env={"MODE": "two"})
        await ref.ask(ApplyManifest(changed), timeout=60)
        again = await h.until_state(ref, "running")
        assert again["pid"] != first["pid"] and not h.of(AppCrashed, "web")
        environ = (await trio.Path(f"/proc/{again['pid']}/environ").read_bytes()).split(b"\0")
        assert b"MODE=two" in environ
        await ref.ask(StopApp("web"))


@pytest.mark.redis
async def test_sensor_logger_publishes_readings_through_the_sdk(any_backend: Any, state_root: Path, redis) -> None:
    import json

    import redis as redis_py

    config = make_config(state_root, redis_url=redis.url)
    manifest = example_app("sensor-logger", config.apps_dir)
    client = redis_py.Redis.from_url(redis.url)
    pubsub = client.pubsub()
    pubsub.psubscribe("homehelper:*:apps:sensor-logger:pub:readings")
    try:
        async with harness(config, any_backend) as h:
            ref = h.add(manifest)
            await ref.ask(StartApp("sensor-logger"), timeout=60)
            await h.until_state(ref, "running")

            async def reading() -> Any:
                msg = await trio.to_thread.run_sync(pubsub.get_message, True, 0.2)
                return msg if msg and msg["type"] == "pmessage" else None

            msg = await wait_until(reading, timeout=20)
            data = json.loads(msg["data"])
            assert set(data) == {"at", "temperature_c", "humidity_pct"} and 10 < data["temperature_c"] < 30
            await ref.ask(StopApp("sensor-logger"))
    finally:
        pubsub.close()
        client.close()


class SoonRetried(ServiceApp):
    quarantine_retry = 2.0


@pytest.mark.slow
async def test_quarantine_retries_slowly_and_a_crash_on_retry_goes_straight_back(any_backend: Any,
                                                                                  config: Config) -> None:
    manifest = write_app(config.apps_dir, "crashy", CRASHING_APP, restart={"intensity": 1, "period": 60})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest, SoonRetried)
        await ref.ask(StartApp("crashy"), timeout=60)
        await h.until_event(AppQuarantined, "crashy", timeout=30)
        quarantined_at = trio.current_time()
        second = (await h.until_event(AppQuarantined, "crashy", count=2, timeout=30))[1]
        assert trio.current_time() - quarantined_at >= SoonRetried.quarantine_retry
        assert len(h.of(AppStarted, "crashy")) == 3  # start, one backoff restart, one quarantine retry
        assert [c.next_try_in for c in h.of(AppCrashed, "crashy")] == [1.0, 2.0, 2.0]
        assert second.retry_in == SoonRetried.quarantine_retry
        await ref.ask(StopApp("crashy"))
