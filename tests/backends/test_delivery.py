"""What an app's run gets of its options and secrets (backends/delivery.py), and how its unit says so."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import attrs
import pytest
import trio

from homehelper.actors.options import save
from homehelper.actors.streamlit_spec import streamlit_spec
from homehelper.backends import app_spec
from homehelper.backends.delivery import credentials_wall, with_options
from homehelper.backends.units import render_unit
from homehelper.errors import UnsafeUnitValue

from .apps import make_config, write_app

OPTIONS = {"interval": {"type": "int", "default": 5}, "api_key": {"type": "password"},
           "token": {"type": "password"}}


async def test_options_and_secrets_are_files_named_by_the_spec_and_the_unit(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "weather", "pass\n", options=OPTIONS)
    await trio.to_thread.run_sync(save, config.root, manifest, {"interval": 9, "api_key": "k-123", "token": "t-9"})
    spec = await with_options(app_spec(manifest, config, 8100, Path(sys.executable)), manifest, config)
    options_file = config.run_dir / "options" / "weather" / "options.json"
    creds = config.run_dir / "credentials" / "weather"
    assert dict(spec.env)["HH_OPTIONS_FILE"] == str(options_file) and spec.options_file == options_file
    assert json.loads(options_file.read_text()) == {"interval": 9}
    assert spec.credentials_dir == creds and spec.credentials == ("api_key", "token")
    assert (creds / "api_key").read_text() == "k-123"
    assert stat.S_IMODE((creds / "api_key").stat().st_mode) == 0o600 and stat.S_IMODE(creds.stat().st_mode) == 0o700
    unit = render_unit(spec)
    assert f"BindReadOnlyPaths={options_file}\n" in unit
    assert f"LoadCredential=api_key:{creds}/api_key\n" in unit and f"LoadCredential=token:{creds}/token\n" in unit
    assert "k-123" not in unit and "t-9" not in unit and "k-123" not in json.dumps(attrs.asdict(spec)["env"])

    # Unchanged: nothing is written again (no idle writes); a forgotten secret's file goes.
    before = (options_file.stat().st_ino, (creds / "api_key").stat().st_ino)
    await trio.to_thread.run_sync(save, config.root, manifest, {"token": None})
    spec = await with_options(app_spec(manifest, config, 8100, Path(sys.executable)), manifest, config)
    assert (options_file.stat().st_ino, (creds / "api_key").stat().st_ino) == before
    assert spec.credentials == ("api_key",) and not (creds / "token").exists()
    assert "LoadCredential=token" not in render_unit(spec)


async def test_an_app_without_options_gets_nothing_new(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "plain", "pass\n")
    spec = app_spec(manifest, config, 8100, Path(sys.executable))
    assert await with_options(spec, manifest, config) == spec
    assert "LoadCredential" not in render_unit(spec) and "HH_OPTIONS_FILE" not in render_unit(spec)


async def test_streamlit_apps_get_their_options_too(state_root: Path) -> None:
    config = make_config(state_root)
    folder = config.apps_dir / "charts"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("")
    (folder / "homehelper.json").write_text(json.dumps({"id": "charts", "type": "streamlit",
                                                        "options": {"days": {"type": "int", "default": 7}}}))
    from homehelper.manifest import load_manifest

    manifest = load_manifest(folder, config.apps_dir)
    spec = await with_options(streamlit_spec(config, manifest, 8501), manifest, config)
    path = spec.options_file
    assert path is not None and dict(spec.env)["HH_OPTIONS_FILE"] == str(path)
    assert json.loads(path.read_text()) == {"days": 7}


def test_a_bad_credential_name_never_reaches_a_unit(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "weather", "pass\n")
    spec = attrs.evolve(app_spec(manifest, config, 8100, Path(sys.executable)),
                        credentials_dir=state_root, credentials=("x\nExecStartPre=/bin/id",))
    with pytest.raises(UnsafeUnitValue):
        render_unit(spec)


def test_a_user_manager_hides_every_units_credentials(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    assert credentials_wall("user", {"XDG_RUNTIME_DIR": str(runtime)}) == [
        f"TemporaryFileSystem={runtime}/credentials:ro"]
    assert (runtime / "credentials").is_dir()
    assert credentials_wall("system", {"XDG_RUNTIME_DIR": str(runtime)}) == []  # PID 1 hides them itself
    assert credentials_wall("user", {"XDG_RUNTIME_DIR": "/run/x y"}) == []
    assert credentials_wall("user", {}) == []
