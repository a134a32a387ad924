"""A service app's own UI, proxied by the dashboard under /apps/<id>/ui/."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from homehelper.messages import AppStateChanged, Rescan

from .conftest import Live
from .test_proxy import enter_app

REPO = Path(__file__).resolve().parents[2]


async def test_sensor_logger_ui_through_the_proxy(live_services: Live) -> None:
    live = live_services
    shutil.copytree(REPO / "apps" / "sensor-logger", live.tree.config.apps_dir / "sensor-logger",
                    ignore=shutil.ignore_patterns("__pycache__"))
    await live.tree.deps.scanner.ask(Rescan())
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        # no session: the app's page is as closed as the dashboard
        r = await client.get("/apps/sensor-logger/ui/")
        assert r.status_code == 302 and r.headers["location"].startswith("/login")
        csrf = await live.login(client)
        h = {"X-CSRF-Token": csrf}
        r = await client.post("/api/apps/sensor-logger/open", headers=h)
        assert r.status_code == 409 and "start it" in r.json()["message"]
        appc = await enter_app(client, "sensor-logger")  # the app's page has its own origin
        r = await appc.get("/apps/sensor-logger/ui/")
        assert r.status_code == 503 and b"not running" in r.content
        assert (await client.post("/api/apps/sensor-logger/start", headers=h)).status_code == 200
        await live.tree.recorder.wait(AppStateChanged, "sensor-logger", state="running", timeout=30)
        opened = (await client.post("/api/apps/sensor-logger/open", headers=h)).json()
        assert opened["url"] == "/apps/sensor-logger/ui/" and opened["ttl_left"] is None
        page = await appc.get(opened["url"])
        assert page.status_code == 200
        assert b"readings since start" in page.content  # the app's own /ui page
        api = await appc.get("/apps/sensor-logger/ui/api/readings")  # under the ui path, nowhere else
        assert api.status_code == 404
        await appc.aclose()
        assert (await client.post("/api/apps/sensor-logger/stop", headers=h)).status_code == 200
