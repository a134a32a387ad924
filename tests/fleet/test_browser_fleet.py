"""The fleet view in a real Chromium on a phone-sized page: two nodes over one Redis, an action across."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from homehelper.messages import AppStateChanged, FleetCommandHandled
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.browser import screenshot, until
from tests.fixtures.tree import wait_until

from .conftest import node_config, open_node
from .test_fleet import _all_online

pytestmark = [pytest.mark.browser, pytest.mark.redis]


async def test_the_fleet_view_on_a_phone_shows_both_nodes_and_stops_an_app_on_the_other(browser, state_root, redis):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    async with open_node(node_config(state_root / "a", "a", redis.url)) as a, \
            open_node(node_config(state_root / "b", "b", redis.url)) as b:
        await wait_until(lambda: _all_online(a.url, {"a", "b"}), timeout=30)
        async with httpx.AsyncClient() as c:
            assert (await c.post(f"{b.url}/api/apps/lamp/start", timeout=60)).status_code == 200
        await b.recorder.wait(AppStateChanged, "lamp", state="running", timeout=60)
        await wait_until(lambda: _lamp_running_in_presence(a.url), timeout=30)

        def look(br: Any) -> None:
            ctx = br.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            page = ctx.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.set_default_timeout(15_000)
            try:
                page.goto(a.url + "/")
                page.click("#fleet-show")
                until(page, lambda: page.locator(".fleet-node").count() == 2, timeout=15)
                assert page.locator(".fleet-node").count() == 2
                card = page.locator('.fleet-node[data-node="b"]')
                assert "online" in card.locator("header .state").inner_text()
                assert "running" in card.locator(".fleet-app").inner_text()
                box = page.locator("#fleet-section").bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, box
                card.locator(".fleet-app button", has_text="stop").click()
                until(page, lambda: "stop lamp on b: stopped" in card.locator(".progress").inner_text()
                      if card.count() else False, timeout=60)
                screenshot(page, "fleet-phone")
                assert problems == []
            finally:
                ctx.close()

        await browser.run(look)
        handled = (await b.recorder.wait(FleetCommandHandled, "lamp"))[0]
        assert (handled.asker, handled.action, handled.ok) == ("a", "stop", True)


async def _lamp_running_in_presence(url: str) -> bool:
    async with httpx.AsyncClient() as c:
        fleet = (await c.get(f"{url}/api/fleet")).json()
    apps = next((n["summary"]["apps"] for n in fleet["nodes"] if n["node"] == "b"), [])
    return any(x["id"] == "lamp" and x["state"] == "running" for x in apps)
