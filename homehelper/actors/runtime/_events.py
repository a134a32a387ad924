"""Events: the `Event` base every event derives from, and the runtime's own events.

The base lives here, in the runtime, so supervision and failed-command events
are the same `Event` type as the domain's (homehelper.messages re-exports it)
without the runtime importing domain code. The event log records every Event
and the Redis bridge publishes it, each under its `kind`.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import attrs

# The runtime's own records and events besides the base, named once: the runtime package and
# homehelper.messages both re-export exactly these.
__all__ = ["ChildCrashed", "ChildExited", "ChildQuarantined", "ChildRestarting", "ChildStarted", "ChildStopped",
           "CommandFailed", "Event"]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@attrs.frozen
class Event:
    """Base of events: `kind` is the snake_case class name (AppStarted -> app_started)."""

    at: float = attrs.field(factory=time.time, kw_only=True)  # wall clock, for people
    kinds: ClassVar[dict[str, type[Event]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Event.kinds[_CAMEL.sub("_", cls.__name__).lower()] = cls

    @property
    def kind(self) -> str:
        return _CAMEL.sub("_", type(self).__name__).lower()

    @property
    def subject(self) -> str | None:
        """The app this event is about, if any (used for per-app channels)."""
        return getattr(self, "app_id", None)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True, value_serializer=_jsonable)
        data["kind"] = self.kind
        return data


def _jsonable(inst: Any, field: Any, value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


# --- supervision -------------------------------------------------------------
# Routine lifecycle (started, exited normally, stopped) stays plain records: every boot and
# shutdown has one per actor, and history and Redis would fill with them. What a person must
# see (a crash, a restart, a quarantine) is an Event.


@attrs.frozen
class ChildStarted:
    supervisor: str
    child: str
    start: int  # 1 for the first start, then one more per restart


@attrs.frozen
class ChildExited:
    """The child's actor returned normally (a crash is ChildCrashed)."""

    supervisor: str
    child: str


@attrs.frozen
class ChildStopped:
    supervisor: str
    child: str


@attrs.frozen
class ChildCrashed(Event):
    """The child's actor raised: its supervisor restarts it (ChildRestarting) or quarantines it."""

    supervisor: str
    child: str
    error: str
    start: int  # which start of the child crashed


@attrs.frozen
class ChildRestarting(Event):
    supervisor: str
    child: str
    attempt: int
    delay: float
    error: str | None


@attrs.frozen
class ChildQuarantined(Event):
    supervisor: str
    child: str
    restarts: int
    retry_in: float
    error: str | None


# --- commands ----------------------------------------------------------------


@attrs.frozen
class CommandFailed(Event):
    """A command sent with `tell` raised a reply error: nobody waited for the answer, so it is said here.

    The actor carries on. `app_id` is the command's own `app_id` when it has one (the
    dashboard shows the failure under that app).
    """

    actor: str
    command: str  # the command's class name
    error: str
    detail: dict[str, Any] | None = None
    app_id: str | None = None
