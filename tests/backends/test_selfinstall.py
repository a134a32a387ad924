"""`homehelper install` against the real user manager."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from homehelper import cli, selfinstall

from .apps import make_config

pytestmark = pytest.mark.systemd


def test_dry_run_prints_the_unit_and_changes_nothing(state_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(state_root), "install", "--scope", "system", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"--root {state_root} serve" in out and "WantedBy=multi-user.target" in out


def test_install_writes_verifies_and_enables(systemd_user, state_root: Path) -> None:
    config = make_config(state_root)
    out = io.StringIO()
    assert selfinstall.install(config, "user", start=False, environ=systemd_user.env, out=out) == 0
    path = selfinstall.unit_path("user", systemd_user.env)
    try:
        assert path.parent == systemd_user.unit_dir and f"{config.root}" in path.read_text()
        verify = subprocess.run(["systemd-analyze", "verify", "--user", str(path)], env=systemd_user.env,
                                capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr
        assert systemd_user.systemctl("is-enabled", selfinstall.UNIT).stdout.strip() == "enabled"
        assert "enabled homehelper.service (user scope)" in out.getvalue()
    finally:
        systemd_user.systemctl("disable", selfinstall.UNIT)
        path.unlink(missing_ok=True)
        systemd_user.systemctl("daemon-reload")


def test_a_system_install_on_the_default_system_root_lets_systemd_make_it(state_root: Path) -> None:
    import attrs

    from homehelper.config import SYSTEM_ROOT

    config = make_config(state_root)
    unit = selfinstall.render_self_unit(attrs.evolve(config, root=SYSTEM_ROOT), "system")
    assert f"--root {SYSTEM_ROOT} serve" in unit and "StateDirectory=homehelper" in unit
    assert "StateDirectory" not in selfinstall.render_self_unit(config, "user")
