"""The log viewer's search in a real Chromium: text and a time range over the rotated files."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot
from tests.web.conftest import Live
from tests.web.test_browser import _login

pytestmark = [pytest.mark.browser]


def _local(minute: int) -> datetime:
    return datetime(2026, 11, 28, 10, minute).astimezone()  # the browser's time zone is this machine's


def _rotated(live: Live, app_id: str) -> None:
    log_dir = live.tree.config.logs_dir(app_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    for name, first in (("app.log.2", 0), ("app.log.1", 10), ("app.log", 20)):
        (log_dir / name).write_text("".join(
            f"{_local(m).isoformat(timespec='milliseconds')} tick {m}{' ERROR' if m % 5 == 0 else ''}\n"
            for m in range(first, first + 10)))
        when = _local(first + 9).timestamp()
        os.utime(log_dir / name, (when, when))


async def test_log_viewer_searches_by_text_and_time(browser, live: Live) -> None:
    _rotated(live, "app-01")
    ctx, page = await browser.run(_login, live.url, {"width": 1280, "height": 900})
    try:
        def search(b):
            page.locator('.card[data-app="app-01"] [data-do="logs"]').click()
            lines = page.locator("#log-lines")
            expect(lines).to_contain_text("tick 29")
            page.fill("#log-grep", "ERROR")
            page.click('#log-search button[type="submit"]')
            expect(page.locator("#log-found")).to_have_text("6 matching (last 500 at most)")
            assert [ln.split()[2] for ln in lines.inner_text().splitlines()] == ["0", "5", "10", "15", "20", "25"]
            page.fill("#log-grep", "")
            page.fill("#log-since", "2026-11-28T10:08:00")
            page.fill("#log-until", "2026-11-28T10:11:30")
            page.click('#log-search button[type="submit"]')
            expect(page.locator("#log-found")).to_have_text("4 matching (last 500 at most)")
            assert [ln.split()[2] for ln in lines.inner_text().splitlines()] == ["8", "9", "10", "11"]
            screenshot(page, "dashboard-log-search")
            page.click('#log-search button[type="reset"]')
            expect(lines).to_contain_text("tick 29")
            expect(page.locator("#log-found")).to_have_text("")
        await browser.run(search)
        assert ctx.problems == []  # type: ignore[attr-defined]
    finally:
        await browser.run(lambda b: ctx.close())
