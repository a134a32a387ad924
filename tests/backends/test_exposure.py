"""The exposure score of an app's unit, from `systemd-analyze security` on the real user manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from homehelper.backends import SystemdBackend, app_spec
from homehelper.backends.exposure import ExposureMeter, command, parse_exposure
from tests.backends.apps import HEALTHY_APP, make_config, write_app

pytestmark = pytest.mark.systemd


async def test_exposure_of_a_written_unit_is_measured_once_per_write(
        systemd_backend: SystemdBackend, state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "exposed", HEALTHY_APP)
    await systemd_backend.prepare(app_spec(manifest, config, 20001))
    meter = ExposureMeter()
    score, level = await meter.measure(systemd_backend, "exposed") or (None, None)
    print(f"exposure of {systemd_backend.unit('exposed')}: {score} {level}")
    assert isinstance(score, float) and 0.0 <= score <= 10.0
    assert level in ("SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE")  # SAFE: below 1.0, a walled network
    assert await meter.measure(systemd_backend, "exposed") == (score, level)
    assert meter.runs == 1  # the same unit file: the cached score, no analyzer run
    await systemd_backend.prepare(app_spec(manifest, config, 20002))  # a new unit file (another port)
    assert await meter.measure(systemd_backend, "exposed") is not None
    assert meter.runs == 2
    assert await meter.measure(systemd_backend, "never-written") is None


def test_parse_exposure() -> None:
    out = ("  NAME   DESCRIPTION   EXPOSURE\n✓ PrivateNetwork=  Service has no access to the host's network\n"
           "\n→ Overall exposure level for hh-a.service: \x1b[1;32m1.5 OK\x1b[0m 🙂\n")
    assert parse_exposure(out) == (1.5, "OK")
    assert parse_exposure(out, "hh-a.service") == (1.5, "OK")
    assert parse_exposure(out, "hh-b.service") is None
    assert parse_exposure("Unit hh-a.service not found.") is None
    assert command("hh-a.service", "system") == ["systemd-analyze", "security", "--no-pager", "hh-a.service"]


async def test_scores_outlive_a_restart_in_the_cache_file(systemd_backend: SystemdBackend, state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "kept", HEALTHY_APP)
    await systemd_backend.prepare(app_spec(manifest, config, 20003))
    cache = config.registry_dir / "exposure.json"
    first = ExposureMeter(cache)
    measured = await first.measure(systemd_backend, "kept")
    assert measured is not None and first.runs == 1
    restarted = ExposureMeter(cache)  # a new HomeHelper adopting the running app
    assert await restarted.measure(systemd_backend, "kept") == measured
    assert restarted.runs == 0
    cache.write_text('{"' + systemd_backend.unit("kept") + '": {"digest": 1}, "x": []}')  # damaged
    damaged = ExposureMeter(cache)
    assert await damaged.measure(systemd_backend, "kept") == measured and damaged.runs == 1
