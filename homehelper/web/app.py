"""The Quart-trio application factory, what it depends on, and the auth gate in front of every route."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import trio
from quart import Response, g, jsonify, redirect, render_template, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..errors import Forbidden, HomeHelperError, NotFound, Unauthorized
from ..manifest import ID_RE
from .api import register_api
from .auth import SESSION_COOKIE, Auth, open_auth
from .backup import register_backup
from .deps import MAX_BODY, WebDeps, apps_origin, identify, same_origin
from .errors import translate
from .fleet import register as register_fleet
from .guard import HostGuard, own_names
from .history import register as register_history
from .options import register_options
from .proxy import register_proxy
from .sources import register_sources
from .ws import register_ws

HASHING = 1  # password checks at once, across every client (scrypt: 16 MiB each)
PUBLIC = ("/login", "/static/", "/api/health", "/openapi.json", "/favicon.ico")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Everything the page uses is ours: its script, its stylesheet, its websocket, the apps' UIs it frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")


def create_app(deps: WebDeps) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    if deps.auth is None:
        deps.auth = open_auth(deps.config)
    auth: Auth = deps.auth
    hashing = trio.CapacityLimiter(HASHING)
    app.extensions["homehelper"] = deps

    def asker(req: Any) -> str | None:
        """Who is asking (deps.identify, with the dashboard's session cookie). Sets g.session for CSRF."""
        g.session = None

        def session() -> bool:
            g.session = auth.session(req.cookies.get(SESSION_COOKIE))
            return g.session is not None

        return identify(auth, deps.config, req.headers.get("Authorization"), session, req.remote_addr)

    @app.before_request
    async def gate() -> Any:
        # Read every (small) body before answering, even a refusal: Hypercorn can hand a body left
        # unread on a keep-alive connection to the next request, which then never completes.
        if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", ""):
            await request.get_data(cache=True)
        path = request.path
        if path.startswith(PUBLIC) or path == "/":
            if path == "/":
                g.who = asker(request)
            return None
        who = g.who = asker(request)
        if who is None:
            if path.startswith(("/api/", "/ws")) or request.method not in SAFE_METHODS:
                raise Unauthorized("log in first (session cookie) or send Authorization: Bearer <token>")
            return redirect(f"/login?next={path}")
        if request.method not in SAFE_METHODS and who != "token":
            check_csrf(who)
        return None

    def check_csrf(who: str) -> None:
        # Bearer tokens never ride along with a cross-site request, cookies do: those need the token
        # the page got in its <meta>. Loopback without login has no session: its Origin must be ours.
        if who == "session":
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent or sent != g.session.csrf:
                raise Forbidden("missing or wrong X-CSRF-Token header")
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, request.host):
            raise Forbidden(f"cross-origin request from {origin} refused")

    @app.before_websocket
    async def ws_gate() -> Any:
        origin = websocket.headers.get("Origin")
        if origin is not None and not same_origin(origin, websocket.host):
            raise Forbidden(f"websocket: Origin {origin} is not this server")
        who = g.who = asker(websocket)
        if who is None:
            raise Unauthorized("websocket: log in first")
        if origin is None and who != "token":  # browsers always send Origin; scripts use a token
            raise Forbidden("websocket: no Origin header (scripts: send Authorization: Bearer <token>)")
        return None

    @app.errorhandler(HomeHelperError)
    async def _domain_error(exc: HomeHelperError) -> Any:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Any:
        return error_response(exc)

    @app.errorhandler(Exception)
    async def _any_error(exc: Exception) -> Any:
        return error_response(exc)

    @app.after_request
    async def headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")  # nothing frames the dashboard
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        if resp.mimetype == "text/html":  # the app modal frames the app origin (another port)
            resp.headers.setdefault("Content-Security-Policy", CSP.replace(
                "frame-src 'self'", f"frame-src 'self' {apps_origin(deps, request.scope)}"))
        return resp

    # --- pages ------------------------------------------------------------------
    @app.get("/")
    async def index() -> Any:
        if g.who is None:
            return redirect("/login")
        csrf = g.session.csrf if g.session is not None else ""
        return await render_template("index.html", csrf=csrf, node=deps.config.node_id,
                                     logged_in=g.session is not None)

    @app.get("/login")
    async def login_page() -> Any:
        return await render_template("login.html", error=None, next=_safe_next(request.args.get("next")))

    @app.post("/login")
    async def login() -> Any:
        is_json = request.is_json
        if is_json:
            body = await request.get_json(silent=True)
            if not isinstance(body, dict):
                raise_bad("send {\"password\": \"...\"}")
            password, nxt = body.get("password"), "/"
        else:
            form = await request.form
            password, nxt = form.get("password"), _safe_next(form.get("next"))
        if not isinstance(password, str) or not password:
            raise_bad("password is required")
        client = request.remote_addr or "?"
        try:
            auth.limiter.attempt(client)  # counted here, before any hashing: a flood gets 429s
            # one scrypt (16 MiB) at a time: parallel guesses from many addresses keep memory flat
            s = await trio.to_thread.run_sync(auth.login_counted, password, client, limiter=hashing)
        except HomeHelperError as exc:
            if is_json:
                raise
            html = await render_template("login.html", error=exc.message, next=nxt)
            return html, exc.status
        resp: Any = jsonify({"ok": True, "csrf": s.csrf}) if is_json else redirect(nxt)
        resp.set_cookie(SESSION_COOKIE, s.sid, httponly=True, samesite="Strict", path="/",
                        secure=request.scheme == "https")
        return resp

    @app.get("/apps/<app_id>/ui/")
    @app.get("/apps/<app_id>/ui/<path:rest>")
    async def app_page(app_id: str, rest: str = "") -> Any:
        """An app's page lives on the app origin: hand this user a ticket for that one app there.

        Only for the dashboard's own pages and typed or bookmarked URLs (Sec-Fetch-Site), so an
        app's page script cannot fetch tickets for other apps through the user's session."""
        if not ID_RE.fullmatch(app_id):
            raise NotFound(f"no app with id {app_id!r}")
        site = request.headers.get("Sec-Fetch-Site")
        if site not in (None, "same-origin", "none"):
            raise Forbidden("an app's page opens from the dashboard itself")
        ticket = auth.issue_ticket(app_id, g.session.sid if g.session is not None else None)
        resp: Any = redirect(f"{apps_origin(deps, request.scope)}/apps/{app_id}/ticket?t={ticket}")
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.post("/logout")
    async def logout() -> Any:
        auth.logout(request.cookies.get(SESSION_COOKIE))
        resp: Response = jsonify({"ok": True})
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    register_api(app, deps)
    register_backup(app, deps)
    register_history(app, deps)
    register_fleet(app, deps)
    register_options(app, deps)
    register_sources(app, deps)
    register_ws(app, deps)
    register_proxy(app, deps)
    names, suffixes = own_names(deps.config.host, deps.config.allowed_hosts)
    app.asgi_app = HostGuard(app.asgi_app, names, suffixes)  # type: ignore[method-assign]  # outermost
    if "app_origin" in app.extensions:
        app.extensions["app_origin"] = HostGuard(app.extensions["app_origin"], names, suffixes)
    return app


def error_response(exc: BaseException) -> Any:
    status, body = translate(exc)
    resp = Response(json.dumps(body), status=status, mimetype="application/json")
    if status == 413:
        resp.headers["Connection"] = "close"  # the rest of that body is not worth reading
    retry = body.get("detail", {}).get("retry_after") if isinstance(body.get("detail"), dict) else None
    if retry:
        resp.headers["Retry-After"] = str(retry)
    return resp


def raise_bad(message: str) -> None:
    from ..errors import BadRequest

    raise BadRequest(message)


def _safe_next(nxt: str | None) -> str:
    r"""Where to go after login: only a path on this server, never an open redirect.

    Browsers drop tabs and newlines anywhere in a URL, trim spaces and control characters, and read
    `\` as `/`: `/\t/evil.com` becomes `//evil.com`, another host. So anything but printable ASCII
    is refused outright, then the path must start with one `/` and parse with no scheme or host."""
    if not nxt or any(not 0x21 <= ord(c) <= 0x7E for c in nxt) or "\\" in nxt:
        return "/"
    if not nxt.startswith("/") or nxt.startswith("//"):
        return "/"
    parts = urlsplit(nxt)
    if parts.scheme or parts.netloc:
        return "/"
    return nxt
