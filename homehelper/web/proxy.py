"""The reverse proxy to app pages (Streamlit apps, service apps' own UIs), under /apps/<id>/ui/ on
the app origin: a second listener, never the dashboard's origin (see apporigin.py).

It sits in front of Quart as ASGI middleware rather than as Quart routes: it
needs the raw ASGI events to stream bodies both ways, to pass websocket
subprotocols and close codes through, and to keep a proxied websocket message
to one hop of work (the latency target is 1 ms).

Where each app listens, its type and state come from the registry's read model (`deps.view`,
updated as events are published), read directly: no ask per request. User
activity (proxied requests, client-to-app websocket messages; not Streamlit's
own health and host-config polls or its heartbeats) sends a throttled
KeepAlive to the app actor.
"""

from __future__ import annotations

import html
import http.cookiejar
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio
import trio_websocket

from ..actors import ActorError
from ..actors.readmodel import AppRecord
from ..errors import HomeHelperError
from ..manifest import ID_RE
from ..messages import KeepAlive, OpenUI
from .auth import APP_COOKIE
from .deps import dashboard_origin, identify, same_origin
from .forwarding import _forward_headers, _strip_our_cookies

log = logging.getLogger(__name__)
# httpx logs every request at INFO: a log line (a disk write on a Pi) per proxied request.
logging.getLogger("httpx").setLevel(logging.WARNING)

PATH_RE = re.compile(rf"^/apps/(?P<app>{ID_RE.pattern})/ui(?P<rest>/.*)?$")
NOT_ACTIVITY = ("/_stcore/health", "/_stcore/host-config", "/_stcore/script-health-check")
HEARTBEAT = b"\x88\x01\x01"  # BackMsg{app_heartbeat: true}: the frontend's own ping, not a person
MAX_WS_MESSAGE = 200 * 1024 * 1024  # Streamlit's server.maxMessageSize default (MB)
MAX_UPLOAD = 200 * 1024 * 1024  # Streamlit's server.maxUploadSize default (MB)
WS_QUEUE = 8  # messages buffered per direction; the rest waits (back-pressure), never piles up
KEEPALIVE_EVERY = 1.0  # seconds between KeepAlives per app, however busy


