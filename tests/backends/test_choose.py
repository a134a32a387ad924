"""`choose_backend`: systemd when a manager answers, else processes; config can force either."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from homehelper.backends import ProcessBackend, SystemdBackend, choose_backend
from homehelper.errors import ConfigError

from .apps import make_config


@pytest.mark.systemd
async def test_auto_picks_systemd_when_the_manager_answers(systemd_user, state_root: Path) -> None:
    backend = await choose_backend(make_config(state_root), systemd_user.env)
    assert isinstance(backend, SystemdBackend) and backend.unit_dir == systemd_user.unit_dir


async def test_auto_falls_back_to_processes(state_root: Path) -> None:
    nowhere = {"XDG_RUNTIME_DIR": str(state_root / "no-manager"), "PATH": "/usr/bin:/bin", "HOME": str(state_root)}
    config = make_config(state_root)
    backend = await choose_backend(config, nowhere)
    assert isinstance(backend, ProcessBackend) and backend.state_dir == config.run_dir / "procs"
    with pytest.raises(ConfigError, match="no systemd user manager answers"):
        await choose_backend(attrs.evolve(config, backend="systemd"), nowhere)


@pytest.mark.systemd
async def test_process_can_be_forced(systemd_user, state_root: Path) -> None:
    config = attrs.evolve(make_config(state_root), backend="process")
    assert isinstance(await choose_backend(config, systemd_user.env), ProcessBackend)
