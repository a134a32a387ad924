"""A job's card in a real Chromium, on the real server (`homehelper.serve`, process backend): its schedule,
"never" run, then "Run now" runs it and a Refresh shows the last run with its result and duration."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.actors.test_job import write_job
from tests.fixtures.browser import screenshot, until
from tests.web.test_approval import config_for, running

pytestmark = [pytest.mark.browser]

# Runs before any page script: notes, for each websocket the page opens, whether every deferred script
# had run by then (DOMContentLoaded fires after the last of them).
RECORD_SOCKETS = """
document.addEventListener("DOMContentLoaded", () => { window.__hhScriptsIn = true; }, { once: true });
window.__hhSockets = [];
const Plain = window.WebSocket;
window.WebSocket = class extends Plain {
  constructor(...args) { super(...args); window.__hhSockets.push(window.__hhScriptsIn === true); }
};
"""


def refreshed(page) -> bool:
    page.click("#refresh")
    expect(page.locator("#refresh")).to_be_enabled()  # the refresh's reply has been drawn
    return True


async def test_a_job_card_shows_its_schedule_and_runs_now(browser, state_root: Path) -> None:
    config = config_for(state_root)  # loopback without login: the page opens straight away
    write_job(config.apps_dir, "meter-read", "Mon..Fri 07:00", timeout=45)
    write_job(config.apps_dir, "flaky", "daily", env={"FAIL": "4"})
    async with running(config) as (rt, _client):
        def card_and_run(b):
            ctx = b.new_context(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page = ctx.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.set_default_timeout(15_000)
            try:
                page.goto(rt.url + "/")
                card = page.locator('.card[data-app="meter-read"]')
                card.wait_for()
                expect(card.locator(".type")).to_have_text("job")
                expect(card.locator(".job-schedule")).to_have_text("Mon..Fri 07:00 · timeout 45 s")
                expect(card.locator(".job-last")).to_have_text("never")
                expect(card.locator(".job-next")).to_contain_text("not scheduled")
                run = card.locator('[data-action="run"]')
                assert run.is_visible() and run.is_enabled()
                assert not page.locator('.card[data-app="flaky"] .job-last').is_hidden()
                run.click()
                expect(card.locator(".progress")).to_have_text("")
                # The run takes a venv build and a process; the page is not pushed to: Refresh until it is over.
                until(page, lambda: refreshed(page) and "ok ·" in card.locator(".job-last").inner_text(), 60)
                expect(card.locator(".job-last")).to_contain_text(" · ok · ")
                screenshot(page, "dashboard-job-card")

                flaky = page.locator('.card[data-app="flaky"]')
                flaky.locator('[data-action="start"]').click()  # arms it and runs it now
                until(page, lambda: refreshed(page) and "failed" in flaky.locator(".job-last").inner_text(), 60)
                expect(flaky.locator(".job-last")).to_contain_text("failed (exit status 4)")
                expect(flaky.locator(".state")).to_have_text("scheduled")
                assert flaky.locator('[data-action="stop"]').is_enabled()
                expect(flaky.locator(".job-next")).not_to_contain_text("not scheduled")
                screenshot(page, "dashboard-job-failed")
                assert problems == []
            finally:
                ctx.close()

        await browser.run(card_and_run)


async def test_the_dashboard_connects_only_once_every_script_has_run(browser, state_root: Path) -> None:
    """Regression: app.js connected as soon as it ran, before jobs.js (deferred after it); on a busy
    machine the first refresh's reply was drawn before jobs.js arrived, so a job card showed no
    schedule until the next click (CI, stop 23). Whichever script arrives last, the socket waits for it."""
    config = config_for(state_root)
    write_job(config.apps_dir, "meter-read", "Mon..Fri 07:00", timeout=45)
    async with running(config) as (rt, _client):
        def load(b):
            ctx = b.new_context()
            try:
                page = ctx.new_page()
                page.add_init_script(RECORD_SOCKETS)
                page.goto(rt.url + "/")
                card = page.locator('.card[data-app="meter-read"]')
                card.wait_for()
                expect(card.locator(".job-schedule")).to_have_text("Mon..Fri 07:00 · timeout 45 s")
                return page.evaluate("window.__hhSockets")
            finally:
                ctx.close()

        assert await browser.run(load) == [True]