class UIProxy:
    """ASGI middleware: /apps/<id>/ui/... goes to the app, everything else to `inner`."""

    def __init__(self, inner: Any, deps: Any) -> None:
        self.inner = inner
        self.deps = deps
        self.touched: dict[str, float] = {}
        self.client = httpx.AsyncClient(
            # no cookie jar shared between users: a jar that accepts nothing
            cookies=http.cookiejar.CookieJar(_RefuseCookies()), trust_env=False, follow_redirects=False,
            timeout=httpx.Timeout(connect=5.0, read=300.0, write=60.0, pool=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=8),
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        m = PATH_RE.match(scope.get("path", "")) if kind in ("http", "websocket") else None
        if m is None:
            await self.inner(scope, receive, send)
            return
        app_id, rest = m["app"], m["rest"] or ""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if not self.authorized(app_id, headers, scope.get("client")):
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                page = NOT_OPENED.replace(b"{dashboard}", html.escape(dashboard_origin(self.deps, scope)).encode())
                await _simple(send, 401, page, [(b"content-type", b"text/html; charset=utf-8"),
                                                (b"cache-control", b"no-store"), self.csp(scope)])
            return
        entry = self.deps.view.get(app_id)
        if entry is not None and entry.type == "service" and entry.ui and kind == "http":
            await self.service_ui(app_id, entry, rest, scope, receive, send)
            return
        if entry is None or entry.type != "streamlit":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _simple(send, 404, f"no Streamlit app {app_id!r}".encode(), [])
            return
        if entry.state != "running" or entry.port is None:
            await self.not_ready(app_id, entry, rest, scope, send)
            return
        if kind == "websocket":
            await self.websocket(app_id, entry.port, scope, receive, send)
        else:
            if not rest.endswith(NOT_ACTIVITY):
                self.touch(app_id)
            await self.http(entry.port, scope, receive, send)

    # --- auth: an app-scoped cookie from a ticket, never the dashboard's session ------------
    def authorized(self, app_id: str, headers: list[tuple[bytes, bytes]], client: Any) -> bool:
        """The app cookie for this app (from a ticket the dashboard gave), a token, or loopback.

        The dashboard's own session cookie reaches this origin too (cookies ignore ports) and is
        ignored: it would let one app's page script call into every other app's pages."""
        auth = self.deps.auth
        if auth is None:
            return True  # only when the web app was built without auth (never by create_app)
        host = origin = authorization = None
        cookies: list[str] = []
        for name, value in headers:
            if name == b"cookie":
                cookies += value.decode("latin-1").split(";")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if origin is not None and not same_origin(origin, host):
            return False  # a page of another origin (the dashboard's included) may not drive an app

        def app_cookie() -> bool:
            pairs = (part.strip().partition("=") for part in cookies)
            return any(key == APP_COOKIE and auth.app_session(sid, app_id) for key, _, sid in pairs)

        remote = client[0] if client else None
        return identify(auth, self.deps.config, authorization, app_cookie, remote, foreign_tokens=True) is not None

    def csp(self, scope: dict[str, Any]) -> tuple[bytes, bytes]:
        """Only the dashboard may frame an app's pages."""
        return (b"content-security-policy", f"frame-ancestors {dashboard_origin(self.deps, scope)}".encode())

    # --- activity ---------------------------------------------------------------------
    def touch(self, app_id: str) -> None:
        now = trio.current_time()
        if now - self.touched.get(app_id, -KEEPALIVE_EVERY) < KEEPALIVE_EVERY:
            return
        self.touched[app_id] = now
        try:
            self.deps.apps.ref(app_id).tell_nowait(KeepAlive(app_id))
        except (ActorError, HomeHelperError):
            pass  # a swamped or gone actor: the next request tries again

    async def not_ready(self, app_id: str, entry: AppRecord, rest: str, scope: dict[str, Any], send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        if entry.state == "stopped" and rest in ("", "/") and scope["method"] == "GET":
            # the page itself asked for (a reload after an idle stop): start it again
            try:
                self.deps.apps.ref(app_id).tell_nowait(OpenUI(app_id))
            except (ActorError, HomeHelperError):
                pass
        await _simple(send, 503, STARTING_PAGE, [(b"retry-after", b"1"), (b"cache-control", b"no-store"),
                                                 (b"content-type", b"text/html; charset=utf-8"),
                                                 self.csp(scope)])

    async def service_ui(self, app_id: str, entry: AppRecord, rest: str, scope: dict[str, Any], receive: Any,
                         send: Any) -> None:
        """A service app's own page: /apps/<id>/ui/<rest> -> <its ui path>/<rest>, no TTL involved."""
        if entry.state != "running" or entry.port is None:
            await _simple(send, 503, f"{app_id} is not running: start it from the dashboard".encode(),
                          [(b"retry-after", b"5"), (b"cache-control", b"no-store")])
            return
        path = (entry.ui or "").rstrip("/") + (rest or "/")
        # Apps that build absolute links read where they are mounted from X-Forwarded-Prefix.
        await self.http(entry.port, scope, receive, send, path=path,
                        extra=[(b"x-forwarded-prefix", f"/apps/{app_id}/ui".encode())])

    # --- HTTP -------------------------------------------------------------------------
    async def http(self, port: int, scope: dict[str, Any], receive: Any, send: Any, path: str | None = None,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = _forward_headers(scope["headers"]) + (extra or [])
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        if path is None:
            path = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        url = f"http://127.0.0.1:{port}{path}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS") or any(
            n in (b"content-length", b"transfer-encoding") for n, _ in scope["headers"])
        request = self.client.build_request(scope["method"], url, headers=headers,
                                            content=_body(receive) if has_body else None)
        try:
            upstream = await self.client.send(request, stream=True)
        except _TooLarge:
            await _simple(send, 413, b"request body too large", [])
            return
        except httpx.TransportError as exc:
            await _simple(send, 502, f"the app did not answer: {type(exc).__name__}".encode(), [])
            return
        try:
            out = _forward_headers(upstream.headers.raw, strip_cookie=False)
            out = [(n, v) for n, v in out if n.lower() not in (b"content-security-policy", b"x-frame-options")]
            out.append(self.csp(scope))
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
            async for chunk in upstream.aiter_raw():  # raw: no decompression, bytes as the app sent them
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError:
            pass  # the app went away mid-body: the client sees a truncated response
        finally:
            await upstream.aclose()

    # --- websocket --------------------------------------------------------------------
    async def websocket(self, app_id: str, port: int, scope: dict[str, Any], receive: Any, send: Any) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        host, extra = "127.0.0.1", []
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")  # Streamlit compares Origin with Host: keep the browser's
            elif name in (b"origin", b"user-agent", b"accept-language"):
                extra.append((name, value))
            elif name == b"cookie":
                kept = _strip_our_cookies(value)
                if kept:
                    extra.append((name, kept))
        resource = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            resource += "?" + scope["query_string"].decode("latin-1")
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError as exc:
            log.info("websocket to %s refused: %r", app_id, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        # trio-websocket leaves its stream open when the server closes TCP first: ours to close
        async with stream, trio.open_nursery() as nursery:
            try:
                up = await trio_websocket.wrap_client_stream(
                    nursery, stream, host, resource, subprotocols=scope.get("subprotocols") or None,
                    extra_headers=extra, message_queue_size=WS_QUEUE, max_message_size=MAX_WS_MESSAGE,
                    receive_buffer_size=64 * 1024)
            except (trio_websocket.HandshakeError, trio.BrokenResourceError) as exc:
                log.info("websocket to %s refused: %r", app_id, exc)
                await send({"type": "websocket.close", "code": 1011})
                return
            await send({"type": "websocket.accept", "subprotocol": up.subprotocol})
            self.touch(app_id)
            nursery.start_soon(self._client_to_app, app_id, receive, up, nursery.cancel_scope)
            await self._app_to_client(up, send)
            nursery.cancel_scope.cancel()

    async def _client_to_app(self, app_id: str, receive: Any, up: Any, scope: trio.CancelScope) -> None:
        try:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.receive":
                    data = msg.get("bytes")
                    if data is None:
                        data = msg.get("text") or ""
                    elif data != HEARTBEAT:
                        self.touch(app_id)
                    await up.send_message(data)
                elif msg["type"] == "websocket.disconnect":
                    await up.aclose(_sendable(msg.get("code", 1000)), msg.get("reason") or None)
                    break
        except trio_websocket.ConnectionClosed:
            pass
        scope.cancel()

    async def _app_to_client(self, up: Any, send: Any) -> None:
        try:
            while True:
                data = await up.get_message()
                if isinstance(data, bytes):
                    await send({"type": "websocket.send", "bytes": data})
                else:
                    await send({"type": "websocket.send", "text": data})
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            code = _sendable(reason.code if reason is not None else 1000)
            try:
                await send({"type": "websocket.close", "code": code, "reason": (reason.reason or "") if reason else ""})
            except Exception:  # the client left first
                pass
        except OSError:
            pass

    async def aclose(self) -> None:
        await self.client.aclose()


class _TooLarge(Exception):
    pass


class _RefuseCookies(http.cookiejar.DefaultCookiePolicy):
    """httpx keeps Set-Cookie answers in the client's jar; a proxy for many users must keep none."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


async def _body(receive: Any) -> AsyncIterator[bytes]:
    total = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        chunk = msg.get("body", b"")
        total += len(chunk)
        if total > MAX_UPLOAD:
            raise _TooLarge
        if chunk:
            yield chunk
        if not msg.get("more_body", False):
            return


def _sendable(code: int | None) -> int:
    """Close codes that may appear in a close frame; 1005/1006/1015 are only ever reported."""
    if code is None or code in (1005, 1006, 1015) or not (1000 <= code <= 4999):
        return 1000 if code in (None, 1005) else 1011
    return code


async def _simple(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    if not any(n == b"content-type" for n, _ in headers):
        headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


NOT_OPENED = b"""<!doctype html><meta charset="utf-8"><title>Open it from the dashboard</title>
<p>This app's page opens from the HomeHelper dashboard: <a href="{dashboard}/" target="_top">{dashboard}</a></p>
"""
STARTING_PAGE = b"""<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="1">
<title>Starting</title><style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;
color:#555}</style><p>Starting the app&hellip;</p>
"""


def register_proxy(app: Any, deps: Any) -> None:
    """Build the app origin's ASGI app (the proxy in front of the ticket exchange); the dashboard's
    own listener never proxies. `serve_app` serves it on the apps port."""
    from .apporigin import AppOrigin

    proxy = UIProxy(AppOrigin(deps), deps)
    app.extensions["ui_proxy"] = proxy
    app.extensions["app_origin"] = proxy

    @app.after_serving
    async def _close_proxy() -> None:
        await proxy.aclose()
