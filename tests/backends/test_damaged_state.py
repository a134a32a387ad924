"""Damaged or unwritable state of the process backend: the app gets a clear error, nothing crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from homehelper.backends import ProcessBackend, app_spec
from homehelper.errors import BackendError

from .apps import HEALTHY_APP, make_config, write_app


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` unwritable even for root (an immutable flag), for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o500)
    immutable = False
    try:
        if os.access(folder, os.W_OK):  # root: mode bits do not stop it
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
            if not immutable or os.access(folder, os.W_OK):
                pytest.skip("cannot make a folder read-only here (root without chattr)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, 0o700)


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b""])
async def test_a_damaged_state_file_is_set_aside_and_the_app_starts(state_root: Path, garbage: bytes) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(state_root / "run" / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    backend.state_dir.mkdir(parents=True)
    (backend.state_dir / "web.json").write_bytes(garbage)
    status = await backend.status("web")  # what the app's actor asks first: no crash
    assert not status.running
    aside = [p.name for p in backend.state_dir.iterdir() if p.name.startswith("web.json.corrupt-")]
    assert len(aside) == 1 and (backend.state_dir / aside[0]).read_bytes() == garbage
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    await backend.start("web")
    try:
        assert (await backend.status("web")).running
    finally:
        await backend.stop("web")


@pytest.mark.parametrize("which", ["state", "logs"])
async def test_an_unwritable_folder_is_an_error_naming_it(state_root: Path, which: str) -> None:
    config = make_config(state_root)
    backend = ProcessBackend(state_root / "run" / "procs")
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    folder = backend.state_dir if which == "state" else config.logs_dir("web")
    with read_only(folder), pytest.raises(BackendError, match=f"{folder} is not writable.*chmod u\\+rwx"):
        await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    assert not (await backend.status("web")).running
