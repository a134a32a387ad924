"""OTP-style supervision over a trio nursery, with quarantine instead of death.

Each child restarts on its own (one-for-one). Past the restart intensity a
child is quarantined: retried slowly, with an event that says so. A crash never
propagates to the supervisor, so the root outlives every child.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._errors import ActorError
from ._events import ChildCrashed, ChildExited, ChildQuarantined, ChildRestarting, ChildStarted, ChildStopped
from ._runtime import DEFAULT_MAILBOX, Actor, ActorRef, _no_emit, open_mailbox

log = logging.getLogger(__name__)


class Restart(enum.Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after a crash
    TEMPORARY = "temporary"  # never restarted


@attrs.frozen
class RestartPolicy:
    intensity: int = 5  # restarts allowed within `period` before quarantine
    period: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    stable_after: float = 60.0  # a run this long resets backoff and intensity
    quarantine_retry: float = 600.0


@attrs.frozen
class ChildSpec:
    name: str
    factory: Callable[[], Actor]  # a fresh actor for every (re)start
    restart: Restart = Restart.PERMANENT
    mailbox_size: int = DEFAULT_MAILBOX


class UnknownChild(ActorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no child named {name!r}")
        self.name = name


@attrs.define
class _Child:
    spec: ChildSpec
    ref: ActorRef[Any]
    inbox: trio.MemoryReceiveChannel[Any]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    state: str = "starting"
    starts: int = 0
    last_error: str | None = None


class Supervisor:
    """Run with `await nursery.start(sup.run)`; then add children at will."""

    def __init__(
        self, name: str, policy: RestartPolicy | None = None, emit: Callable[[object], None] = _no_emit
    ) -> None:
        self.name = name
        self.policy = policy or RestartPolicy()
        self._emit = emit
        self._children: dict[str, _Child] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        if self._nursery is None:
            raise RuntimeError(f"supervisor {self.name!r} is not running")
        if spec.name in self._children:
            raise ValueError(f"child {spec.name!r} already exists")
        ref, inbox = open_mailbox(spec.name, spec.mailbox_size)
        child = _Child(spec, ref, inbox)
        self._children[spec.name] = child
        self._nursery.start_soon(self._supervise, child, name=f"{self.name}/{spec.name}")
        return ref

    async def stop_child(self, name: str, timeout: float = 5.0) -> None:
        """Cancel the child, wait up to `timeout` for it to end, forget it."""
        child = self._children.pop(name, None)
        if child is None:
            raise UnknownChild(name)
        child.scope.cancel()
        with trio.move_on_after(timeout):
            await child.done.wait()
        child.ref._send.close()

    def ref(self, name: str) -> ActorRef[Any]:
        try:
            return self._children[name].ref
        except KeyError:
            raise UnknownChild(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._children

    def children(self) -> dict[str, dict[str, Any]]:
        return {
            n: {"state": c.state, "starts": c.starts, "last_error": c.last_error}
            for n, c in self._children.items()
        }

    async def _supervise(self, child: _Child) -> None:
        spec, policy = child.spec, self.policy
        recent: deque[float] = deque()
        delay = policy.backoff_initial
        try:
            with child.scope:
                while True:
                    child.starts += 1
                    child.state = "running"
                    started = trio.current_time()
                    self._emit(ChildStarted(self.name, spec.name, child.starts))
                    error: Exception | None = None
                    try:
                        actor = spec.factory()
                        actor.emit_event = self._emit
                        await actor.run(child.inbox)
                    except Exception as exc:
                        error = exc
                        child.last_error = repr(exc)
                        log.exception("%s/%s crashed", self.name, spec.name)
                    if error is None:
                        self._emit(ChildExited(self.name, spec.name))
                    else:
                        self._emit(ChildCrashed(self.name, spec.name, repr(error), child.starts))
                    if spec.restart is Restart.TEMPORARY or (error is None and spec.restart is Restart.TRANSIENT):
                        child.state = "exited"
                        return
                    now = trio.current_time()
                    if now - started >= policy.stable_after:
                        recent.clear()
                        delay = policy.backoff_initial
                    recent.append(now)
                    while recent and recent[0] < now - policy.period:
                        recent.popleft()
                    if len(recent) > policy.intensity:
                        child.state = "quarantined"
                        retry = policy.quarantine_retry
                        self._emit(ChildQuarantined(self.name, spec.name, len(recent), retry, child.last_error))
                        await trio.sleep(policy.quarantine_retry)
                        recent.clear()
                        delay = policy.backoff_initial
                        continue
                    child.state = "backoff"
                    self._emit(ChildRestarting(self.name, spec.name, child.starts, delay, child.last_error))
                    await trio.sleep(delay)
                    delay = min(delay * 2, policy.backoff_max)
        finally:
            if child.state != "exited":
                child.state = "stopped"
            self._emit(ChildStopped(self.name, spec.name))
            child.done.set()
