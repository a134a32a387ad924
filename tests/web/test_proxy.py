"""The reverse proxy to real Streamlit processes, through the real web app on a real port."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import re
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio_websocket
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from homehelper.actors import Broadcast, Supervisor
from homehelper.actors.readmodel import AppRecord, AppsView
from homehelper.config import Config
from homehelper.messages import GetApp, StopApp
from homehelper.web import WebDeps
from homehelper.web.proxy import UIProxy, _forward_headers, _sendable
from tests.fixtures.streamlit import PASSWORD, tree_factory

HEARTBEAT = BackMsg(app_heartbeat=True).SerializeToString()


@pytest.fixture
def make_tree(state_root: Any) -> Any:
    return tree_factory(state_root)


@contextlib.asynccontextmanager
async def ws_connect(url: str, headers: list[tuple[bytes, bytes]] | None = None,
                     subprotocols: list[str] | None = None) -> AsyncIterator[Any]:
    """A websocket client that closes its socket even when the server closes TCP first
    (trio-websocket's own open_websocket_url leaves it open then)."""
    u = urlsplit(url)
    stream = await trio.open_tcp_stream(u.hostname or "127.0.0.1", u.port or 80)
    async with stream, trio.open_nursery() as n:
        ws = await trio_websocket.wrap_client_stream(n, stream, u.netloc, u.path, subprotocols=subprotocols,
                                                     extra_headers=headers or [])
        try:
            yield ws
        finally:
            await ws.aclose()
            n.cancel_scope.cancel()


UPGRADE = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
           "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}


async def logged_in(tree: Any) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=tree.url, trust_env=False, timeout=30)
    r = await client.post("/login", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf"]
    return client


async def open_app(client: httpx.AsyncClient, app_id: str) -> dict[str, Any]:
    r = await client.post(f"/api/apps/{app_id}/open")
    assert r.status_code == 200, r.text
    return r.json()


async def enter_app(client: httpx.AsyncClient, app_id: str, appc: httpx.AsyncClient | None = None
                    ) -> httpx.AsyncClient:
    """A client on the app origin, let in the way a browser is: the dashboard (with its session)
    redirects to the app origin with a ticket, which becomes that app's cookie there."""
    r = await client.get(f"/apps/{app_id}/ui/")
    assert r.status_code == 302, r.text
    ticket_url = r.headers["location"]
    u = urlsplit(ticket_url)
    assert u.netloc != urlsplit(str(client.base_url)).netloc and u.path == f"/apps/{app_id}/ticket"
    if appc is None:
        appc = httpx.AsyncClient(base_url=f"{u.scheme}://{u.netloc}", trust_env=False, timeout=30)
    r = await appc.get(ticket_url)
    assert r.status_code == 302 and r.headers["location"] == f"/apps/{app_id}/ui/", r.text
    return appc


def ws_headers(appc: httpx.AsyncClient) -> list[tuple[bytes, bytes]]:
    cookie = "; ".join(f"{k}={v}" for k, v in appc.cookies.items())
    return [(b"origin", str(appc.base_url).rstrip("/").encode()), (b"cookie", cookie.encode())]


def ws_base(appc: httpx.AsyncClient) -> str:
    return str(appc.base_url).rstrip("/").replace("http://", "ws://")


async def rerun_until_text(ws: Any, text: str) -> list[str]:
    """Ask Streamlit for a script run; collect the markdown it renders until `text` shows."""
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    await ws.send_message(msg.SerializeToString())
    seen: list[str] = []
    with trio.fail_after(15):
        while not any(text in s for s in seen):
            fwd = ForwardMsg.FromString(await ws.get_message())
            if fwd.WhichOneof("type") == "delta":
                seen.append(str(fwd.delta))
    return seen


async def test_the_app_is_served_through_the_proxy_with_session_only(make_tree):
    async with make_tree(apps=("hello",), web=True) as tree:
        anon = httpx.AsyncClient(base_url=tree.url, trust_env=False)
        r = await anon.get("/apps/hello/ui/")
        assert r.status_code == 302 and r.headers["location"].startswith("/login")
        client = await logged_in(tree)
        reply = await open_app(client, "hello")
        assert reply["url"] == "/apps/hello/ui/" and reply["state"] == "running"
        assert 0 < reply["ttl_left"] <= 300 and reply["max_lifetime_left"] > 0
        appc = await enter_app(client, "hello")
        page = await appc.get("/apps/hello/ui/")
        assert page.status_code == 200
        assert "<noscript>" in page.text.lower() or "streamlit" in page.text.lower()
        assert page.headers["content-security-policy"] == f"frame-ancestors {tree.url}"  # the dashboard only
        assert "transfer-encoding" not in page.headers or page.headers["transfer-encoding"] == "chunked"
        health = await appc.get("/apps/hello/ui/_stcore/health")
        assert health.status_code == 200 and health.text == "ok"
        assert "_streamlit_xsrf" in health.headers.get("set-cookie", "")  # the app's cookie reaches the user
        proxy = tree.web.extensions["ui_proxy"]
        assert len(proxy.client.cookies.jar) == 0  # ... and is never kept for the next user
        await enter_app(client, "nosuch", appc)
        assert (await appc.get("/apps/nosuch/ui/")).status_code == 404
        # the app origin: nothing without that app's cookie, and nothing but app pages
        anon_app = httpx.AsyncClient(base_url=appc.base_url, trust_env=False, cookies=client.cookies)
        r = await anon_app.get("/apps/hello/ui/")  # the dashboard's session is no key here
        assert r.status_code == 401 and tree.url in r.text
        for path in ("/api/apps", "/api/tokens", "/", "/login", "/ws"):
            assert (await appc.get(path)).status_code == 404, path
        assert (await anon_app.get(f"/apps/hello/ticket?t={'x' * 32}")).status_code == 403
        await anon_app.aclose()
        await appc.aclose()
        await anon.aclose()
        await client.aclose()


async def test_websocket_passes_subprotocols_host_and_messages(make_tree):
    async with make_tree(apps=("wsapp",), web=True) as tree:
        client = await logged_in(tree)
        await open_app(client, "wsapp")
        appc = await enter_app(client, "wsapp")
        url = ws_base(appc) + "/apps/wsapp/ui/_stcore/stream"
        async with ws_connect(url, ws_headers(appc), ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]) as ws:
            assert ws.subprotocol == "streamlit"  # chosen upstream, returned to the client
            seen = await rerun_until_text(ws, "Hello from wsapp")
            assert any("Hello from wsapp" in s for s in seen)
            await ws.send_message(HEARTBEAT)
            with trio.fail_after(5):
                while True:
                    if ForwardMsg.FromString(await ws.get_message()).heartbeat_ack:
                        break
        # without the app's cookie the websocket is refused (403 to the upgrade): the dashboard's
        # session is no key, and neither is a page of another origin holding the app's cookie
        app_url = str(appc.base_url).rstrip("/")
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        async with httpx.AsyncClient(trust_env=False) as anon:
            refused = await anon.get(f"{app_url}/apps/wsapp/ui/_stcore/stream", headers={**UPGRADE,
                                     "origin": app_url, "cookie": cookie})
            assert refused.status_code == 403
            cross = await anon.get(f"{app_url}/apps/wsapp/ui/_stcore/stream", headers={
                **UPGRADE, **dict((k.decode(), v.decode()) for k, v in ws_headers(appc)), "origin": tree.url})
            assert cross.status_code == 403
        await appc.aclose()
        await client.aclose()


