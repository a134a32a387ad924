"""The dashboard in a real Chromium: log in, refresh, start and stop an app, follow its log, on a
laptop and a phone-sized screen. Screenshots go to artifacts/."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from homehelper.config import MonitorConfig
from homehelper.messages import AppStateChanged, ListApps, SystemSampled
from tests.fixtures.browser import screenshot, until
from tests.web.conftest import PASSWORD, Live, start_live

pytestmark = [pytest.mark.browser]


def _login(browser, url: str, viewport: dict[str, int]):
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    problems: list[str] = []  # script errors and CSP violations on our own pages
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    ctx.problems = problems  # type: ignore[attr-defined]
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    assert page.url.endswith("/login")  # no session: the login page
    screenshot(page, f"dashboard-login-{viewport['width']}")
    page.fill("#password", "not the password")
    page.click("#login")
    assert "wrong password" in page.inner_text("#login-error")
    problems.clear()  # the browser logs the 401 of that wrong password as an error: expected
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(url + "/")
    page.wait_for_selector('.card[data-app="app-00"]')
    return ctx, page


def _state(page, app_id: str) -> str:
    return page.inner_text(f'.card[data-app="{app_id}"] .state')


async def test_dashboard_in_chromium(browser, live_services: Live) -> None:
    live = live_services
    ctx, page = await browser.run(_login, live.url, {"width": 1280, "height": 900})
    try:
        names = await browser.run(lambda b: page.locator(".card h3").all_inner_texts())
        assert names == ["App 0", "App 1", "App 2"]

        # Something changes behind the page's back; it shows once Refresh is clicked (no pushes).
        async with httpx.AsyncClient() as c:
            csrf = await live.login(c)
            r = await c.post(live.url + "/api/apps/app-02/start", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200
        # a real start: venv, process, then /health decides "running"
        await live.tree.recorder.wait(AppStateChanged, "app-02", state="running", timeout=30)
        assert await browser.run(lambda b: _state(page, "app-02")) == "stopped"

        def refresh(b):
            page.click("#refresh")
            expect(page.locator('.card[data-app="app-02"] .state')).to_have_text("running")
            screenshot(page, "dashboard-refreshed")
        await browser.run(refresh)

        def start_stop(b):
            card = page.locator('.card[data-app="app-00"]')
            card.locator('[data-action="start"]').click()
            try:  # a real first start builds the app's venv, then waits for /health
                expect(card.locator(".state")).to_have_text("running", timeout=45_000)
            finally:
                screenshot(page, "dashboard-app-starting")
            assert card.locator(".port").inner_text().isdigit()
            assert card.locator('[data-action="start"]').is_disabled()
            screenshot(page, "dashboard-app-started")
            card.locator('[data-action="stop"]').click()
            expect(card.locator(".state")).to_have_text("stopped")
            screenshot(page, "dashboard-app-stopped")
        await browser.run(start_stop)
        apps = {a["id"]: a["state"] for a in await live.tree.rt.refs["registry"].ask(ListApps())}
        assert apps["app-00"] == "stopped"

        def logs(b):
            page.locator('.card[data-app="app-02"] [data-do="logs"]').click()
            page.wait_for_selector("#log-dialog[open]")
            expect(page.locator("#log-lines")).to_contain_text("hello from")
            first = page.inner_text("#log-lines").count("tick")
            until(page, lambda: page.inner_text("#log-lines").count("tick") > first)  # followed: no click needed
            href = page.get_attribute("#log-download", "href")
            screenshot(page, "dashboard-log-viewer")
            page.click("#log-dialog [data-close]")
            return href
        href = await browser.run(logs)
        assert href == "/api/apps/app-02/logs/download"

        def system_and_events(b):
            assert re.fullmatch(r"[\d.]+%", page.inner_text('[data-metric="cpu"] b'))
            assert "app started" in page.inner_text("#events")
        await browser.run(system_and_events)
        assert ctx.problems == []
    finally:
        await browser.run(lambda b: ctx.close())


async def test_dashboard_on_a_phone_with_charts(browser, nursery, state_root) -> None:
    live = await start_live(nursery, state_root, monitor=MonitorConfig(interval=0.1))
    # a few background samples make a history to chart
    await live.tree.recorder.wait(lambda e: isinstance(e, SystemSampled) and e.history >= 4, timeout=10)

    def phone(b):
        ctx, page = _login(b, live.url, {"width": 390, "height": 844})
        try:
            charts = page.locator("#charts .chart")
            assert charts.count() >= 3  # CPU, memory, disk (no temperature sensor on this machine)
            assert len(charts.first.locator("polyline").get_attribute("points").split()) >= 4
            # one column of cards, nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            boxes = [page.locator(f'.card[data-app="app-0{i}"]').bounding_box() for i in range(2)]
            assert boxes[0]["x"] == boxes[1]["x"] and boxes[1]["y"] > boxes[0]["y"]
            screenshot(page, "dashboard-phone")
            assert ctx.problems == []
        finally:
            ctx.close()
    await browser.run(phone)
