"""A small web server for an app, on the port HomeHelper gave it ($HH_PORT): `/health` for
HomeHelper's health check, plus any pages the app adds. Standard library only (http.server).

    from homehelper import sdk

    sdk.serve_health()                  # /health answers {"status": "ok"}, in a background thread

or, with pages and a task that repeats:

    app = sdk.AppServer(health=lambda: {"readings": count})
    @app.route("/ui")
    def page(request): return "<h1>Hello</h1>"   # str: HTML; dict or list: JSON; bytes; or a Response
    @app.every(5)
    def sample(): ...                            # every 5 s, in its own thread, while the server runs
    app.run()                                    # blocks until SIGTERM or Ctrl-C
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._env import Settings, ready, settings

log = logging.getLogger("homehelper.sdk")

MAX_BODY = 1024 * 1024  # bytes a request may send; more is refused (413)
MAX_CONNECTIONS = 32  # requests served at once; more are closed at once (bounded threads)
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request

Handler = Callable[["Request"], Any]


@dataclass(frozen=True)
class Request:
    """What a page handler receives."""

    method: str
    path: str  # without the query string
    query: Mapping[str, str]  # ?a=1&b=2, the last value of each name
    headers: Mapping[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (ValueError when it is not)."""
        return json.loads(self.body)


@dataclass
class Response:
    """An answer with a status, a type or headers of its own (a handler may return plain values too)."""

    body: Any = b""
    status: int = 200
    content_type: str | None = None  # None: from the body (str: HTML, bytes: octet-stream, else JSON)
    headers: Mapping[str, str] = field(default_factory=dict)


def _encode(result: Any) -> Response:
    r = result if isinstance(result, Response) else Response(result, 204 if result is None else 200)
    body, ctype = r.body, r.content_type
    if body is None:
        body = b""
    if isinstance(body, str):
        body, ctype = body.encode(), ctype or "text/html; charset=utf-8"
    elif isinstance(body, bytes):
        ctype = ctype or "application/octet-stream"
    else:
        body, ctype = json.dumps(body, default=str).encode(), ctype or "application/json"
    return Response(body, r.status, ctype, r.headers)


