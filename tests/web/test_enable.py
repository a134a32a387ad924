"""Start at boot from the API: `POST /api/apps/<id>/enable` and `/disable`, on the real server
(`homehelper.serve`) with real ServiceApps on the process backend."""

from __future__ import annotations

from pathlib import Path

from homehelper.backends import ProcessBackend
from tests.backends.apps import HEALTHY_APP, write_app
from tests.web.test_approval import config_for, running


async def test_enable_and_disable_start_at_boot(state_root: Path) -> None:
    config = config_for(state_root)
    write_app(config.apps_dir, "web", HEALTHY_APP)
    write_app(config.apps_dir, "lamp", HEALTHY_APP, permissions=["gpio"])

    async def enabled(app_id: str) -> bool:
        # A backend of our own reads the state file the server wrote (each instance reads it once).
        return (await ProcessBackend(config.run_dir / "procs").status(app_id)).enabled

    async with running(config) as (_rt, client):
        r = await client.post("/api/apps/web/enable")
        assert r.status_code == 200, r.text
        assert r.json()["result"]["enabled"] is True and r.json()["app"]["id"] == "web"
        assert await enabled("web") is True
        assert config.venv_dir("web").exists()  # at boot it starts without asking us: installed now
        r = await client.post("/api/apps/web/disable")
        assert r.status_code == 200, r.text
        assert r.json()["result"]["enabled"] is False
        assert await enabled("web") is False
        # an app not approved is never set to start at boot: systemd would run it unasked
        r = await client.post("/api/apps/lamp/enable")
        assert r.status_code == 409 and "approve" in r.text
        assert await enabled("lamp") is False


async def test_the_api_documents_enable_and_disable(state_root: Path) -> None:
    config = config_for(state_root)
    async with running(config) as (_rt, client):
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "post" in paths["/api/apps/{app_id}/enable"] and "post" in paths["/api/apps/{app_id}/disable"]
        r = await client.post("/api/apps/nope/frobnicate")
        assert r.status_code == 400 and "enable" in r.json()["message"] and "disable" in r.json()["message"]
