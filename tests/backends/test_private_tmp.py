"""A state root or apps folder under /tmp or /var/tmp cannot work with systemd (every unit gets a
private /tmp): refused at start naming why and the fix (issue 11.9); the tests run from anywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

from homehelper.backends import choose_backend
from homehelper.backends.base import AppSpec
from homehelper.backends.sandbox import walls
from homehelper.backends.units import render_unit
from homehelper.errors import ConfigError, UnsafeUnitValue
from tests.fixtures import common

from .apps import make_config


@pytest.mark.systemd
@pytest.mark.parametrize("where", ["root", "apps_dir"])
@pytest.mark.parametrize("tmp", ["/tmp", "/var/tmp"])
async def test_systemd_refuses_a_state_root_under_tmp(systemd_user, state_root: Path, where: str, tmp: str) -> None:
    config = attrs.evolve(make_config(state_root), **{where: Path(tmp) / "homehelper"})
    with pytest.raises(ConfigError) as exc:
        await choose_backend(config, systemd_user.env)
    message = exc.value.message
    assert f"{tmp}/homehelper is under {tmp}" in message and "PrivateTmp=yes" in message
    assert "HOMEHELPER_ROOT" in message and "'process'" in message  # the fix
    process = await choose_backend(attrs.evolve(config, backend="process"), systemd_user.env)
    assert process.name == "process"  # the process backend has no private /tmp


def test_a_unit_is_never_written_for_tmp_paths() -> None:
    spec = AppSpec(app_id="a", argv=(sys.executable, "/tmp/apps/a/main.py"), cwd=Path("/tmp/apps/a"), env=(),
                   data_dir=Path("/srv/hh/data/a"), log_dir=Path("/srv/hh/logs/a"))
    with pytest.raises(UnsafeUnitValue, match="PrivateTmp"):
        render_unit(spec)


def test_test_state_roots_leave_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "REPO", Path("/tmp/checkout"))
    base = common.state_base()
    assert not common.under_private_tmp(base)
    monkeypatch.setattr(common, "REPO", Path("/var/tmp/checkout"))
    assert common.state_base() == base
    monkeypatch.setattr(common, "REPO", Path("/srv/checkout"))
    assert common.state_base() == Path("/srv/checkout/state/test")


def test_homehelper_run_from_a_checkout_under_tmp_is_bound_into_units() -> None:
    """Only HomeHelper's state must leave /tmp: its interpreter and packages there are bound back
    (systemd takes bind sources from the host, before the unit's private /tmp hides them)."""
    spec = AppSpec(app_id="a", argv=("/tmp/co/.venv/bin/python", "/srv/hh/apps/a/main.py"), cwd=Path("/srv/hh/apps/a"),
                   env=(), data_dir=Path("/srv/hh/data/a"), log_dir=Path("/srv/hh/logs/a"))
    hidden, _, readonly = walls(spec, own=(Path("/tmp/co/.venv"), Path("/tmp/co/homehelper"), Path("/tmp")))
    assert hidden == [Path("/srv/hh")]
    assert readonly == [Path("/tmp/co/.venv"), Path("/srv/hh/apps/a"), Path("/tmp/co/homehelper")]
    assert "BindReadOnlyPaths=/tmp/co/.venv /srv/hh/apps/a" in render_unit(spec)


def test_a_home_folder_itself_is_never_bound_back() -> None:
    spec = AppSpec(app_id="a", argv=("/srv/hh/venvs/a/bin/python", "/srv/hh/apps/a/main.py"),
                   cwd=Path("/srv/hh/apps/a"), env=(), data_dir=Path("/srv/hh/data/a"), log_dir=Path("/srv/hh/logs/a"))
    _, _, readonly = walls(spec, own=(Path("/home/pi"), Path("/root"), Path("/tmp/x"), Path("/home/pi/.pyenv/v")))
    assert readonly == [Path("/srv/hh/venvs/a"), Path("/srv/hh/apps/a"), Path("/home/pi/.pyenv/v")]
