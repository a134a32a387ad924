"""Approval of an app's permissions, end to end: the real server (`homehelper.serve`), real
ServiceApps on the process backend, the REST API. An app asking for permissions or devices
never starts before the user approved that exact list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from homehelper.backends import ProcessBackend, process
from homehelper.config import Config
from homehelper.serve import serve
from tests.backends.apps import HEALTHY_APP, make_config, wait_until, write_app
from tests.fixtures.redis import free_port
from tests.fixtures.systemd import _stop_processes
from tests.web.conftest import start_live


def config_for(state_root: Path) -> Config:
    config = make_config(state_root, backend="process", port=free_port())
    return attrs.evolve(config, auth=attrs.evolve(config.auth, loopback_without_login=True))


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    try:
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(serve, config)
            async with httpx.AsyncClient(base_url=rt.url, timeout=120) as client:
                yield rt, client
            nursery.cancel_scope.cancel()
    finally:
        await stop_apps(config)


async def stop_apps(config: Config) -> None:
    """Kill the apps (the process backend's apps outlive their HomeHelper) and reap them."""
    state_dir = config.run_dir / "procs"
    pids = {json.loads(f.read_text()).get("pid") for f in state_dir.glob("*.json")}
    _stop_processes(ProcessBackend(state_dir))
    for proc in [p for p in process._children if p.pid in pids]:
        await proc.wait()
        process._children.discard(proc)


async def app(client: httpx.AsyncClient, app_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/apps/{app_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def until(client: httpx.AsyncClient, app_id: str, *states: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        a = await app(client, app_id)
        return a if a["state"] in states else None
    return dict(await wait_until(check, timeout=120))


async def test_an_app_asking_for_permissions_waits_for_approval_then_starts(state_root: Path) -> None:
    config = config_for(state_root)
    write_app(config.apps_dir, "gpio-reader", HEALTHY_APP, permissions=["gpio", "lan"], devices=["/dev/null"],
              autostart=True)
    write_app(config.apps_dir, "plain", HEALTHY_APP)
    alive = config.data_dir("gpio-reader") / "alive"  # the app writes it when it runs
    async with running(config) as (_rt, client):
        # autostart at boot is a start like any other: held
        held = await until(client, "gpio-reader", "awaiting_approval")
        assert held["approved"] is False and held["permissions"] == ["gpio", "lan"]
        assert held["devices"] == ["/dev/null"] and held["sandbox"] == "unsandboxed"
        assert "gpio, lan, /dev/null" in held["last_error"] and "homehelper approve gpio-reader" in held["last_error"]
        assert (await app(client, "plain"))["approved"] is True

        r = await client.post("/api/apps/gpio-reader/start")  # a user's start: held too, and says why
        assert r.status_code == 200, r.text
        assert r.json()["app"]["state"] == "awaiting_approval" and "gpio" in r.json()["app"]["last_error"]
        assert not alive.exists() and (await app(client, "gpio-reader"))["port"] is None

        # the user saw an older list: refused, nothing approved
        r = await client.post("/api/apps/gpio-reader/approve", json={"grants": ["gpio", "/dev/null"]})
        assert r.status_code == 409 and "gpio, lan, /dev/null" in r.json()["message"]
        r = await client.post("/api/apps/gpio-reader/approve", json={"grants": "gpio"})
        assert r.status_code == 400
        assert not (config.registry_dir / "approvals.json").exists()

        r = await client.post("/api/apps/gpio-reader/approve", json={"grants": ["/dev/null", "lan", "gpio"]})
        assert r.status_code == 200, r.text
        assert r.json()["app"]["approved"] is True
        running_app = await until(client, "gpio-reader", "running")  # it was wanted running: it starts
        assert running_app["last_error"] is None and alive.exists()
        saved = json.loads((config.registry_dir / "approvals.json").read_text())
        assert saved == {"gpio-reader": {"grants": ["/dev/null", "gpio", "lan"]}}
        kinds = [e["kind"] for e in (await client.get("/api/events?limit=200")).json()
                 if e.get("app_id") == "gpio-reader"]
        assert kinds.index("app_awaiting_approval") < kinds.index("app_approved") < kinds.index("app_started")

        # The manifest now asks for more: the running app stops and asks again.
        write_app(config.apps_dir, "gpio-reader", HEALTHY_APP, permissions=["gpio", "lan", "i2c"],
                  devices=["/dev/null"], autostart=True)
        assert (await client.post("/api/rescan")).status_code == 200
        again = await until(client, "gpio-reader", "awaiting_approval")
        assert again["approved"] is False and "i2c" in again["last_error"]
        assert (await app(client, "gpio-reader"))["permissions"] == ["gpio", "i2c", "lan"]

        # Stopped by the user, then approved: approving does not start what the user stopped.
        await client.post("/api/apps/gpio-reader/stop")
        r = await client.post("/api/apps/gpio-reader/approve")  # no body: what the manifest asks for now
        assert r.status_code == 200 and r.json()["app"]["state"] == "stopped"
        assert (await app(client, "gpio-reader"))["approved"] is True


async def test_an_approval_survives_a_restart_and_a_changed_list_asks_again(state_root: Path) -> None:
    config = config_for(state_root)
    write_app(config.apps_dir, "cam", HEALTHY_APP, permissions=["video"])
    async with running(config) as (_rt, client):
        r = await client.post("/api/apps/cam/approve", json={"grants": ["video"]})
        assert r.status_code == 200 and r.json()["app"]["state"] == "stopped"  # approved, not started
        assert (await client.post("/api/apps/cam/start")).status_code == 200
        await until(client, "cam", "running")
    write_app(config.apps_dir, "cam", HEALTHY_APP, permissions=["video", "internet"])
    async with running(config) as (_rt, client):
        # The user left it running: restored at boot, but the list changed while HomeHelper was away.
        held = await until(client, "cam", "awaiting_approval")
        assert held["approved"] is False and "internet, video" in held["last_error"]
        r = await client.post("/api/apps/cam/approve", json={"grants": ["internet", "video"]})
        assert r.status_code == 200
        await until(client, "cam", "running")


@pytest.mark.systemd
async def test_a_systemd_app_shows_sandboxed_and_its_units_exposure(nursery: trio.Nursery, state_root: Path,
                                                                    systemd_backend: Any) -> None:
    live = await start_live(nursery, state_root, 1, backend=systemd_backend)
    async with httpx.AsyncClient(base_url=live.url, timeout=120) as client:
        csrf = await live.login(client)
        before = await app(client, "app-00")
        assert before["sandbox"] == "sandboxed" and before["exposure"] is None  # no unit written yet
        r = await client.post("/api/apps/app-00/start", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text

        async def measured() -> dict[str, Any] | None:
            a = await app(client, "app-00")
            return a if a["exposure"] is not None else None
        shown = await wait_until(measured, timeout=60)
        assert 0.0 <= shown["exposure"] <= 10.0
        assert shown["exposure_level"] in ("SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE")
        await client.post("/api/apps/app-00/stop", headers={"X-CSRF-Token": csrf})
