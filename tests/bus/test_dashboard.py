"""The dashboard says when apps share one Redis identity (real HomeHelper, Redis, Chromium)."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from playwright.sync_api import expect

from homehelper.actors import Broadcast
from homehelper.config import load_config
from homehelper.messages import BusIdentityKnown
from homehelper.serve import Overrides, serve
from tests.fixtures.redis import free_port
from tests.fixtures.tree import Recorder

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.mark.parametrize(("acl", "text"), [("off", "bus: Redis, apps share one identity"), ("auto", "bus: Redis")])
async def test_the_bus_line_names_a_shared_identity(browser, state_root, clean_users, acl, text) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "redis_url": clean_users.url, "redis_acl": acl,
                                                "auth": {"loopback_without_login": True}}, environ={})
    broadcast = Broadcast()
    recorder = Recorder(broadcast)
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(partial(serve, config, overrides=Overrides(broadcast=broadcast)))
        await recorder.wait(BusIdentityKnown, timeout=10)  # the bus state says how apps meet Redis

        def look(b):
            ctx = b.new_context()
            try:
                page = ctx.new_page()
                page.goto(rt.url + "/")
                expect(page.locator("#bus")).to_have_text(text)
                title = page.locator("#bus").get_attribute("title") or ""
                return title
            finally:
                ctx.close()

        title = await browser.run(look)
        assert ("any app may publish on any channel" in title) == (acl == "off")
        nursery.cancel_scope.cancel()
