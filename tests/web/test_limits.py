"""File handles and sockets: the open-files limit is raised, slow sockets are capped per address and
overall (logged once), and websockets are capped per client, so floods do not lock a logged-in
dashboard out. Against the real server on real ports."""

from __future__ import annotations

import resource
from functools import partial
from typing import Any

import httpx
import trio

from homehelper.config import AuthConfig
from homehelper.web import create_app
from homehelper.web.listener import ConnectionCap, serve_app
from tests.web.conftest import PASSWORD, build_tree, start_live
from tests.web.test_proxy import UPGRADE
from tests.web.wsclient import Rejected, WSClient


async def test_serving_raises_the_open_files_limit_to_the_hard_limit(nursery, state_root) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))  # as systemd starts us: 1024 of 524288
    try:
        await start_live(nursery, state_root, 1)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class DecidedCap(ConnectionCap):
    """The server's cap, saying when it has admitted or refused `expected` connections."""

    def __init__(self, expected: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.expected, self.decided = expected, trio.Event()

    def admit(self, client: str) -> bool:
        admitted = super().admit(client)
        self.expected -= 1
        if self.expected <= 0:
            self.decided.set()
        return admitted


async def test_slow_sockets_are_capped_logged_once_and_a_dashboard_still_gets_in(nursery, state_root, caplog) -> None:
    tree = await build_tree(nursery, state_root, 1)
    cap = DecidedCap(200, total=60, per_client=40)
    urls = await nursery.start(partial(serve_app, create_app(tree.deps), "127.0.0.1", 0, trio.Event(), cap=cap))
    url = urls[0]
    port = int(url.rsplit(":", 1)[1])
    slow: list[trio.SocketStream] = []
    try:
        for _ in range(200):  # the start of a request, never finished: each holds a socket
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(b"GET /api/apps HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        with trio.fail_after(10):
            await cap.decided.wait()
        assert cap.open == 40 and cap.refused == 160  # one address gets its share, not every handle
        closed = 0
        for s in slow:
            with trio.move_on_after(0.05):
                try:
                    closed += await s.receive_some(1) == b""
                except trio.BrokenResourceError:
                    closed += 1
        assert closed == 160  # refused at once, not left to pile up
        # a logged-in dashboard on another machine (address) still gets in: pages, API, websocket
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=url, transport=transport, trust_env=False, timeout=10) as c:
            r = await c.post("/login", json={"password": PASSWORD})
            assert r.status_code == 200
            assert (await c.get("/api/apps")).status_code == 200
            assert (await c.get("/ws", headers={**UPGRADE, "Origin": url})).status_code == 101
        refusals = [r for r in caplog.records if "connection cap reached" in r.getMessage()]
        assert len(refusals) == 1  # logged once, not 160 times
    finally:
        for s in slow:
            await trio.aclose_forcefully(s)


async def test_websockets_are_capped_per_client_and_a_session_always_finds_room(nursery, state_root) -> None:
    import attrs

    live = await start_live(nursery, state_root, 1)
    deps = live.tree.deps
    deps.config = attrs.evolve(deps.config, auth=AuthConfig(loopback_without_login=True))
    live.app.config["WS_PER_CLIENT"] = 3
    live.app.config["WS_MAX_SOCKETS"] = 5  # sockets without a session, all clients together
    live.app.config["WS_MAX_TOTAL"] = 9
    anon = [("Origin", live.origin)]  # loopback without login: no session
    held = []
    try:
        for _ in range(3):
            held.append(await WSClient.connect(live.ws_url, anon))
        try:
            await WSClient.connect(live.ws_url, anon)
            raise AssertionError("a 4th socket of one client was let in")
        except Rejected as err:
            assert err.status == 503
        token = deps.auth.create_token("script")["token"]
        bearer = [("Authorization", f"Bearer {token}")]
        held.append(await WSClient.connect(live.ws_url, bearer))
        held.append(await WSClient.connect(live.ws_url, bearer))
        try:
            await WSClient.connect(live.ws_url, bearer)  # another client, but the shared room is full
            raise AssertionError("a 6th socket without a session was let in")
        except Rejected as err:
            assert err.status == 503
        # logged-in dashboards still connect: sessions have their own room
        async with httpx.AsyncClient(base_url=live.url, trust_env=False) as c:
            await live.login(c)
            cookie = f"hh_session={c.cookies['hh_session']}"
        for _ in range(3):
            held.append(await WSClient.connect(live.ws_url, [("Origin", live.origin), ("Cookie", cookie)]))
    finally:
        for ws in held:
            await ws.aclose()
