"""The dashboard's "Send test notification" button, in a real Chromium, to a real HTTP receiver."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from homehelper.actors import ChildSpec
from homehelper.actors.notifier import Notifier
from homehelper.config import NotifyConfig
from tests.fixtures.browser import screenshot
from tests.fixtures.receiver import Receiver, closed_port
from tests.web.conftest import Live
from tests.web.test_browser import _login

pytestmark = [pytest.mark.browser]


async def test_the_button_sends_and_says_which_url_failed(browser, live: Live, receiver: Receiver) -> None:
    down = f"json://127.0.0.1:{closed_port()}/down"
    notifier = Notifier(NotifyConfig(urls=(receiver.url("phone"), down)), live.tree.broadcast)
    await live.tree.root.stop_child("notifier")  # serve's, on the test config (no URLs): this one instead
    live.tree.deps.notifier = live.tree.root.start_child(ChildSpec("notifier", lambda: notifier))
    ctx, page = await browser.run(_login, live.url, {"width": 1280, "height": 900})
    try:
        def click(b):
            page.click("#notify-test")
            expect(page.locator("#status")).to_contain_text("test notification sent to 1 of 2", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("failed: json://127.0.0.1")
            screenshot(page, "dashboard-notify-test")
        await browser.run(click)
        [(path, body)] = await receiver.wait(1)
        assert path == "/phone" and body["title"] == "HomeHelper test notification"
        assert ctx.problems == []
    finally:
        await browser.run(lambda b: ctx.close())
