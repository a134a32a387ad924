"""Per-app venvs: layered over HomeHelper's environment, rebuilt only on change."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from homehelper.backends.installer import MARKER, Installer, du
from homehelper.errors import DiskFull, InstallFailed
from homehelper.messages import AppInstallProgress

from .apps import make_config, write_app


def _app(config, requirements: str, setup: tuple[str, ...] = ()):
    manifest = write_app(config.apps_dir, "inst", "print('hi')\n", setup=list(setup))
    (manifest.path / "requirements.txt").write_text(requirements)
    return write_app(config.apps_dir, "inst", "print('hi')\n", setup=list(setup))


async def test_install_layers_over_homehelper_and_is_cheap(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = _app(config, "sniffio\n", setup=("echo set-up > setup-ran",))
    events: list[object] = []
    cost = await Installer(config).install(manifest, events.append)
    venv = config.venv_dir("inst")
    steps = [e.step for e in events if isinstance(e, AppInstallProgress)]
    assert steps[0] == "venv" and "requirements" in steps and "setup" in steps and steps[-1] == "done"
    assert (manifest.path / "setup-ran").read_text() == "set-up\n"
    # The app's python sees HomeHelper's packages (the SDK, redis, streamlit) without copies.
    probe = await trio.run_process([str(venv / "bin" / "python"), "-c",
                                    "import importlib.util as u, homehelper, redis, trio;"
                                    "print(all(u.find_spec(m) for m in ('streamlit', 'sniffio')))"],
                                   capture_stdout=True, capture_stderr=True, check=False)
    assert probe.stdout.decode().strip() == "True", probe.stderr
    assert 0 < cost <= du(venv) < 2 * 1024 * 1024  # tens of KB, not hundreds of MB


async def test_reinstall_only_when_requirements_change(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = _app(config, "sniffio\n")
    installer = Installer(config)
    await installer.install(manifest, lambda e: None)
    marker = config.venv_dir("inst") / MARKER
    first = marker.stat().st_mtime_ns
    events: list[object] = []
    await installer.install(manifest, events.append)
    assert events == [] and marker.stat().st_mtime_ns == first and installer.is_current(manifest)
    (manifest.path / "requirements.txt").write_text("sniffio\nattrs\n")
    assert not installer.is_current(manifest)
    await installer.install(manifest, events.append)
    assert marker.stat().st_mtime_ns != first and events


@pytest.mark.parametrize("requirements, expected", [
    ("this is not a requirement ===\n", "Invalid requirement"),
    ("--no-index\nhh-no-such-package-anywhere==9.9\n", "No matching distribution found for hh-no-such-package"),
])
async def test_bad_requirements_fail_with_pip_output(state_root: Path, requirements: str, expected: str) -> None:
    config = make_config(state_root)
    manifest = _app(config, requirements)
    installer = Installer(config)
    with pytest.raises(InstallFailed) as info:
        await installer.install(manifest, lambda e: None)
    assert expected in info.value.detail["output_tail"]
    assert not installer.is_current(manifest)


async def test_install_refused_when_disk_is_short(state_root: Path) -> None:
    config = make_config(state_root)
    config = attrs.evolve(config, monitor=attrs.evolve(config.monitor, min_free_disk_mb=10**9))
    manifest = _app(config, "sniffio\n")
    with pytest.raises(DiskFull, match="min_free_disk_mb"):
        await Installer(config).install(manifest, lambda e: None)
    assert not config.venv_dir("inst").exists()


async def test_failed_setup_command_reports_its_output(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = _app(config, "sniffio\n", setup=("echo preparing; echo broken >&2; exit 7",))
    with pytest.raises(InstallFailed, match="setup command 1 failed") as info:
        await Installer(config).install(manifest, lambda e: None)
    assert "preparing" in info.value.detail["output_tail"] and "broken" in info.value.detail["output_tail"]
