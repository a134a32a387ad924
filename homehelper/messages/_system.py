"""Messages about the machine, config and the bus."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command, Event


@attrs.frozen
class GetSystemSnapshot(Command):
    """Ask the sensor actor: metrics now (`fresh`) or from the last sample."""

    fresh: bool = True


@attrs.frozen
class GetHistory(Command):
    """Ask the sensor actor: the ring of recent samples."""


@attrs.frozen
class AlertRaised(Event):
    metric: str
    level: str  # careful | warning | critical
    value: float
    threshold: float
    message: str = ""


@attrs.frozen
class AlertCleared(Event):
    metric: str
    previous: str
    value: float


@attrs.frozen
class ConfigChanged(Event):
    changes: dict[str, Any]  # dotted key -> new value


@attrs.frozen
class BusConnected(Event):
    url: str


@attrs.frozen
class BusDisconnected(Event):
    url: str
    error: str
    buffered: int = 0


@attrs.frozen
class BusMessage(Event):
    """A message an app published on the bus, entering the actor tree."""

    channel: str
    app_id: str | None
    data: Any


@attrs.frozen
class ServerStarted(Event):
    url: str
    backend: str


@attrs.frozen
class StateFileDamaged(Event):
    """A state file was unreadable or wrong: kept aside as `set_aside_as` (None if even that failed),
    rebuilt as `what` says, and HomeHelper carried on."""

    path: str
    set_aside_as: str | None
    what: str
