"""A real Chromium: the dashboard opens the Streamlit app in its modal, rendered through the proxy."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from homehelper.messages import GetApp
from tests.fixtures.browser import screenshot
from tests.fixtures.streamlit import PASSWORD


def drive(browser: Any, url: str) -> dict[str, Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(url + "/")
        page.fill("#password", PASSWORD)
        page.click("#login")
        card = page.locator("article.card", has_text="Sensor dashboard")
        card.locator('[data-do="open"]').click()
        frame = page.frame_locator("#ui-frame")
        frame.get_by_text("Humidity (%)").wait_for(timeout=30_000)  # the app's own content, rendered
        frame.get_by_text("Temperature", exact=True).wait_for(timeout=10_000)
        ttl = page.locator("#ui-ttl").inner_text()
        with page.expect_response(lambda r: r.url.endswith("/keepalive")) as keepalive:
            page.click("#ui-keepalive")
        assert keepalive.value.ok  # answered: the server has counted it as use
        return {"ttl": ttl, "src": page.locator("#ui-frame").get_attribute("src"),
                "shot": screenshot(page, "streamlit-modal"),
                "frame_url": next(f.url for f in page.frames if "/apps/" in f.url)}
    finally:
        ctx.close()


@pytest.mark.browser
@pytest.mark.slow
async def test_the_dashboard_shows_the_streamlit_app_in_its_modal(make_tree, browser, state_root):
    readings = state_root / "data" / "sensor-logger" / "readings.jsonl"
    readings.parent.mkdir(parents=True)
    now = time.time()
    readings.write_text("".join(json.dumps({"at": now - 5 * (120 - i), "temperature_c": 20 + i / 100,
                                            "humidity_pct": 50 - i / 50}) + "\n" for i in range(120)))
    async with make_tree(real_apps=("sensor-dashboard",), web=True) as tree:
        seen = await browser.run(drive, tree.url)
        assert seen["src"] == "/apps/sensor-dashboard/ui/"
        apps_origin = f"http://127.0.0.1:{tree.web.extensions['homehelper'].apps_port}"
        assert apps_origin != tree.url  # app pages have their own origin, never the dashboard's
        assert seen["frame_url"] == apps_origin + "/apps/sensor-dashboard/ui/"  # the proxy, on the app origin
        assert seen["ttl"].startswith("stops in ") and seen["ttl"].endswith(" s if idle")
        assert seen["shot"].stat().st_size > 10_000
        snap = await tree.apps.ref("sensor-dashboard").ask(GetApp("sensor-dashboard"))
        assert snap["state"] == "running"
        assert snap["ttl_left"] > 290  # the page's requests and the keep-alive counted as use
