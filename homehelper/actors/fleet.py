"""The fleet: several HomeHelpers over one Redis, each seen and controlled from any dashboard.

`FleetActor` is this node's side: it keeps the node's presence in Redis (a summary refreshed every
`interval` seconds with a TTL, bus/presence.py), reads the commands other nodes send it from its own
stream with a consumer group (bus/commands.py) and feeds them to its app actors through `perform`
(the web's own way to act, wired by serve.py), sending each result back. `FleetLink` is the asking
side, used by the web from the trio thread: the fleet as Redis has it, and commands sent and waited for.

redis-py is sync: every Redis call runs in a worker thread. Redis away: the node goes on alone, the
fleet shows "unknown" (not offline), and the actor reconnects with backoff, no restart needed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import __version__
from ..bus import commands, presence
from ..bus._threads import CONNECTION_ERRORS, connect
from ..bus.acl import configured, redact
from ..bus.channels import check_app, check_name
from ..errors import BadRequest, Conflict, Unavailable
from ..messages import FleetAway, FleetCommandHandled, FleetJoined, GetFleet, GetSystemSnapshot
from . import Actor, ActorRef
from .readmodel import AppsView

log = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between presence refreshes
TTL = 15.0  # a node that stops refreshing is offline after this many seconds
COMMAND_TIMEOUT = 30.0  # seconds an asker waits for the other node's answer (and the command's expiry)
CONCURRENT = 8  # commands a node acts on at once (a start may wait minutes for an install)

Perform = Callable[[commands.FleetCommand], Awaitable[dict[str, Any]]]
# A session ends on these: a lost connection, and what Redis refuses (NOPERM: a node user without the
# rights docs/fleet.md lists; a key of ours turned into another type). The node goes on alone and retries.
FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, redis.RedisError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _client(url: str, socket_timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
                                retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name="homehelper-fleet")


def _figure(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, (int, float, str)) and not isinstance(data, bool) else None


def machine_figures(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few machine figures a fleet card shows, from the sensor actor's snapshot."""
    if not isinstance(snap, dict):
        return None
    alerts = snap.get("alerts")
    return {"cpu": _figure(snap, "cpu", "percent"), "memory": _figure(snap, "memory", "percent"),
            "swap": _figure(snap, "swap", "percent"),
            "uptime": _figure(snap, "uptime"), "status": _figure(snap, "status"),
            "alerts": [a for a in alerts if isinstance(a, dict)][:10] if isinstance(alerts, list) else []}


