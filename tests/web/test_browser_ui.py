"""The Streamlit modal in a real Chromium, over a real Streamlit app behind the dashboard's proxy."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot
from tests.fixtures.streamlit import PASSWORD, make_tree  # noqa: F401 - the fixture
from tests.web.test_browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_open_ui_modal_with_time_left_and_keep_alive(browser, make_tree) -> None:  # noqa: F811
    async with make_tree(apps=("hello",), web=True, ttl=120) as tree:
        url = tree.url

        def modal(b):
            ctx = b.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            try:
                page.goto(url + "/login")
                page.fill("#password", PASSWORD)
                page.click("#login")
                card = page.locator('.card[data-app="hello"]')
                card.wait_for()
                assert card.locator('[data-do="open"]').is_visible()  # a Streamlit app has a UI
                card.locator('[data-do="open"]').click()
                page.wait_for_selector("#ui-dialog[open]")
                # the reply comes once the app is up: as long as any wait here, not expect's 5 s
                expect(page.locator("#ui-frame")).to_have_attribute("src", "/apps/hello/ui/", timeout=30_000)
                frame = page.frame_locator("#ui-frame")
                frame.get_by_text("Hello from hello").wait_for()
                # the app's page runs on the app origin (another port), never the dashboard's
                frame_url = next(f.url for f in page.frames if "/apps/hello/ui/" in f.url)
                assert frame_url.startswith("http://127.0.0.1:") and not frame_url.startswith(url + "/")
                left = page.inner_text("#ui-ttl")
                assert re.fullmatch(r"stops in \d+ s if idle", left), left

                def seconds() -> int:  # "stops in N s if idle" -> N
                    return int(page.inner_text("#ui-ttl").split()[2])

                first = seconds()
                until(page, lambda: seconds() < first)  # the local countdown runs down without asking the server
                later = seconds()
                page.click("#ui-keepalive")
                until(page, lambda: seconds() > later)
                screenshot(page, "dashboard-streamlit-modal")
                page.click("#ui-dialog [data-close]")
                # closing the modal unloads the app's page (its websocket goes, so it can idle out)
                expect(page.locator("#ui-frame")).to_have_attribute("src", "about:blank")
            finally:
                ctx.close()

        await browser.run(modal)
