"""One app's slow setup does not hold up another app's first start."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from homehelper.backends import ProcessBackend
from homehelper.messages import AppInstalled, AppInstallProgress, StartApp, StopApp
from tests.actors.test_service import harness
from tests.backends.apps import HEALTHY_APP, make_config, write_app


def _release(fifo: Path) -> None:
    os.close(os.open(fifo, os.O_WRONLY))  # the blocked setup reads end-of-file and goes on


async def test_an_app_starts_while_another_apps_setup_runs(state_root: Path) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    fifo = state_root / "gate"
    os.mkfifo(fifo)
    slow = write_app(config.apps_dir, "slow", HEALTHY_APP, setup=[f"cat {fifo} > /dev/null"])
    quick = write_app(config.apps_dir, "quick", HEALTHY_APP)
    async with harness(config, backend) as h:
        slow_ref, quick_ref = h.add(slow), h.add(quick)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_ref.ask, StartApp("slow"), 120)
            await h.recorder.wait(AppInstallProgress, "slow", step="setup")
            await quick_ref.ask(StartApp("quick"), timeout=60)  # installs and starts meanwhile
            await h.until_state(quick_ref, "running")
            assert not h.of(AppInstalled, "slow")  # still in its setup (its actor is busy with it)
            await trio.to_thread.run_sync(_release, fifo)
        await h.until_state(slow_ref, "running")
        for ref, app_id in ((slow_ref, "slow"), (quick_ref, "quick")):
            await ref.ask(StopApp(app_id), timeout=30)
