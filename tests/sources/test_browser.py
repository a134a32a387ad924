"""The dashboard's "Add app" dialog and a card's "Versions" dialog in a real Chromium: a source is
previewed (its permissions shown) before anything is installed, then installed; its versions list
names the current one and switches to another."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot
from tests.sources.helpers import GOOD_MAIN, commit, manifest
from tests.web.conftest import start_live
from tests.web.test_browser import _login

pytestmark = [pytest.mark.browser]


async def test_add_app_dialog_previews_then_installs_and_versions_switch(browser, nursery, state_root) -> None:
    live = await start_live(nursery, state_root, 1)  # _login waits for app-00's card
    apps = live.tree.config.apps_dir
    repo = state_root / "repo"
    v1 = commit(repo, {"homehelper.json": manifest(permissions=["lan"]), "main.py": GOOD_MAIN}, "v1")

    def add(b):
        ctx, page = _login(b, live.url, {"width": 1280, "height": 900})
        try:
            page.click("#add-app")
            dialog = page.locator("#add-dialog")
            expect(dialog).to_be_visible()
            dialog.locator("#add-source").fill(str(repo))
            dialog.locator("#add-ref").fill("main")
            dialog.locator("#add-preview").click()
            expect(dialog.locator("#add-grants")).to_contain_text("lan", timeout=30_000)
            expect(dialog.locator("#add-id")).to_contain_text("notes · Notes 1.0.0")
            expect(dialog.locator("#add-from")).to_contain_text(v1[:12])
            assert not (apps / "notes").exists()  # shown, not installed
            screenshot(page, "dashboard-add-app-preview")
            dialog.locator("#add-confirm").click()
            expect(dialog.locator("#add-note")).to_contain_text("added notes", timeout=30_000)
            dialog.locator("[data-close]").click()
            card = page.locator('.card[data-app="notes"]')
            expect(card).to_be_visible(timeout=15_000)
            card.locator('[data-do="versions"]').click()
            versions = page.locator("#versions-dialog")
            expect(versions.locator(f'li[data-version="{v1}"]')).to_contain_text("current")
            v2 = commit(repo, {"README": "second\n"}, "v2")
            versions.locator("#versions-check").click()
            expect(versions.locator("#versions-note")).to_have_text(f"{v2[:12]} is available", timeout=30_000)
            versions.locator("#versions-update").click()  # stopped: switched without a health check
            expect(versions.locator("#versions-note")).to_have_text(f"now at {v2[:12]}", timeout=60_000)
            expect(versions.locator(f'li[data-version="{v2}"]')).to_contain_text("current")
            versions.locator(f'li[data-version="{v1}"] button').click()
            expect(versions.locator(f'li[data-version="{v1}"]')).to_contain_text("current", timeout=60_000)
            assert ctx.problems == [], ctx.problems
        finally:
            ctx.close()

    await browser.run(add)
