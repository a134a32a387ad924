"""Backups on the dashboard (a real Chromium) and over the API (a real server): back up now, list,
download, restore one app's data; a damaged archive is refused over the API too."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from playwright.sync_api import expect

from homehelper.backup.archive import backup_folder
from homehelper.messages import GetApp, StartApp
from tests.backup.helpers import flipped_bytes
from tests.fixtures.browser import screenshot
from tests.web.conftest import Live
from tests.web.test_browser import _login


def with_backups(live: Live) -> None:
    assert live.tree.deps.backup is not None  # serve's tree has its backup actor


async def test_backup_list_download_and_restore_over_the_api(live: Live) -> None:
    with_backups(live)
    app = live.tree.app_ids[0]
    data = live.tree.config.data_dir(app)
    data.mkdir(parents=True, exist_ok=True)
    (data / "state.txt").write_text("before\n")
    await live.tree.apps.ref(app).ask(StartApp(app), timeout=30)
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        csrf = await live.login(client)
        headers = {"X-CSRF-Token": csrf}
        r = await client.post("/api/backups", headers=headers)
        assert r.status_code == 200, r.text
        name = r.json()["backup"]["name"]
        listed = (await client.get("/api/backups")).json()
        assert [b["name"] for b in listed["backups"]] == [name]
        body = (await client.get(f"/api/backups/{name}")).content
        on_disk = (backup_folder(live.tree.config) / name).read_bytes()
        assert hashlib.sha256(body).digest() == hashlib.sha256(on_disk).digest()
        assert (await client.get("/api/backups/..%2F..%2Fconfig%2Fauth.json")).status_code == 404

        (data / "state.txt").write_text("after\n")
        r = await client.post(f"/api/apps/{app}/restore", json={"archive": name}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["restored"]["restarted"] is True
        assert (data / "state.txt").read_text() == "before\n"
        assert (await live.tree.apps.ref(app).ask(GetApp(app)))["state"] == "running"

        bad = backup_folder(live.tree.config) / name.replace(".tar.gz", "-9.tar.gz")
        bad.write_bytes(flipped_bytes(on_disk))
        r = await client.post(f"/api/apps/{app}/restore", json={"archive": bad.name}, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "archive_refused"
        assert "nothing was changed" in r.json()["message"]
        assert (data / "state.txt").read_text() == "before\n"
        r = await client.post("/api/backups")  # no CSRF token: refused
        assert r.status_code == 403


@pytest.mark.browser
async def test_the_dashboard_backs_up_and_restores_an_apps_data(browser, live: Live) -> None:
    with_backups(live)
    app = live.tree.app_ids[1]
    data = live.tree.config.data_dir(app)
    data.mkdir(parents=True, exist_ok=True)
    (data / "notes.txt").write_text("milk\n")
    ctx, page = await browser.run(_login, live.url, {"width": 1280, "height": 900})
    try:
        def back_up(b: object) -> None:
            page.click("#backup-now")
            expect(page.locator("#backup-status")).to_contain_text("written homehelper-", timeout=30_000)
            page.click("#backup-show")
            expect(page.locator("#backup-list a")).to_have_count(1)

        await browser.run(back_up)
        (data / "notes.txt").write_text("lost\n")

        def restore(b: object) -> None:
            page.select_option("#restore-app", app)
            page.once("dialog", lambda d: d.accept())
            page.click("#restore-go")
            expect(page.locator("#backup-status")).to_contain_text(f"{app}: 1 files restored", timeout=30_000)
            screenshot(page, "dashboard-backups")

        await browser.run(restore)
        assert (data / "notes.txt").read_text() == "milk\n"
        assert ctx.problems == []
    finally:
        await browser.run(lambda b: ctx.close())

