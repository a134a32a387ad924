"""The free-disk guard for installs: Installer.check_disk by monitor.install_space, on a real disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from homehelper.backends.installer import Installer
from homehelper.config import Config, MonitorConfig
from homehelper.errors import DiskFull, Unavailable
from homehelper.monitor import install_space


def config(root: Path, min_free_mb: int) -> Config:
    return Config(root=root, apps_dir=root / "apps", monitor=MonitorConfig(min_free_disk_mb=min_free_mb))


def check_disk(config: Config) -> None:
    Installer(config).check_disk()


def test_enough_space_passes(tmp_path: Path) -> None:
    check_disk(config(tmp_path / "not-created-yet", 1))


def test_too_little_space_blocks_with_a_clear_reason(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    needed = free_mb + 1024 * 1024  # a terabyte more than there is
    cfg = config(tmp_path / "state", needed)
    with pytest.raises(DiskFull) as info:
        check_disk(cfg)
    err = info.value
    assert err.status == 503
    assert f"installs need at least {needed} MB" in err.message and "monitor.min_free_disk_mb" in err.message
    assert err.detail["required_mb"] == needed and abs(err.detail["free_mb"] - free_mb) < 100
    assert err.detail["path"] == str(tmp_path)  # the nearest folder that exists
    assert isinstance(err, Unavailable) and err.to_json()["error"] == "disk_full"
    # the snapshot's verdict is the same rule, word for word
    assert install_space(cfg)["blocked"] == err.message


def test_the_threshold_is_exact(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    check_disk(config(tmp_path, max(0, free_mb - 64)))  # files written meanwhile leave a margin
    with pytest.raises(Unavailable):
        check_disk(config(tmp_path, free_mb + 64))
