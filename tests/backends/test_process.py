"""The process backend's own rules (the behaviour both backends share is in test_backends.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from homehelper.backends import ProcessBackend, app_spec

from .apps import HEALTHY_APP, make_config, write_app


async def test_apps_started_together_are_spawned_one_at_a_time(state_root: Path, monkeypatch) -> None:
    """Twenty starts at once must not be twenty spawning threads contending with the event loop
    for the GIL while twenty interpreters boot: the backend spawns one process at a time."""
    config = make_config(state_root)
    backend = ProcessBackend(state_root / "run" / "procs")
    ids = [f"app{i}" for i in range(4)]
    spawning, most = 0, 0
    real = trio.lowlevel.open_process

    async def counted(*args, **kwargs):  # the real spawn, counted
        nonlocal spawning, most
        spawning += 1
        most = max(most, spawning)
        try:
            return await real(*args, **kwargs)
        finally:
            spawning -= 1

    monkeypatch.setattr(trio.lowlevel, "open_process", counted)
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        for i, app_id in enumerate(ids):
            manifest = write_app(config.apps_dir, app_id, HEALTHY_APP)
            await backend.prepare(app_spec(manifest, config, config.service_ports[0] + i, Path(sys.executable)))
        try:
            async with trio.open_nursery() as starts:
                for app_id in ids:
                    starts.start_soon(backend.start, app_id)
            assert [(await backend.status(a)).running for a in ids] == [True] * len(ids)
            assert most == 1
        finally:
            for app_id in ids:
                await backend.stop(app_id)
        nursery.cancel_scope.cancel()
