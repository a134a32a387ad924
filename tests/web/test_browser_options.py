"""An app's settings in a real Chromium: the card's Settings button opens a form generated from
the manifest's options; a bad value is shown beside its field and changes nothing; saving a good
one restarts the app, which reads the new value. A password is never shown back."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from homehelper.backends import ProcessBackend
from tests.fixtures.browser import screenshot
from tests.fixtures.systemd import _stop_processes
from tests.web.conftest import start_live
from tests.web.test_browser import _login

from .test_options_secrets import READER, _seen

pytestmark = [pytest.mark.browser]

OPTIONS = {"interval": {"type": "int", "default": 5, "min": 1, "max": 3600, "title": "Interval",
                        "description": "seconds between readings"},
           "units": {"type": "enum", "choices": ["C", "F"], "default": "C"},
           "metric": {"type": "bool", "default": True},
           "rooms": {"type": "list", "default": ["hall"]},
           "api_key": {"type": "password"}}


async def test_the_settings_form_changes_an_option_and_restarts_the_app(browser, nursery, state_root) -> None:
    folder = state_root / "apps" / "weather"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(READER)
    (folder / "homehelper.json").write_text(json.dumps({"id": "weather", "name": "Weather", "type": "service",
                                                        "options": OPTIONS}))
    backend = ProcessBackend(state_root / "run" / "procs")
    try:
        live = await start_live(nursery, state_root, 1, backend=backend)
        data = live.tree.config.data_dir("weather")

        def wait_seen(check, timeout: float = 60.0):
            deadline = time.monotonic() + timeout
            while not ((seen := _seen(data)) and check(seen)):
                assert time.monotonic() < deadline, _seen(data)
                time.sleep(0.1)
            return seen

        def settings(b):
            ctx, page = _login(b, live.url, {"width": 1280, "height": 900})
            try:
                card = page.locator('.card[data-app="weather"]')
                card.wait_for()
                expect(card.locator(".state")).to_have_text("stopped", timeout=30_000)
                card.locator('[data-action="start"]').click()
                expect(card.locator(".state")).to_have_text("running", timeout=60_000)
                first = wait_seen(lambda s: s["options"].get("interval") == 5)
                assert not page.locator('.card[data-app="app-00"] [data-do="settings"]').is_visible()  # no options
                card.locator('[data-do="settings"]').click()
                dialog = page.locator("#options-dialog")
                expect(dialog).to_be_visible()
                expect(dialog.locator('label[for="opt-interval"]')).to_have_text("Interval")
                expect(dialog.locator("#opt-interval")).to_have_value("5")
                expect(dialog.locator("#opt-units")).to_have_value("C")
                expect(dialog.locator('[data-option="api_key"] .secret-state')).to_have_text("not set")

                dialog.locator("#opt-interval").fill("9000")  # over max: the browser would refuse it too,
                dialog.locator("#opt-interval").evaluate("e => e.removeAttribute('max')")  # so the server must
                dialog.locator('button[type="submit"]').click()
                expect(dialog.locator('[data-option="interval"] .option-error')).to_contain_text(
                    "interval: must be from 1 to 3600")
                assert _seen(data)["pid"] == first["pid"]  # refused: the app runs on, untouched
                assert ctx.problems == ["Failed to load resource: the server responded with a status of 400 ()"]
                ctx.problems.clear()  # the browser logs the refusal's 400 as an error: expected

                dialog.locator("#opt-interval").fill("42")
                dialog.locator("#opt-units").select_option("F")
                dialog.locator("#opt-api_key").fill("browser-secret-123")
                dialog.locator('button[type="submit"]').click()
                expect(page.locator("#options-note")).to_have_text("saved; the app restarted to use them",
                                                                   timeout=60_000)
                expect(dialog.locator('[data-option="api_key"] .secret-state')).to_have_text("set")
                assert dialog.locator("#opt-api_key").input_value() == ""  # never shown back
                assert "browser-secret-123" not in page.content()
                screenshot(page, "dashboard-app-settings")
                seen = wait_seen(lambda s: s["pid"] != first["pid"])
                assert seen["options"] == {"interval": 42, "units": "F", "metric": True, "rooms": ["hall"]}
                assert seen["secret"] == "browser-secret-123"
                dialog.locator("[data-close]").click()
                expect(dialog).to_be_hidden()
                assert ctx.problems == [], ctx.problems
            finally:
                ctx.close()

        await browser.run(settings)
    finally:
        _stop_processes(backend)
