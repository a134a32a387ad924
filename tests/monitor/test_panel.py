"""The dashboard's system panel fed by the sensor actor reading a Pi 5's tree, in a real Chromium."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from homehelper.actors import ChildSpec
from homehelper.actors.sensors import SensorActor
from homehelper.monitor import PiPaths
from tests.web.conftest import PASSWORD, start_live

from .pi5_tree import build_tree

pytestmark = [pytest.mark.browser]


async def test_system_panel_shows_the_pi(browser, nursery: trio.Nursery, state_root: Path, tmp_path: Path) -> None:
    live = await start_live(nursery, state_root, n_apps=1, sensors=False)
    pi = PiPaths.under(build_tree(tmp_path / "pi5"))
    tree = live.tree
    tree.deps.sensors = tree.root.start_child(
        ChildSpec("sensors", lambda: SensorActor(tree.config, tree.broadcast.publish, tree.broadcast, None, pi)))

    async with httpx.AsyncClient() as client:
        await live.login(client)
        now = (await client.get(live.url + "/api/system")).json()["now"]
    assert now["board"]["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert now["throttled"]["raw"] == "0x50005"

    def panel(b):
        ctx = b.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.set_default_timeout(10_000)
            page.goto(live.url + "/")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_url(live.url + "/")
            page.wait_for_selector('[data-metric="throttling"]')
            return (page.inner_text('[data-metric="throttling"] b'),
                    page.get_attribute('[data-metric="throttling"]', "class"),
                    page.inner_text('[data-metric="temperature"] b'),
                    page.inner_text('[data-metric="memory"] b'))
        finally:
            ctx.close()

    throttling, css, temperature, memory = await browser.run(panel)
    assert "under voltage" in throttling and "throttled" in throttling
    assert "bad" in css.split()  # under-voltage now
    assert temperature == "55.4 °C"  # the hottest sensor: the RP1 chip
    assert memory.endswith("%")