class AppServer:
    """An HTTP server on the app's port answering `/health` and the routes added with `route()`.

        app = sdk.AppServer(health=lambda: {"readings": count})
        @app.route("/ui")
        def page(request): return "<h1>Hello</h1>"   # str: HTML; dict or list: JSON; bytes; or a Response
        @app.every(5)
        def sample(): ...                            # every 5 s, in its own thread, while the server runs
        app.run()                                    # blocks until SIGTERM or Ctrl-C

    `health`: called for each `/health` request; what it returns (a dict) is added to the answer,
    `{"status": "ok", "app": <id>, ...}`. A "status" other than "ok" in it, False, or an exception
    answers 503, which HomeHelper counts as a failed check. `host`/`port` default to $HH_HOST and
    $HH_PORT (run by hand without them: 127.0.0.1 and any free port, printed at start).
    """

    def __init__(self, health: Callable[[], Any] | None = None, *, host: str | None = None,
                 port: int | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.settings: Settings = settings(environ)
        self.health = health
        self.host = host or self.settings.host
        self._port = port if port is not None else (self.settings.port or 0)
        self._environ = environ
        self.routes: dict[tuple[str, str], Handler] = {}
        self.stopping = threading.Event()  # set by stop(): loops may `while not app.stopping.wait(s)`
        self._tasks: list[tuple[float, Callable[[], Any]]] = []
        self._threads: list[threading.Thread] = []
        self._httpd: ThreadingHTTPServer | None = None

    def route(self, path: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
        """Decorator: `handler(request)` answers `path` (exact; a trailing '/' is the same path)."""
        if not path.startswith("/"):
            raise ValueError(f"a route starts with '/', got {path!r}")

        def add(handler: Handler) -> Handler:
            for method in methods:
                self.routes[(method.upper(), _norm(path))] = handler
            return handler
        return add

    def every(self, seconds: float) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """Decorator: call the function now and then every `seconds` while the server runs, in a
        thread of its own. An exception is logged with its traceback and the next round still runs."""
        if not seconds > 0:
            raise ValueError(f"every() takes a positive number of seconds, got {seconds!r}")

        def add(fn: Callable[[], Any]) -> Callable[[], Any]:
            self._tasks.append((float(seconds), fn))
            return fn
        return add

    @property
    def port(self) -> int:
        """The port it listens on (known once started, when it was 0)."""
        return self._httpd.server_address[1] if self._httpd is not None else self._port

    @property
    def url(self) -> str:
        """http://host:port, as it listens."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> AppServer:
        """Listen and serve in background threads, start the `every` tasks, say READY=1; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._port), _handler_for(self))
        self._spawn(self._httpd.serve_forever, "http")
        for seconds, fn in self._tasks:
            self._spawn(functools.partial(self._repeat, seconds, fn), getattr(fn, "__name__", "task"))
        print(f"{self.settings.app_id}: serving on {self.url}", flush=True)
        ready(self._environ)  # a watchdog app is running from here (nothing happens without $NOTIFY_SOCKET)
        return self

    def run(self) -> None:
        """start(), then wait until SIGTERM (HomeHelper stopping the app), Ctrl-C or stop()."""
        self.start()
        restore: list[tuple[signal.Signals, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                restore.append((sig, signal.signal(sig, self._on_signal)))
        try:
            self.stopping.wait()
        finally:
            for sig, old in restore:
                signal.signal(sig, old)
            self.stop()
        print(f"{self.settings.app_id}: stopped", flush=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping.set()

    def stop(self) -> None:
        """Stop serving and the tasks (each finishes its round first)."""
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
        self._threads.clear()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[[], Any], name: str) -> None:
        t = threading.Thread(target=target, name=f"sdk-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _repeat(self, seconds: float, fn: Callable[[], Any]) -> None:
        while not self.stopping.is_set():
            try:
                fn()
            except Exception:
                log.exception("homehelper.sdk: %s failed; it runs again in %g s", getattr(fn, "__name__", fn), seconds)
            self.stopping.wait(seconds)

    def answer_health(self) -> Response:
        body: dict[str, Any] = {"status": "ok", "app": self.settings.app_id}
        try:
            extra = self.health() if self.health is not None else None
        except Exception as exc:
            log.exception("homehelper.sdk: the health function failed")
            return Response({**body, "status": "error", "error": type(exc).__name__}, 503)
        if extra is False:
            return Response({**body, "status": "unhealthy"}, 503)
        if isinstance(extra, Mapping):
            body.update(extra)
        return Response(body, 200 if body["status"] == "ok" else 503)


def serve_health(health: Callable[[], Any] | None = None, **kwargs: Any) -> AppServer:
    """Answer HomeHelper's `/health` on the app's port from background threads; returns the started
    AppServer (add pages with `route()` before, or use AppServer directly). See AppServer for `health`."""
    return AppServer(health, **kwargs).start()


def _norm(path: str) -> str:
    return path.rstrip("/") or "/"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # a flood: refuse rather than grow threads
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler_for(app: AppServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        server_version = "homehelper-app"

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_POST(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

        def _answer(self, head: bool = False) -> None:
            split = urlsplit(self.path)
            path, method = _norm(split.path), "GET" if head else self.command
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self._send(Response({"error": f"a body of at most {MAX_BODY} bytes"}, 413), head)
            body = self.rfile.read(length) if length else b""
            handler = app.routes.get((method, path))
            if path == "/health" and handler is None and method == "GET":
                return self._send(app.answer_health(), head)
            if handler is None:
                known = any(p == path for _, p in app.routes)
                return self._send(Response({"error": "method not allowed" if known else "not found"},
                                           405 if known else 404), head)
            request = Request(method, path, dict(parse_qsl(split.query)), dict(self.headers.items()), body)
            try:
                result = _encode(handler(request))
            except Exception:
                log.exception("homehelper.sdk: %s %s failed", method, path)
                result = _encode(Response({"error": "internal error"}, 500))
            self._send(result, head)

        def _send(self, r: Response, head: bool) -> None:
            r = _encode(r)
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type or "application/octet-stream")
            self.send_header("Content-Length", str(len(r.body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in r.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(r.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a health poll every 30 s would fill the app's log with nothing

    return _Handler
