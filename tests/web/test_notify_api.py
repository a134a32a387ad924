"""POST /api/notify/test through the whole running server (serve.py's tree) to a real HTTP receiver."""

from __future__ import annotations

import httpx
import trio

from homehelper.config import load_config
from homehelper.messages import AppInstallFailed
from homehelper.serve import serve
from homehelper.web.openapi import spec
from tests.fixtures.receiver import Receiver, closed_port
from tests.fixtures.redis import free_port


async def test_the_test_button_reaches_the_receiver_and_names_a_url_that_is_down(state_root,
                                                                                 receiver: Receiver) -> None:
    down = f"json://user:s3cret@127.0.0.1:{closed_port()}/x"
    config = load_config(state_root, environ={}, overrides={
        "port": free_port(), "auth": {"loopback_without_login": True},
        "notify": {"urls": [f"phone={receiver.url('phone')}", down]}})
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=rt.url, timeout=60) as c:
            r = await c.post("/api/notify/test")
            assert r.status_code == 200, r.text
            reply = r.json()
            assert reply["sent"] == 1 and [x["ok"] for x in reply["results"]] == [True, False]
            assert "s3cret" not in r.text and reply["results"][1]["error"]
            [(path, body)] = await receiver.wait(1)
            assert path == "/phone" and body["title"] == "HomeHelper test notification"
            # the tree's notifier follows the broadcast: a failed install reaches the receiver too
            rt.broadcast.publish(AppInstallFailed("weather", "pip: no matching distribution"))
            got = await receiver.wait(2)
            assert "Installing app weather failed" in got[1][1]["message"]
            kinds = [e["kind"] for e in (await c.get("/api/events")).json()]
            assert "notification_failed" in kinds  # the URL that is down, on the dashboard's event log
        nursery.cancel_scope.cancel()
    assert "/api/notify/test" in spec()["paths"]


async def test_without_urls_the_test_button_says_what_to_set(state_root) -> None:
    config = load_config(state_root, environ={}, overrides={
        "port": free_port(), "auth": {"loopback_without_login": True}})
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=rt.url) as c:
            r = await c.post("/api/notify/test")
            assert r.status_code == 409 and "notify.urls" in r.json()["message"]
        nursery.cancel_scope.cancel()


async def test_a_state_file_found_damaged_at_start_reaches_the_receiver(state_root, receiver: Receiver) -> None:
    # The port allocator reads registry/ports.json as the tree starts, before the notifier's own start:
    # the notifier follows the broadcast from its construction, so this is not lost.
    config = load_config(state_root, environ={}, overrides={
        "port": free_port(), "notify": {"urls": [receiver.url()]}})
    config.registry_dir.mkdir(parents=True)
    (config.registry_dir / "ports.json").write_bytes(b"\x00{half a write")
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        [(_, body)] = await receiver.wait(1)
        assert body["title"] == "A state file was damaged" and "ports.json" in body["message"]
        nursery.cancel_scope.cancel()
