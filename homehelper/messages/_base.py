"""What every message is: commands (imperative) and events (past tense)."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import attrs

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class Command:
    """Marker base: something an actor is asked to do."""

    __slots__ = ()


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
