"""The /ws websocket: on-click refresh (request -> snapshot reply), actions with their progress, log follow.

The server never pushes on a timer: it answers this client's requests, streams the progress of
actions this client started and the log it asked to follow, and sends an application-level ping
so a socket whose peer vanished (a phone that left the Wi-Fi) is closed instead of lingering.

Client -> server: {"type": "refresh"|"action"|"rescan"|"logs.follow"|"logs.unfollow"|"ping"|"pong", "id": n, ...}
Server -> client: {"type": "reply", "id", "ok": true, "data"} | {"type": "error", "id", "ok": false, "status",
"error", "message"} | {"type": "progress", "id", "event"} | {"type": "log", "id", "app", "lines"} |
{"type": "ping"} | {"type": "pong", "id"}. A refresh of "all" with "have": {section: digest} is answered
with the sections that changed and "digests" (refreshparts.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import trio
from quart import g, websocket
from quart_trio import QuartTrio

from ..errors import BadRequest, PayloadTooLarge, TooManyRequests, Unavailable
from ..messages import Event
from . import logs, ops
from .deps import WebDeps
from .errors import translate
from .refreshparts import Parts

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024  # bigger frames get an error reply (Hypercorn drops far bigger ones outright)
MAX_IN_FLIGHT = 8  # requests one socket may have running at once
# Open sockets, each a little memory and a pinger on the Pi. Per client (a session, a token, an
# address), so one client cannot lock the others out; those without a session (tokens, loopback
# without login) share MAX_SOCKETS, so a logged-in dashboard always finds room within MAX_TOTAL.
MAX_PER_CLIENT = 8
MAX_SOCKETS = 64
MAX_TOTAL = 256
PING_INTERVAL = 25.0
PING_TIMEOUT = 60.0  # nothing heard for this long: the peer is gone
TYPES = ("refresh", "action", "rescan", "logs.follow", "logs.unfollow", "ping", "pong")
WHAT = ("all", "apps", "app", "system", "events")
SHARED = ("all", "apps", "system")  # the refreshes that take no argument: one build serves all askers


def _dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, default=str, separators=(",", ":"))


class _Flight:
    __slots__ = ("done", "error", "text")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.text: Parts | None = None
        self.error: Exception | None = None


class SharedRefresh:
    """Refreshes asked for in the same moment share one build and one serialisation (single-flight).

    Twenty dashboards clicking at once cost one snapshot, not twenty: a refresh that comes while
    one of its kind is being built waits for that build and gets the same JSON text. The next
    refresh builds anew (no cache to go stale); only the last snapshot of each kind is kept, so
    that the sections a build finds unchanged are not serialised again.
    """

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}
        self._last: dict[str, Parts] = {}
        self.builds = 0
        self.joined = 0  # refreshes that shared another's build
        self.last_bytes = 0  # the size of the last snapshot sent (what a refresh costs on the wire)

    async def text(self, what: str, build: Any) -> Parts:
        while True:
            flight = self._flights.get(what)
            if flight is None:
                return await self._build(what, build)
            self.joined += 1
            await flight.done.wait()
            if flight.text is not None:
                return flight.text
            if flight.error is not None:
                raise flight.error
            # its builder's client went away mid-build (cancelled): build again

    async def _build(self, what: str, build: Any) -> Parts:
        flight = self._flights[what] = _Flight()
        try:
            # One pass of the scheduler before building: the refreshes that arrived with this one
            # (read in the same pass) join it. A build has no other wait in it (the read models
            # need no ask), so without this every click would build alone.
            await trio.lowlevel.checkpoint()
            flight.text = self._last[what] = Parts(await build(), self._last.get(what))
            self.builds += 1
            self.last_bytes = len(flight.text.whole)
            return flight.text
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[what]
            flight.done.set()


class Connection:
    """One websocket client: a receive loop, a sender, a pinger, and its requests' tasks."""

    def __init__(self, deps: WebDeps, ping_interval: float = PING_INTERVAL, ping_timeout: float = PING_TIMEOUT,
                 shared: SharedRefresh | None = None) -> None:
        self.deps = deps
        self.shared = shared or SharedRefresh()
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        # Sent by the task that has the reply, one at a time: no queue and no sender task to hop
        # through (each hop is a scheduler pass, and with twenty busy dashboards a pass is the
        # cost). A slow client holds up only its own tasks (at most MAX_IN_FLIGHT of them).
        self._sending = trio.Lock()
        self.in_flight = 0
        self.last_heard = trio.current_time()
        self.follow_scope: trio.CancelScope | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as n:
            self.nursery = n
            n.start_soon(self._pinger)
            try:
                while True:
                    data = await websocket.receive()
                    self.last_heard = trio.current_time()
                    await self._dispatch(data)
            finally:
                n.cancel_scope.cancel()

    async def send(self, msg: dict[str, Any]) -> None:
        await self.send_text(_dumps(msg))

    async def send_text(self, text: str) -> None:
        async with self._sending:
            await websocket.send(text)

    async def _pinger(self) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            if trio.current_time() - self.last_heard > self.ping_timeout:
                await websocket.close(1001, "no reply to pings")
                self.nursery.cancel_scope.cancel()
                return
            await self.send({"type": "ping"})

    async def _dispatch(self, data: str | bytes) -> None:
        req_id: Any = None
        try:
            if len(data) > MAX_FRAME:
                raise PayloadTooLarge(f"websocket message over {MAX_FRAME} bytes", limit=MAX_FRAME)
            try:
                msg = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"malformed JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise BadRequest("a message is a JSON object with a 'type'")
            req_id = msg.get("id")
            if req_id is not None and not isinstance(req_id, (int, str)):
                req_id = None
                raise BadRequest("'id' must be a number or a string")
            kind = msg.get("type")
            if kind not in TYPES:
                raise BadRequest(f"unknown message type {kind!r}; one of {', '.join(TYPES)}", type=str(kind)[:40])
            if kind == "pong":
                return
            if kind == "ping":
                await self.send({"type": "pong", "id": req_id})
                return
            if kind == "logs.unfollow":
                self._stop_follow()
                await self.send({"type": "reply", "id": req_id, "ok": True, "data": None})
                return
            if self.in_flight >= MAX_IN_FLIGHT:
                raise TooManyRequests(f"at most {MAX_IN_FLIGHT} requests at once on one socket")
            self.in_flight += 1
            if kind == "refresh":  # answered here, in the receive loop: no task to start and wait for
                await self._request(req_id, kind, msg)
            else:  # actions and follows last; this socket's other requests go on meanwhile
                self.nursery.start_soon(self._request, req_id, kind, msg)
        except Exception as exc:
            await self._error(req_id, exc)

    async def _error(self, req_id: Any, exc: BaseException) -> None:
        status, body = translate(exc)
        await self.send({"type": "error", "id": req_id, "ok": False, "status": status, **body})

    async def _request(self, req_id: Any, kind: str, msg: dict[str, Any]) -> None:
        try:
            if kind == "refresh" and msg.get("what", "all") in SHARED:
                # serialised once for every client asking at once: each gets its id and what it lacks
                parts = await self.shared.text(msg.get("what", "all"), lambda: self._refresh(msg))
                await self.send_text(parts.reply(req_id, msg.get("have")))
                return
            if kind == "refresh":
                data = await self._refresh(msg)
            elif kind == "action":
                data = await self._action(req_id, msg)
            elif kind == "rescan":
                data = await ops.rescan(self.deps)
            else:  # logs.follow
                data = await self._follow(req_id, msg)
            await self.send({"type": "reply", "id": req_id, "ok": True, "data": data})
        except Exception as exc:
            await self._error(req_id, exc)
        finally:
            self.in_flight -= 1

    async def _refresh(self, msg: dict[str, Any]) -> Any:
        what = msg.get("what", "all")
        if what not in WHAT:
            raise BadRequest(f"unknown refresh {what!r}; one of {', '.join(WHAT)}")
        if what == "all":
            return await ops.snapshot(self.deps)
        if what == "apps":
            return await ops.list_apps(self.deps)
        if what == "app":
            return await ops.get_app(self.deps, ops.check_app_id(msg.get("app")))
        if what == "system":
            return await ops.system(self.deps)
        limit = msg.get("limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise BadRequest("'limit' must be an integer")
        return await ops.events(self.deps, limit)

    async def _action(self, req_id: Any, msg: dict[str, Any]) -> Any:
        """Act and settle (ops.act, as REST does); meanwhile forward the app's events (its progress)
        to this client only."""
        app_id = ops.check_app_id(msg.get("app"))
        outcome: dict[str, Any] = {}
        # Subscribed before the ask, so no event of this action is missed.
        accept = lambda e: isinstance(e, Event) and getattr(e, "app_id", None) == app_id  # noqa: E731
        with self.deps.broadcast.subscribe(maxlen=256, accept=accept) as sub:
            async with trio.open_nursery() as n:
                n.start_soon(self._progress, req_id, sub)
                try:
                    outcome["result"] = await ops.act(self.deps, app_id, msg.get("action"))
                except Exception as exc:  # raised below, not as a group out of the nursery
                    outcome["error"] = exc
                sub.close()  # no more events; the progress task sends what is queued, then ends
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    async def _progress(self, req_id: Any, sub: Any) -> None:
        async for ev in sub:
            await self.send({"type": "progress", "id": req_id, "event": ev.to_json()})

    async def _follow(self, req_id: Any, msg: dict[str, Any]) -> Any:
        app_id = ops.check_app_id(msg.get("app"))
        await ops.get_app(self.deps, app_id)  # unknown app: error now, not a silent empty follow
        lines = msg.get("lines", 200)
        if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= logs.MAX_LINES:
            raise BadRequest(f"'lines' must be an integer from 1 to {logs.MAX_LINES}")
        query = logs.query_from(msg.get("grep"), msg.get("since"), msg.get("until"))
        self._stop_follow()
        first = await logs.tail(self.deps.config, app_id, lines, query, self.deps.logs)
        scope = self.follow_scope = trio.CancelScope()
        await self.nursery.start(self._follow_task, req_id, app_id, scope, query.grep)
        return {"app": app_id, "lines": first}

    async def _follow_task(self, req_id: Any, app_id: str, scope: trio.CancelScope, grep: str | None, *,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def deliver(batch: list[str]) -> None:
            await self.send({"type": "log", "id": req_id, "app": app_id, "lines": batch})

        with scope:
            await logs.follow(self.deps.config, app_id, deliver, grep, self.deps.logs, task_status=task_status)

    def _stop_follow(self) -> None:
        if self.follow_scope is not None:
            self.follow_scope.cancel()
            self.follow_scope = None


def register_ws(app: QuartTrio, deps: WebDeps) -> None:
    per_client: dict[str, int] = {}
    counts = {"total": 0, "sessionless": 0}
    refreshes = SharedRefresh()  # one per server: every socket's refreshes share builds
    app.extensions["homehelper.refresh"] = refreshes

    @app.websocket("/ws")
    async def ws() -> Any:
        key, has_session = client_key()
        limit = app.config.get("WS_PER_CLIENT", MAX_PER_CLIENT)
        if per_client.get(key, 0) >= limit:
            raise Unavailable(f"at most {limit} dashboards open per client; close one and retry")
        shared = app.config.get("WS_MAX_SOCKETS", MAX_SOCKETS)
        if counts["total"] >= app.config.get("WS_MAX_TOTAL", MAX_TOTAL) or (
                not has_session and counts["sessionless"] >= shared):
            raise Unavailable("too many dashboards open; close one and retry")
        per_client[key] = per_client.get(key, 0) + 1
        counts["total"] += 1
        counts["sessionless"] += not has_session
        try:
            await websocket.accept()
            await Connection(deps, app.config.get("WS_PING_INTERVAL", PING_INTERVAL),
                             app.config.get("WS_PING_TIMEOUT", PING_TIMEOUT), refreshes).run()
        finally:
            per_client[key] -= 1
            if not per_client[key]:
                del per_client[key]
            counts["total"] -= 1
            counts["sessionless"] -= not has_session
        return None


def client_key() -> tuple[str, bool]:
    """Who holds this socket, for the per-client cap: its session, its token, else its address."""
    session = getattr(g, "session", None)
    if session is not None:
        return "session:" + session.sid, True
    header = websocket.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return "token:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:16], False
    return "addr:" + (websocket.remote_addr or "?"), False
