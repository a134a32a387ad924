"""Serving the web app with Hypercorn's trio worker inside the caller's nursery (one process, one PID).

Open connections are capped, overall and per client address, at accept time: a connection over
the cap is closed at once, so a flood of slow sockets can neither use up the file handles (which
breaks everything else: log files, app processes, systemd calls) nor lock out other clients. For
that, `_worker_serve` is Hypercorn's own trio `worker_serve`, plain HTTP only, with the cap in
front of its connection handler (Hypercorn has no such setting).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from .ws import MAX_FRAME

# Frames up to 4x the app's limit still reach the handler, which answers them with a clear error;
# Hypercorn closes the socket (1009) on anything bigger, before buffering it whole.
HARD_FRAME_LIMIT = 4 * MAX_FRAME
log = logging.getLogger(__name__)
MAX_CONNECTIONS = 1000  # open connections at once, both listeners together (each holds a file handle)
MAX_PER_CLIENT = 200  # from one address: a browser uses a handful; one host cannot take them all
FD_RESERVE = 256  # file handles kept for everything else: logs, app processes, the bus


def raise_open_files_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard limit (often 1024 of 524288 under systemd); the new soft."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, want, exc)
        return soft
    return want


class ConnectionCap:
    """How many connections are open, overall and per client address; admits or refuses new ones.

    Refusals are logged once per episode (when the cap is first hit, again only after the count
    fell back below half of it), never per refused socket."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_client: int = MAX_PER_CLIENT) -> None:
        self.total, self.per_client = total, per_client
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.refused = 0
        self.warned = False

    def admit(self, client: str) -> bool:
        if self.open >= self.total or self.by_client.get(client, 0) >= self.per_client:
            self.refused += 1
            if not self.warned:
                self.warned = True
                log.warning("connection cap reached (%d open, at most %d, %d per address; %s has %d): "
                            "refusing new connections until some close", self.open, self.total,
                            self.per_client, client, self.by_client.get(client, 0))
            return False
        self.open += 1
        self.by_client[client] = self.by_client.get(client, 0) + 1
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        left = self.by_client[client] - 1
        if left:
            self.by_client[client] = left
        else:
            del self.by_client[client]
        if self.warned and self.open < self.total // 2 and all(
                n < self.per_client // 2 for n in self.by_client.values()):
            self.warned = False


async def _worker_serve(app: Any, hc: HyperConfig, shutdown: trio.Event, cap: ConnectionCap,
                        *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn.trio.run.worker_serve (0.18), plain HTTP, with `cap` in front of each connection."""
    hc.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, hc.wsgi_max_body_size, "asgi")
    state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, hc, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = hc.create_sockets()
            for sock in sockets.insecure_sockets:
                sock.listen(hc.backlog)
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in sockets.insecure_sockets]
            binds = [f"http://{repr_socket_addr(sock.family, sock.getsockname())}" for sock in sockets.insecure_sockets]
            handler = partial(TCPServer, wrapped, hc, context, ConnectionState(state.copy()))

            async def guarded(stream: trio.SocketStream) -> None:
                try:
                    client = str(stream.socket.getpeername()[0])
                except OSError:
                    client = "?"
                if not cap.admit(client):
                    await trio.aclose_forcefully(stream)
                    return
                try:
                    await handler(stream)  # type: ignore[arg-type]  # plain streams work (no TLS here)
                finally:
                    cap.release(client)

            task_status.started(binds)
            try:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(partial(trio.serve_listeners, guarded, listeners,
                                                 handler_nursery=server_nursery))
                    await shutdown.wait()
                    accepting.cancel_scope.cancel()
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + hc.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


def hypercorn_config(host: str, port: int) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.accesslog = None  # no disk or console write per request on a Pi
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.websocket_max_message_size = HARD_FRAME_LIMIT
    hc.h11_max_incomplete_size = 16 * 1024
    hc.keep_alive_timeout = 30
    hc.graceful_timeout = 3
    return hc


async def serve_app(app: Any, host: str, port: int, shutdown: trio.Event, *, graceful: float = 3.0,
                    cap: ConnectionCap | None = None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until `shutdown` is set; `await nursery.start(serve_app, ...)` returns the dashboard's URLs.

    With the proxy registered, app pages get their own listener on the same host: `apps_port`, else
    the dashboard's port + 1 (a free port when the dashboard's is 0, as in tests). Both share one
    connection cap (by default MAX_CONNECTIONS, within the open-files limit, raised first)."""
    if cap is None:
        cap = ConnectionCap(max(64, min(MAX_CONNECTIONS, raise_open_files_limit() - FD_RESERVE)))
    extensions = getattr(app, "extensions", {})
    origin, deps = extensions.get("app_origin"), extensions.get("homehelper")
    async with trio.open_nursery() as nursery:
        hc = hypercorn_config(host, port)
        hc.graceful_timeout = graceful
        urls: list[str] = await nursery.start(_worker_serve, app, hc, shutdown, cap)
        if origin is not None and deps is not None:
            deps.dashboard_port = urlsplit(urls[0]).port
            apps_port = deps.config.apps_port or (deps.dashboard_port + 1 if port else 0)
            ahc = hypercorn_config(host, apps_port)
            ahc.graceful_timeout = graceful
            app_urls = await nursery.start(_worker_serve, origin, ahc, shutdown, cap)
            deps.apps_port = urlsplit(app_urls[0]).port
            log.info("app pages served on %s", app_urls[0])
        task_status.started(urls)
