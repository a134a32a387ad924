"""A service app whose folders are damaged or unwritable gets a clear state, never a crashed actor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homehelper.backends import ProcessBackend
from homehelper.messages import AppConfigError, GetApp, StartApp, StopApp
from tests.actors.test_service import harness
from tests.backends.apps import HEALTHY_APP, make_config, write_app
from tests.backends.test_damaged_state import read_only


async def test_unwritable_log_folder_is_a_config_error_naming_it(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    folder = config.logs_dir("web")
    with read_only(folder):
        async with harness(config, backend) as h:
            ref = h.add(manifest)
            snap = await ref.ask(StartApp("web"), timeout=60)
            assert snap["state"] == "config_error"
            error = (await h.until_event(AppConfigError, "web"))[0].error
            assert str(folder) in error and "chmod" in error
            assert (await ref.ask(GetApp("web"), timeout=10))["state"] == "config_error"  # still answers


async def test_damaged_process_state_does_not_stop_the_app(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    backend.state_dir.mkdir(parents=True)
    (backend.state_dir / "web.json").write_text('{"pid": 12')
    async with harness(config, backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("web"), timeout=60)
        await h.until_state(ref, "running")
        assert [p for p in backend.state_dir.iterdir() if ".corrupt-" in p.name]
        await ref.ask(StopApp("web"), timeout=30)


@pytest.mark.systemd
async def test_unwritable_log_folder_under_systemd_is_a_config_error_naming_it(systemd_backend: Any,
                                                                               state_root: Path) -> None:
    # Under systemd the unit would fail with a generic 209/STDOUT; the folder is checked first.
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    folder = config.logs_dir("web")
    with read_only(folder):
        async with harness(config, systemd_backend) as h:
            ref = h.add(manifest)
            snap = await ref.ask(StartApp("web"), timeout=60)
            assert snap["state"] == "config_error"
            error = (await h.until_event(AppConfigError, "web"))[0].error
            assert str(folder) in error and "chmod" in error
