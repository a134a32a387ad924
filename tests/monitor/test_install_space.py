"""The free-disk guard for installs, on this machine's real filesystem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from homehelper.config import Config, MonitorConfig
from homehelper.errors import Unavailable
from homehelper.monitor import check_install_space


def config(root: Path, min_free_mb: int) -> Config:
    return Config(root=root, apps_dir=root / "apps", monitor=MonitorConfig(min_free_disk_mb=min_free_mb))


def test_enough_space_passes(tmp_path: Path) -> None:
    check_install_space(config(tmp_path / "not-created-yet", 1))


def test_too_little_space_blocks_with_a_clear_reason(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    needed = free_mb + 1024 * 1024  # a terabyte more than there is
    with pytest.raises(Unavailable) as info:
        check_install_space(config(tmp_path / "state", needed))
    err = info.value
    assert err.status == 503
    assert f"installs need at least {needed} MB" in err.message and "monitor.min_free_disk_mb" in err.message
    assert err.detail["required_mb"] == needed and abs(err.detail["free_mb"] - free_mb) < 100
    assert err.detail["path"] == str(tmp_path)  # the nearest folder that exists
    assert err.to_json()["error"] == "unavailable"


def test_the_threshold_is_exact(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    check_install_space(config(tmp_path, max(0, free_mb - 64)))  # files written meanwhile leave a margin
    with pytest.raises(Unavailable):
        check_install_space(config(tmp_path, free_mb + 64))
