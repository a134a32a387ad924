"""AppContext names what an app actor gets: a misspelt or missing piece fails at once, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from homehelper.actors.app import AppContext
from homehelper.actors.service import ServiceApp
from homehelper.actors.streamlit import StreamlitApp
from homehelper.backends import ProcessBackend
from homehelper.config import Config
from tests.backends.apps import HEALTHY_APP, make_config, write_app


def _config(state_root: Path) -> Config:
    return make_config(state_root)


def test_a_misspelt_piece_is_refused(state_root: Path) -> None:
    config = _config(state_root)
    with pytest.raises(TypeError, match="bakend"):
        AppContext(config, lambda e: None, ports=None, bakend=ProcessBackend(config.run_dir))  # type: ignore[arg-type, call-arg]


def test_an_app_without_a_backend_says_so(state_root: Path) -> None:
    config = _config(state_root)
    manifest = write_app(config.apps_dir, "web", HEALTHY_APP)
    ctx = AppContext(config, lambda e: None, ports=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"AppContext\.backend"):
        ServiceApp(manifest, ctx)
    with pytest.raises(TypeError, match=r"AppContext\.backend"):
        StreamlitApp(manifest, ctx)


def test_the_pieces_are_typed_fields(state_root: Path) -> None:
    config = _config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    ctx = AppContext(config, lambda e: None, ports=None, backend=backend)  # type: ignore[arg-type]
    app = ServiceApp(write_app(config.apps_dir, "web", HEALTHY_APP), ctx)
    assert app.backend is backend and app.installer.config is config  # no shared installer: its own
    assert not hasattr(ctx, "extra")
