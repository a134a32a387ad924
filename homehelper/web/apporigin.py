"""App pages on their own origin: the second listener (`apps_port`, default the dashboard's port + 1).

An app's page is the app's code. Served from the dashboard's origin, its script could read the
dashboard's DOM and CSRF token and call the API with the user's session. On another port it is
another origin: the browser keeps it out of the dashboard's DOM, and the dashboard refuses its
requests (Origin check, CSRF token it cannot read, no CORS).

How a user gets in:
1. the dashboard (`GET /apps/<id>/ui/` on the dashboard's port, with its session) answers with a
   redirect to `<app origin>/apps/<id>/ticket?t=<ticket>`: a single-use ticket for that one app,
   good for a minute;
2. this listener exchanges it for an app cookie (`hh_app`, HttpOnly, SameSite=Strict, path
   `/apps/<id>/`) and redirects to `/apps/<id>/ui/`;
3. the proxy (proxy.py) serves `/apps/<id>/ui/...` to holders of that app's cookie only. It never
   accepts the dashboard's session, and this origin serves nothing else: no `/api`, no `/ws`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from ..manifest import ID_RE
from .auth import APP_COOKIE

TICKET_RE = re.compile(rf"^/apps/(?P<app>{ID_RE.pattern})/ticket$")


class AppOrigin:
    """The app origin's own routes (the ticket exchange), behind the proxy; 404 for anything else."""

    def __init__(self, deps: Any) -> None:
        self.deps = deps

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":
            return
        m = TICKET_RE.match(scope.get("path", ""))
        if m is None or scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 404, b"not found: this port serves app pages only, under /apps/<id>/ui/")
            return
        app_id = m["app"]
        ticket = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("t") or [None])[0]
        auth = self.deps.auth
        sid = auth.redeem_ticket(ticket, app_id) if auth is not None else None
        if sid is None:
            await _answer(send, 403, b"this link has expired or was used already: open the app from the dashboard")
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{APP_COOKIE}={sid}; Path=/apps/{app_id}/; HttpOnly; SameSite=Strict{secure}"
        await _answer(send, 302, b"", [(b"location", f"/apps/{app_id}/ui/".encode()),
                                       (b"set-cookie", cookie.encode())])


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        *(headers or []), (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
