"""The /ws websocket against the live server on a real port: refresh, actions with progress, logs,
bad input, Origin and session checks, application-level pings."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest
import trio

from homehelper.config import AuthConfig
from homehelper.web import create_app
from homehelper.web.listener import serve_app
from tests.fixtures.tree import wait_until
from tests.web.conftest import Live, build_tree, start_live
from tests.web.wsclient import Closed, Rejected, WSClient


async def session_cookie(live: Live) -> str:
    async with httpx.AsyncClient() as c:
        await live.login(c)
        return f"hh_session={c.cookies['hh_session']}"


def headers(live: Live, cookie: str, origin: str | None = None) -> list[tuple[str, str]]:
    return [("Origin", origin or live.origin), ("Cookie", cookie)]


async def call(ws: Any, msg: dict[str, Any]) -> dict[str, Any]:
    """Send one request; return its reply or error (skipping progress and pings)."""
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await ws.recv())
        if reply["type"] in ("reply", "error", "pong") and reply.get("id") == msg.get("id"):
            return reply


async def test_refresh_all_and_parts(live: Live) -> None:
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        snap = await call(ws, {"type": "refresh", "id": 1, "what": "all"})
        assert snap["ok"] and [a["id"] for a in snap["data"]["apps"]] == live.tree.app_ids
        assert snap["data"]["system"]["available"] and snap["data"]["system"]["now"]["cpu"]["count"] >= 1
        # the first about an app (the bridge may say "no Redis configured" before)
        assert next(e["kind"] for e in snap["data"]["events"] if e["kind"].startswith("app_")) == "app_discovered"
        one = await call(ws, {"type": "refresh", "id": "x", "what": "app", "app": "app-01"})
        assert one["data"]["id"] == "app-01"
        assert (await call(ws, {"type": "ping", "id": 3}))["type"] == "pong"


async def test_bad_messages_get_errors_and_socket_carries_on(live: Live) -> None:
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        await ws.send("{oops")
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["status"] == 400 and "malformed JSON" in err["message"]
        err = await call(ws, {"type": "teleport", "id": 1})
        assert err["error"] == "bad_request" and "unknown message type" in err["message"]
        err = await call(ws, {"type": "refresh", "id": 2, "what": "app", "app": "ghost"})
        assert err["status"] == 404 and err["error"] == "unknown_app"
        err = await call(ws, {"type": "action", "id": 3, "app": "app-00", "action": "explode"})
        assert err["status"] == 400
        await ws.send(json.dumps({"type": "refresh", "id": 4, "pad": "x" * 100_000}))
        err = json.loads(await ws.recv())
        assert err["status"] == 413 and err["error"] == "too_large"
        ok = await call(ws, {"type": "refresh", "id": 5, "what": "apps"})
        assert ok["ok"] and all(a["state"] == "stopped" for a in ok["data"])  # nothing changed


async def test_huge_frame_closes_only_that_socket(live: Live) -> None:
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        with pytest.raises(Closed) as err:
            await ws.send("x" * 2_000_000)
            await ws.recv()
        assert err.value.code in (1009, None)  # "message too big", or dropped while we were still sending
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        assert (await call(ws, {"type": "refresh", "id": 1, "what": "apps"}))["ok"]


async def test_origin_and_session_are_checked(live: Live) -> None:
    cookie = await session_cookie(live)
    for hdrs in (headers(live, cookie, origin="http://evil.example"),  # a page on another site
                 headers(live, "hh_session=forged"),  # no session
                 [("Cookie", cookie)]):  # no Origin and no token
        with pytest.raises(Rejected) as err:
            await WSClient.connect(live.ws_url, hdrs)
        assert err.value.status in (401, 403)


async def test_action_reports_progress_to_its_client_only(live: Live) -> None:
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as a, \
            await WSClient.connect(live.ws_url, headers(live, cookie)) as b:
        await a.send(json.dumps({"type": "action", "id": 7, "app": "app-00", "action": "start"}))
        progress = []
        while True:
            msg = json.loads(await a.recv())
            if msg["type"] == "progress":
                progress.append(msg["event"])
            elif msg["type"] == "reply":
                break
        assert msg["id"] == 7 and msg["data"]["app"]["state"] == "running"
        states = [e["state"] for e in progress if e["kind"] == "app_state_changed"]
        assert states[:2] == ["starting", "running"]
        assert all(e["app_id"] == "app-00" for e in progress)
        # b started nothing: it gets no pushes, only the reply to its own refresh
        reply = await call(b, {"type": "refresh", "id": 1, "what": "app", "app": "app-00"})
        assert reply["data"]["state"] == "running"
        with trio.move_on_after(0.3):
            extra = await b.recv()
            pytest.fail(f"unrequested push: {extra}")
        stop = await call(a, {"type": "action", "id": 8, "app": "app-00", "action": "stop"})
        assert stop["data"]["app"]["state"] == "stopped"


async def test_log_follow_streams_new_lines(live: Live) -> None:
    cookie = await session_cookie(live)
    log = live.tree.config.logs_dir("app-01") / "app.log"
    log.parent.mkdir(parents=True)
    log.write_text("old line\n")
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        first = await call(ws, {"type": "logs.follow", "id": 1, "app": "app-01", "lines": 10})
        assert first["data"]["lines"] == ["old line"]
        with log.open("a") as f:
            f.write("new 1\nnew 2\n")
        got: list[str] = []
        with trio.fail_after(5):
            while len(got) < 2:
                msg = json.loads(await ws.recv())
                if msg["type"] == "log":
                    got += msg["lines"]
        assert got == ["new 1", "new 2"]
        assert (await call(ws, {"type": "logs.unfollow", "id": 2}))["ok"]
        err = await call(ws, {"type": "logs.follow", "id": 3, "app": "ghost"})
        assert err["status"] == 404


async def test_dead_peer_is_closed_after_missed_pings(nursery, state_root) -> None:
    live = await start_live(nursery, state_root, n_apps=1)
    live.app.config["WS_PING_INTERVAL"] = 0.1
    live.app.config["WS_PING_TIMEOUT"] = 0.35
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        pings = 0
        with trio.fail_after(5), pytest.raises(Closed):
            while True:  # a client that never answers: pinged, then dropped
                msg = json.loads(await ws.recv())
                pings += msg["type"] == "ping"
        assert pings >= 2
        assert ws.closed is not None and ws.closed.code == 1001
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        with trio.fail_after(5):
            for _ in range(6):  # one that answers stays
                msg = json.loads(await ws.recv())
                assert msg["type"] == "ping"
                await ws.send(json.dumps({"type": "pong"}))


async def test_loopback_without_login_when_configured(nursery, state_root) -> None:
    tree = await build_tree(nursery, state_root, 1)
    tree.deps.config = attrs.evolve(tree.config, auth=AuthConfig(loopback_without_login=True))
    url = (await nursery.start(serve_app, create_app(tree.deps), "127.0.0.1", 0, trio.Event()))[0]
    async with httpx.AsyncClient() as c:
        assert (await c.get(url + "/api/apps")).status_code == 200  # 127.0.0.1, no session
        r = await c.post(url + "/api/apps/app-00/start", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403  # a page elsewhere cannot drive it through the browser
        r = await c.post(url + "/api/apps/app-00/start", headers={"Origin": url})
        assert r.status_code == 200 and r.json()["app"]["state"] == "running"
        await c.post(url + "/api/apps/app-00/stop", headers={"Origin": url})
    async with await WSClient.connect(url.replace("http", "ws") + "/ws", [("Origin", url)]) as ws:
        assert (await call(ws, {"type": "refresh", "id": 1, "what": "apps"}))["ok"]


async def test_without_loopback_setting_loopback_needs_login(live: Live) -> None:
    async with httpx.AsyncClient() as c:
        assert (await c.get(live.url + "/api/apps")).status_code == 401
    with pytest.raises(Rejected) as err:
        await WSClient.connect(live.ws_url, [("Origin", live.origin)])
    assert err.value.status == 401


async def test_a_real_service_start_replies_once_it_is_running(live_services: Live) -> None:
    live = live_services
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        await ws.send(json.dumps({"type": "action", "id": 1, "app": "app-01", "action": "start"}))
        states = []
        with trio.fail_after(60):
            while (msg := json.loads(await ws.recv()))["type"] != "reply":
                if msg["type"] == "progress" and msg["event"]["kind"] == "app_state_changed":
                    states.append(msg["event"]["state"])
        # installs first (a venv), then starts; the reply waits for /health to say running
        assert states == ["installing", "stopped", "starting", "running"]
        assert msg["data"]["app"]["state"] == "running" and msg["data"]["app"]["healthy"] is True
        stop = await call(ws, {"type": "action", "id": 2, "app": "app-01", "action": "stop"})
        assert stop["data"]["app"]["state"] == "stopped"


async def test_open_sockets_are_bounded(live: Live) -> None:
    live.app.config["WS_PER_CLIENT"] = 2  # per session now: another client keeps its own room
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)), \
            await WSClient.connect(live.ws_url, headers(live, cookie)):
        with pytest.raises(Rejected) as err:
            await WSClient.connect(live.ws_url, headers(live, cookie))
        assert err.value.status == 503

    async def let_in() -> bool:  # the server ends the two closed sockets' handlers on its own time
        try:
            async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
                return bool((await call(ws, {"type": "ping", "id": 1}))["type"] == "pong")
        except Rejected:
            return False

    assert await wait_until(let_in, timeout=5)  # the two closed: a new one is let in