class FleetLink:
    """The asking side (the web's): the fleet as Redis has it, and commands to other nodes."""

    def __init__(self, url: str | None, node_id: str, *, timeout: float = COMMAND_TIMEOUT,
                 client: Callable[[str, float], Any] = _client) -> None:
        self.url = configured(url)
        self.node = check_name("node id", node_id)
        self.timeout = timeout
        self.address = ""  # this node's dashboard, once it listens (serve.py sets it)
        self.started = time.time()
        self.limiter = trio.CapacityLimiter(8)
        self._make = client
        self._client: Any = None
        self._last: list[dict[str, Any]] = []  # the fleet as last read: shown as "unknown" while Redis is away
        self.changed = trio.Event()  # set (and replaced) when redis_url changes: the actor moves over

    def set_url(self, url: str | None) -> None:
        """A new redis_url (ConfigChanged): this node leaves the old Redis and joins the new one."""
        url = configured(url)
        if url != self.url:
            self.url = url
            self._drop()
            self._last = []
            old, self.changed = self.changed, trio.Event()
            old.set()

    def _conn(self) -> Any:
        if self._client is None:
            assert self.url is not None
            self._client = self._make(self.url, 5.0)
        return self._client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def fleet(self) -> dict[str, Any]:
        """Every node: online | offline (since when) | unknown (Redis away: the last we knew)."""
        if self.url is None:
            return {"enabled": False, "node": self.node, "redis": "none", "error": None, "nodes": []}
        try:
            nodes = await trio.to_thread.run_sync(presence.read, self._conn(), limiter=self.limiter,
                                                  abandon_on_cancel=True)
        except FAILURES as exc:
            self._drop()
            known = [{**n, "status": "unknown"} for n in self._last]
            return {"enabled": True, "node": self.node, "redis": "unknown", "error": _describe(exc), "nodes": known}
        self._last = nodes
        return {"enabled": True, "node": self.node, "redis": "connected", "error": None, "nodes": nodes}

    async def send(self, node: Any, app_id: Any, action: Any, user: str, grants: tuple[str, ...] | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """Send a command to `node` and wait for its result: {"ok", "timeout", "error", "app", ...}.
        A node that does not answer within the timeout gets no later say: the command expires."""
        if self.url is None:
            raise Conflict("no Redis configured: this node is not in a fleet (set redis_url)")
        try:
            node, app_id = check_name("node id", node), check_app(app_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if action not in commands.ACTIONS:
            raise BadRequest(f"unknown action {str(action)[:40]!r}; one of {', '.join(commands.ACTIONS)}")
        wait = self.timeout if timeout is None else timeout
        cmd = commands.FleetCommand(uuid.uuid4().hex, node, app_id, action, self.node, user[:100] or "unknown",
                                    time.time() + wait, grants)
        sent = time.monotonic()
        url = self.url
        try:
            await trio.to_thread.run_sync(commands.send, self._conn(), cmd, limiter=self.limiter,
                                          abandon_on_cancel=True)
            waiter = self._make(url, wait + 5.0)  # its own connection: BLPOP holds it for the wait
            try:
                reply = await trio.to_thread.run_sync(commands.wait_reply, waiter, self.node, cmd.id, wait,
                                                      limiter=self.limiter, abandon_on_cancel=True)
            finally:
                waiter.close()
        except FAILURES as exc:
            self._drop()
            raise Unavailable(f"the fleet's Redis did not answer: {_describe(exc)}") from None
        took = round(time.monotonic() - sent, 3)
        base = {"id": cmd.id, "node": node, "app_id": app_id, "action": action, "took_s": took}
        if reply is None:
            return {**base, "ok": False, "timeout": True,
                    "error": f"node {node} did not answer within {wait:g} s (offline or busy); "
                             "the command expired and will not run later"}
        return {**base, "timeout": False, **reply}


class FleetActor(Actor):
    name = "fleet"

    def __init__(self, link: FleetLink, summary: Callable[[], Awaitable[dict[str, Any]]], perform: Perform,
                 emit: Callable[[object], None], *, interval: float = INTERVAL, ttl: float = TTL,
                 backoff: tuple[float, float] = (0.5, 30.0), block: float = 5.0) -> None:
        self.link = link
        self.node = link.node
        self.summary = summary
        self.perform = perform
        self.emit = emit
        self.interval = interval
        self.ttl = ttl
        self.backoff = backoff
        self.block = block
        self.limiter = trio.CapacityLimiter(4 + CONCURRENT)
        self.acting = trio.Semaphore(CONCURRENT)
        self.joined = False
        self.last_error: str | None = None
        self.handled = 0

    async def on_start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._loop)

    async def on_stop(self) -> None:
        if self.link.url is not None and self.joined:
            await self._leave(self.link.url)

    async def _leave(self, url: str) -> None:
        def leave() -> None:  # its own connection: the session's is closing under cancellation
            client = connect(url)
            try:
                presence.leave(client, self.node)
            finally:
                client.close()

        try:  # a clean leave: gone from the fleet at once
            await trio.to_thread.run_sync(leave, limiter=self.limiter, abandon_on_cancel=True)
            log.info("fleet: node %s left the fleet at %s", self.node, redact(url))
        except FAILURES:
            pass  # Redis is away: the TTL removes us instead
        self.joined = False

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetFleet():
                return {**await self.link.fleet(), "joined": self.joined, "last_error": self.last_error}
            case _:
                raise BadRequest(f"fleet: unknown message {type(msg).__name__}")

    # --- connection --------------------------------------------------------
    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter, abandon_on_cancel=True)

    async def _loop(self) -> None:
        delay = self.backoff[0]
        while True:
            url, changed = self.link.url, self.link.changed
            if url is None:
                await changed.wait()
                continue
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._cancel_on, changed, nursery.cancel_scope)
                try:
                    await self._session(url)
                except FAILURES as exc:
                    if self.joined:
                        delay = self.backoff[0]  # it was up: try again soon
                    self._away(_describe(exc))
                nursery.cancel_scope.cancel()
            if changed.is_set():  # redis_url changed: leave the old Redis, join the new one now
                if self.joined:
                    with trio.CancelScope(shield=True), trio.move_on_after(3):
                        await self._leave(url)
                self.last_error, delay = None, self.backoff[0]
                continue
            with trio.move_on_after(delay):
                await changed.wait()
            delay = min(delay * 2, self.backoff[1])

    @staticmethod
    async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
        await event.wait()
        scope.cancel()

    def _away(self, error: str) -> None:
        if self.joined or self.last_error is None:
            log.warning("fleet: Redis at %s unavailable (%s): working alone", redact(self.link.url), error)
            self.emit(FleetAway(self.node, error))
        self.joined, self.last_error = False, error

    async def _session(self, url: str) -> None:
        """Join, refresh the presence and read commands until Redis fails (raised: one of FAILURES)."""
        client = await self._thread(connect, url)
        reader = None
        lost: list[BaseException] = []

        async def guarded(fn: Callable[..., Awaitable[None]], *args: Any,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await fn(*args, task_status=task_status)
            except FAILURES as exc:
                lost.append(exc)
                nursery.cancel_scope.cancel()

        def spawn(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
            nursery.start_soon(guarded, fn, *args)

        try:
            reader = await self._thread(lambda: connect(url, socket_timeout=self.block + 5.0))
            await self._thread(commands.ensure_group, client, self.node)
            async with trio.open_nursery() as nursery:
                await nursery.start(guarded, self._presence_loop, client)
                nursery.start_soon(guarded, self._command_loop, client, reader, spawn)
        finally:
            for c in (client, reader):
                if c is not None:
                    c.close()
        if lost:
            raise lost[0]

    async def _presence_loop(self, client: Any, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            summary = await self.summary()
            await self._thread(presence.write, client, self.node, summary, self.ttl)
            if not self.joined:
                self.joined, self.last_error = True, None
                log.info("fleet: node %s joined the fleet at %s", self.node, redact(self.link.url))
                self.emit(FleetJoined(self.node))
                task_status.started()
            await trio.sleep(self.interval)

    # --- commands from other nodes -------------------------------------------
    async def _command_loop(self, client: Any, reader: Any, spawn: Callable[..., None],
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # First what this node took and did not finish (a crash, a lost Redis), one at a time.
        while entries := await self._thread(lambda: commands.read(reader, self.node, pending=True, block_ms=0)):
            for entry_id, text in entries:
                await self.acting.acquire()
                await self._act(client, entry_id, text)
        while True:
            entries = await self._thread(lambda: commands.read(reader, self.node, pending=False,
                                                               block_ms=int(self.block * 1000)))
            for entry_id, text in entries:
                await self.acting.acquire()  # bounded: a flood waits in the stream, not in memory
                spawn(self._act, client, entry_id, text)

    async def _act(self, client: Any, entry_id: str, text: Any,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            try:
                cmd = commands.FleetCommand.parse(text)
            except commands.BadCommand as exc:
                log.warning("fleet: skipped entry %s on node %s's command stream: %s", entry_id, self.node, exc)
                await self._thread(commands.finish, client, self.node, entry_id, None, {})
                return
            if cmd.node != self.node:
                result: dict[str, Any] = {"ok": False, "error": f"command for node {cmd.node} reached {self.node}"}
            else:
                stored = await self._thread(commands.already, client, self.node, cmd.id)
                if stored is not None:  # a redelivery: answered again, not acted on twice
                    await self._thread(commands.finish, client, self.node, entry_id, cmd, stored)
                    return
                result = await self._perform(cmd)
            await self._thread(commands.finish, client, self.node, entry_id, cmd, result)
            self.handled += 1
            self.emit(FleetCommandHandled(cmd.app, cmd.action, cmd.id, cmd.asker, cmd.user, bool(result.get("ok")),
                                          result.get("error")))
        finally:
            self.acting.release()

    async def _perform(self, cmd: commands.FleetCommand) -> dict[str, Any]:
        if commands.expired(cmd):
            return {"ok": False, "expired": True, "error": f"the command expired before node {self.node} got it"}
        log.info("fleet: %s %s asked by %s on node %s", cmd.action, cmd.app, cmd.user, cmd.asker)
        try:
            with trio.move_on_after(max(0.0, cmd.expires - time.time()) + 1.0) as scope:
                reply = await self.perform(cmd)
        except Exception as exc:  # a domain error (unknown app, conflict...) is the answer, named
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return {"ok": False, "error": message, "code": getattr(exc, "code", None)}
        if scope.cancelled_caught:
            return {"ok": False, "error": f"{cmd.action} did not settle on node {self.node} in time"}
        return {"ok": True, **reply}


async def node_summary(link: FleetLink, view: AppsView, sensors: ActorRef[Any] | None) -> dict[str, Any]:
    """What this node tells the fleet about itself (small: a few figures and each app's state)."""
    snap = None
    if sensors is not None:
        try:
            snap = await sensors.ask(GetSystemSnapshot(fresh=False), timeout=5)
        except Exception:  # figures are a bonus on the card: the presence goes out without them
            snap = None
    apps = view.apps()
    now = time.time()
    return {"node": link.node, "url": link.address, "version": __version__, "at": now, "started": link.started,
            "uptime": round(now - link.started, 1), "machine": machine_figures(snap),
            "counts": dict(Counter(str(a.get("state")) for a in apps)),
            "apps": [{"id": a.get("id"), "name": a.get("name"), "state": a.get("state"),
                      "healthy": a.get("healthy"), "type": a.get("type"), "approved": a.get("approved"),
                      "last_error": (a.get("last_error") or "")[:200]} for a in apps[:200]]}
