"""The start gate in the app actors: every way an app could come to run is held until the user
approved exactly what its manifest asks for (real ServiceApps on the process backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homehelper.actors.app import AppContext
from homehelper.actors.streamlit import StreamlitApp
from homehelper.approvals import ApprovalStore
from homehelper.backends import ProcessBackend
from homehelper.config import Config
from homehelper.errors import Conflict
from homehelper.manifest import load_manifest
from homehelper.messages import (
    AppAwaitingApproval,
    ApplyManifest,
    ApproveApp,
    AppStarted,
    EnableApp,
    GetApp,
    InstallApp,
    OpenUI,
    StartApp,
)
from tests.actors.test_service import harness
from tests.backends.apps import CRASHING_APP, HEALTHY_APP, make_config, write_app
from tests.fixtures.systemd import _stop_processes


@pytest.fixture
def config(state_root: Path) -> Config:
    return make_config(state_root)


@pytest.fixture
def backend(state_root: Path):
    b = ProcessBackend(state_root / "run" / "procs")
    yield b
    _stop_processes(b)


async def test_enable_at_boot_is_refused_until_approved(config: Config, backend: ProcessBackend) -> None:
    manifest = write_app(config.apps_dir, "lamp", HEALTHY_APP, permissions=["gpio"])
    async with harness(config, backend) as h:
        h.ctx.approvals = ApprovalStore(config.registry_dir / "approvals.json")
        ref = h.add(manifest)
        with pytest.raises(Conflict, match="lamp asks for gpio"):
            await ref.ask(EnableApp("lamp", True), timeout=30)  # systemd would start it at boot unasked
        assert (await h.state(ref))["enabled"] is False
        await ref.ask(ApproveApp("lamp", ("gpio",)), timeout=30)
        assert (await ref.ask(EnableApp("lamp", True), timeout=120))["enabled"] is True


async def test_a_restart_after_a_crash_is_held_when_the_manifest_asks_for_more(config: Config,
                                                                              backend: ProcessBackend) -> None:
    manifest = write_app(config.apps_dir, "crashy", CRASHING_APP, permissions=["lan"],
                         restart={"intensity": 5, "period": 60, "backoff_max": 1})
    async with harness(config, backend) as h:
        h.ctx.approvals = store = ApprovalStore(config.registry_dir / "approvals.json")
        await store.approve("crashy", ["lan"])
        ref = h.add(manifest)
        await ref.ask(StartApp("crashy"), timeout=120)
        await h.until_state(ref, "backoff")
        more = write_app(config.apps_dir, "crashy", CRASHING_APP, permissions=["lan", "usb"],
                         restart={"intensity": 5, "period": 60, "backoff_max": 1})
        await ref.ask(ApplyManifest(more), timeout=30)
        held = await h.until_state(ref, "awaiting_approval")
        assert "lan, usb" in held["last_error"] and held["pid"] is None
        assert (await h.until_event(AppAwaitingApproval, "crashy"))[-1].reason == "restart"  # may trail the state
        assert len(h.of(AppStarted, "crashy")) == 1  # the retry did not launch it


async def test_a_reinstall_does_not_relaunch_an_app_whose_approval_is_gone(config: Config,
                                                                          backend: ProcessBackend) -> None:
    manifest = write_app(config.apps_dir, "cam", HEALTHY_APP, permissions=["video"])
    async with harness(config, backend) as h:
        h.ctx.approvals = store = ApprovalStore(config.registry_dir / "approvals.json")
        await store.approve("cam", ["video"])
        ref = h.add(manifest)
        await ref.ask(StartApp("cam"), timeout=120)
        await h.until_state(ref, "running")
        # The approvals file was lost (say, a damaged SD card): the running app is not re-launched unasked.
        h.ctx.approvals = ApprovalStore(config.registry_dir / "other.json")
        snap = await ref.ask(InstallApp("cam"), timeout=300)
        assert snap["state"] == "awaiting_approval" and snap["pid"] is None
        assert len(h.of(AppStarted, "cam")) == 1


async def test_a_streamlit_app_asking_for_permissions_does_not_open(config: Config, state_root: Path) -> None:
    folder = config.apps_dir / "board"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("import streamlit as st\nst.write('hi')\n")
    (folder / "homehelper.json").write_text(json.dumps({"id": "board", "type": "streamlit",
                                                        "permissions": ["host-metrics"]}))
    manifest = load_manifest(folder, config.apps_dir)
    store = ApprovalStore(config.registry_dir / "approvals.json")
    ctx = AppContext(config, lambda e: None, ports=None,  # type: ignore[arg-type]
                     approvals=store, backend=ProcessBackend(config.run_dir / "procs"))
    app = StreamlitApp(manifest, ctx)
    with pytest.raises(Conflict, match="board asks for host-metrics"):
        await app.handle(OpenUI("board"))
    snap = await app.handle(GetApp("board"))
    assert snap["state"] == "awaiting_approval" and snap["approved"] is False and snap["sandbox"] == "unsandboxed"
    with pytest.raises(Conflict, match="now asks for host-metrics"):
        await app.handle(ApproveApp("board", ("gpio",)))
    snap = await app.handle(ApproveApp("board", ("host-metrics",)))
    assert snap["state"] == "stopped" and snap["approved"] is True  # opened on demand, by the next click