async def test_close_codes_from_the_app_reach_the_client(make_tree):
    async with make_tree(apps=("closer",), web=True) as tree:
        client = await logged_in(tree)
        await open_app(client, "closer")
        appc = await enter_app(client, "closer")
        port = (await tree.apps.ref("closer").ask(GetApp("closer")))["port"]
        direct_url = f"ws://127.0.0.1:{port}/apps/closer/ui/_stcore/stream"
        proxied_url = ws_base(appc) + "/apps/closer/ui/_stcore/stream"
        codes: dict[str, int | None] = {}

        async def hold(name: str, url: str, headers: list[tuple[bytes, bytes]],
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with ws_connect(url, headers, ["streamlit"]) as ws:
                task_status.started()
                try:
                    while True:
                        await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    codes[name] = exc.reason.code if exc.reason is not None else None

        async with trio.open_nursery() as n:
            await n.start(hold, "direct", direct_url, [])
            await n.start(hold, "proxied", proxied_url, ws_headers(appc))
            await tree.apps.ref("closer").ask(StopApp("closer"), timeout=15)
        assert codes["direct"] is not None and codes["direct"] not in (1005, 1006)
        assert codes["proxied"] == codes["direct"]
        await appc.aclose()
        await client.aclose()


async def test_a_stopped_app_answers_503_then_starts_on_page_load(make_tree):
    async with make_tree(apps=("lazy",), web=True) as tree:
        client = await logged_in(tree)
        appc = await enter_app(client, "lazy")
        r = await appc.get("/apps/lazy/ui/")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert "Starting" in r.text
        await tree.wait_event("app_started", "lazy", timeout=30)  # the page load started it
        assert (await appc.get("/apps/lazy/ui/")).status_code == 200
        await appc.aclose()
        await client.aclose()


async def test_health_polls_do_not_keep_an_app_alive_but_use_does(make_tree):
    async with make_tree(apps=("polled", "used"), web=True, ttl=2.0) as tree:
        client = await logged_in(tree)
        await open_app(client, "polled")
        await open_app(client, "used")
        appc = await enter_app(client, "polled")
        await enter_app(client, "used", appc)
        start = trio.current_time()
        while trio.current_time() - start < 3.5:  # past the 2 s TTL
            assert (await appc.get("/apps/polled/ui/_stcore/health")).status_code in (200, 503)
            assert (await appc.get("/apps/used/ui/")).status_code == 200
            await trio.sleep(0.2)
        await tree.wait_event("app_stopped", "polled", timeout=1, reason="idle_ttl")
        assert (await tree.apps.ref("used").ask(GetApp("used")))["state"] == "running"
        await appc.aclose()
        await client.aclose()


async def test_responses_pass_through_byte_for_byte_still_compressed(make_tree):
    async with make_tree(apps=("bytes",), web=True) as tree:
        client = await logged_in(tree)
        await open_app(client, "bytes")
        appc = await enter_app(client, "bytes")
        port = (await tree.apps.ref("bytes").ask(GetApp("bytes")))["port"]
        page = (await appc.get("/apps/bytes/ui/")).text
        script = re.search(r'src="\./(static/js/[^"]+\.js)"', page)
        assert script is not None, page[:500]
        path = f"/apps/bytes/ui/{script[1]}"

        async def raw(c: httpx.AsyncClient, url: str) -> tuple[int, str | None, bytes]:
            async with c.stream("GET", url, headers={"accept-encoding": "gzip"}) as r:
                return r.status_code, r.headers.get("content-encoding"), b"".join([b async for b in r.aiter_raw()])

        async with httpx.AsyncClient(trust_env=False) as direct_client:
            direct = await raw(direct_client, f"http://127.0.0.1:{port}{path}")
        proxied = await raw(appc, path)
        assert direct[0] == 200 and len(direct[2]) > 100_000
        assert proxied == direct  # a big script, streamed through unchanged
        await appc.aclose()
        await client.aclose()


class _GzipHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a gzip-encoded body, as an app behind the proxy may."""

    BODY = gzip.compress(b"hello, compressed world\n" * 200)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: Any) -> None:
        pass


async def test_compressed_answers_are_never_inflated(state_root):
    # Streamlit serves nothing gzip-encoded by default, so a plain HTTP server stands in for an
    # app that does; the proxy in front of it is the real one.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GzipHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = Config(root=state_root, apps_dir=state_root / "apps")
    deps = WebDeps(config=config, broadcast=Broadcast(), registry=None, apps=Supervisor("apps"),  # type: ignore[arg-type]
                   scanner=None, view=AppsView(), auth=None)  # type: ignore[arg-type]

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("only /apps/<id>/ui/ is asked for")

    proxy = UIProxy(inner, deps)
    deps.view.records["gz"] = AppRecord("gz", "gz", "streamlit", "gz", "", state="running",
                                        port=server.server_address[1])
    try:
        transport = httpx.ASGITransport(app=proxy)
        async with httpx.AsyncClient(transport=transport, base_url="http://hh.local") as c, \
                c.stream("GET", "/apps/gz/ui/", headers={"accept-encoding": "gzip"}) as r:
            body = b"".join([b async for b in r.aiter_raw()])
        assert r.headers["content-encoding"] == "gzip"
        assert body == _GzipHandler.BODY
    finally:
        await proxy.aclose()
        server.shutdown()
        server.server_close()


async def test_request_bodies_stream_through_and_oversized_ones_get_413(make_tree, monkeypatch):
    import homehelper.web.proxy as proxy

    monkeypatch.setattr(proxy, "MAX_UPLOAD", 64 * 1024)
    async with make_tree(apps=("body",), web=True) as tree:
        client = await logged_in(tree)
        await open_app(client, "body")
        appc = await enter_app(client, "body")

        async def chunks(n: int) -> AsyncIterator[bytes]:
            for _ in range(n):
                yield b"x" * 8192

        # Streamlit answers a POST to its health route 405: the body went through and came back answered
        small = await appc.post("/apps/body/ui/_stcore/health", content=chunks(4))
        assert small.status_code == 405
        big = await appc.post("/apps/body/ui/_stcore/health", content=chunks(16))
        assert big.status_code == 413 and big.text == "request body too large"
        assert (await appc.get("/apps/body/ui/_stcore/health")).status_code == 200  # nothing broken
        await appc.aclose()
        await client.aclose()


def test_forwarded_headers_drop_hop_by_hop_and_the_dashboard_session():
    raw = [(b"host", b"pi.local:8000"), (b"connection", b"keep-alive, x-private"), (b"x-private", b"1"),
           (b"keep-alive", b"timeout=5"), (b"te", b"trailers"), (b"upgrade", b"h2c"),
           (b"cookie", b"hh_session=secret; _streamlit_xsrf=abc"), (b"accept-encoding", b"gzip")]
    assert _forward_headers(raw) == [(b"host", b"pi.local:8000"), (b"cookie", b"_streamlit_xsrf=abc"),
                                     (b"accept-encoding", b"gzip")]
    assert _forward_headers([(b"cookie", b"hh_session=secret")]) == []


def test_close_codes_that_cannot_be_sent_are_mapped():
    assert [_sendable(c) for c in (1000, 1001, 1012, 4000, 1005, 1006, None)] == [1000, 1001, 1012, 4000, 1000, 1011,
                                                                                  1000]
