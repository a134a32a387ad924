"""The walls (issue 11.3): under systemd an app sees, of HomeHelper's state root, only its own
data and log folders (writable) and its venv and app folder (read-only), wherever the root is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from homehelper.backends import app_spec
from homehelper.backends.installer import shared_site_dirs
from homehelper.backends.sandbox import walls
from homehelper.backends.units import render_unit

from .apps import make_config, wait_until, write_app

pytestmark = pytest.mark.systemd

PROBE = """
import json, os, sys
root = sys.argv[1]
seen = {}
for rel in sys.argv[2].split(","):
    try:
        with open(os.path.join(root, rel)) as f:
            f.read()
        seen[rel] = "read"
    except OSError as e:
        seen[rel] = e.strerror
for rel in sys.argv[3].split(","):
    try:
        with open(os.path.join(root, rel), "a") as f:
            f.write("x")
        seen["write " + rel] = "ok"
    except OSError as e:
        seen["write " + rel] = e.strerror
try:
    import homehelper
    seen["import homehelper"] = "ok"
except ImportError as e:
    seen["import homehelper"] = str(e)
print("SEEN " + json.dumps(seen), flush=True)
"""

SECRETS = ("run/cli-token", "config/auth.json", "registry/apps.json", "data/other/secret.db",
           "logs/other/app.log", "venvs/other/pyvenv.cfg", "run/secrets/other.env", "apps/other/main.py")
MINE = ("venvs/probe/pyvenv.cfg", "apps/probe/main.py", "data/probe/mine.db", "logs/probe/app.log")
WRITES_REFUSED = ("new-file", "config/config.json", "data/other/x", "apps/probe/x", "venvs/probe/x", "apps/x")
WRITES_ALLOWED = ("data/probe/mine.db", "logs/probe/note")


@pytest.fixture(params=["protect-home", "elsewhere"])
def root(request: pytest.FixtureRequest, state_root: Path) -> Iterator[Path]:
    """A state root under /root (a ProtectHome= path) or the usual test root (under the checkout)."""
    if request.param == "elsewhere":
        yield state_root
        return
    home = Path("/root") if os.geteuid() == 0 else Path.home()
    if not os.access(home, os.W_OK) or home.parts[1] not in ("root", "home"):
        pytest.skip(f"cannot make a state root under {home}")
    base = home / f"hh-walls-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _venv(path: Path) -> Path:
    """A real app venv, layered over HomeHelper's packages as the installer does."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = next(path.glob("lib/python*/site-packages"))
    (site / "_homehelper_shared.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in shared_site_dirs()))
    return path / "bin" / "python"


@pytest.fixture
def session() -> Iterator[Path]:
    """A file of the user's own (an SSH key, a browser session): out of sight too (ProtectHome=tmpfs)."""
    path = Path("/root" if os.geteuid() == 0 else Path.home()) / f".hh-walls-session-{uuid.uuid4().hex[:8]}"
    path.write_text("secret")
    yield path
    path.unlink()


async def test_an_app_sees_only_its_own_folders(systemd_backend, root: Path, session: Path) -> None:
    config = make_config(root)
    write_app(config.apps_dir, "other", "pass\n")
    manifest = write_app(config.apps_dir, "probe", PROBE)
    python = _venv(config.venv_dir("probe"))
    for rel in SECRETS + MINE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (root / rel).exists():
            (root / rel).write_text("secret" if rel in SECRETS else "mine")
    spec = app_spec(manifest, config, config.service_ports[0], python)
    spec = attrs.evolve(spec, argv=(*spec.argv, str(root), ",".join((*SECRETS, str(session), *MINE)),
                                    ",".join(WRITES_REFUSED + WRITES_ALLOWED)))
    await systemd_backend.prepare(spec)
    await systemd_backend.start("probe")
    log = config.logs_dir("probe") / "app.log"
    await wait_until(lambda: log.exists() and "SEEN " in log.read_text())
    seen = json.loads(log.read_text().split("SEEN ", 1)[1].splitlines()[0])
    for rel in (*SECRETS, str(session)):
        assert seen[rel] != "read", f"{rel} is readable by the app"
    for rel in MINE:
        assert seen[rel] == "read", (rel, seen[rel])
    for rel in WRITES_REFUSED:
        assert seen[f"write {rel}"] != "ok", f"the app wrote {rel}"
        assert not (root / rel).exists() or not (root / rel).read_text().endswith("x")
    for rel in WRITES_ALLOWED:
        assert seen[f"write {rel}"] == "ok", (rel, seen[f"write {rel}"])
    assert seen["import homehelper"] == "ok"  # HomeHelper's packages stay readable through the .pth
    assert (root / "data/probe/mine.db").read_text() == "minex"
    assert (root / "run/cli-token").read_text() == "secret" and not (root / "new-file").exists()


def test_the_walls_cover_the_state_root_and_the_apps_folder(state_root: Path, tmp_path: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "probe", "pass\n")
    text = render_unit(app_spec(manifest, config, 8100))
    assert f"TemporaryFileSystem={state_root}:ro\n" in text
    assert f"BindPaths={config.data_dir('probe')} {config.logs_dir('probe')}\n" in text
    assert f"BindReadOnlyPaths={config.venv_dir('probe')} {manifest.path}" in text
    # An apps folder outside the state root gets a wall of its own.
    apps = state_root.parent / f"{state_root.name}-apps"
    try:
        outside = write_app(apps, "probe", "pass\n")
        text = render_unit(app_spec(outside, config, 8100))
        assert f"TemporaryFileSystem={state_root}:ro\n" in text and f"TemporaryFileSystem={apps}:ro\n" in text
    finally:
        shutil.rmtree(apps, ignore_errors=True)


def test_homehelper_installed_in_the_root_is_readable_but_not_the_root(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "probe", "pass\n")
    spec = app_spec(manifest, config, 8100)
    site = state_root / "lib/python3.11/site-packages"
    # HomeHelper's venv made in the state root itself: its packages come back, the root does not.
    hidden, _, readonly = walls(spec, own=(state_root, site, state_root / "homehelper"))
    assert hidden == [state_root]
    assert readonly == [config.venv_dir("probe"), manifest.path, site, state_root / "homehelper"]
    _, _, readonly = walls(spec, own=(state_root / "run",))
    assert state_root / "run" not in readonly
