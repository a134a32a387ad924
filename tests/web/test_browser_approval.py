"""The approval on an app card, in a real Chromium: the card lists what the app asks for, its
sandbox, and an Approve button that lets the waiting app start."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from homehelper.backends import ProcessBackend
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.browser import screenshot
from tests.fixtures.systemd import _stop_processes
from tests.web.conftest import start_live
from tests.web.test_browser import _login

pytestmark = [pytest.mark.browser]


async def test_card_shows_permissions_and_approving_starts_the_app(browser, nursery, state_root) -> None:
    write_app(state_root / "apps", "door-sensor", HEALTHY_APP, name="Door <b>sensor</b>", permissions=["gpio"],
              devices=["/dev/null"], autostart=True)
    backend = ProcessBackend(state_root / "run" / "procs")
    try:
        live = await start_live(nursery, state_root, 1, backend=backend)

        def approve(b):
            ctx, page = _login(b, live.url, {"width": 1280, "height": 900})
            try:
                card = page.locator('.card[data-app="door-sensor"]')
                card.wait_for()
                expect(card.locator(".state")).to_have_text("awaiting_approval")
                assert card.locator("h3").inner_text() == "Door <b>sensor</b>"  # text, never markup
                expect(card.locator(".grants")).to_have_text("gpio, /dev/null (not approved)")
                expect(card.locator(".sandbox")).to_contain_text("unsandboxed")
                assert card.locator(".approval").is_visible()
                expect(card.locator(".asks")).to_have_text("gpio, /dev/null")
                assert "homehelper approve door-sensor" in card.locator(".last-error").inner_text()
                other = page.locator('.card[data-app="app-00"]')
                assert not other.locator(".approval").is_visible()  # asks for nothing: nothing to approve
                expect(other.locator(".grants")).to_have_text("none")
                screenshot(page, "dashboard-app-awaiting-approval")
                card.locator('[data-do="approve"]').click()
                expect(card.locator(".state")).to_have_text("running", timeout=60_000)
                expect(card.locator(".grants")).to_have_text("gpio, /dev/null")
                assert not card.locator(".approval").is_visible()
                screenshot(page, "dashboard-app-approved")
                assert ctx.problems == []
            finally:
                ctx.close()

        await browser.run(approve)
    finally:
        _stop_processes(backend)
