"""Messages about the machine, config and the bus."""

from __future__ import annotations

from typing import Any

import attrs

from ..config import redact_url
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
    changes: dict[str, Any]  # dotted key -> new value (in process: the Redis bridge reads redis_url here)

    def to_json(self) -> dict[str, Any]:
        # What leaves the process (event log, dashboard, Redis, where apps read) never holds the
        # Redis password.
        data = super().to_json()
        if isinstance(data["changes"].get("redis_url"), str):
            data["changes"] = {**data["changes"], "redis_url": redact_url(data["changes"]["redis_url"])}
        return data


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
class GetConfig(Command):
    """Ask the settings actor: the live Config."""


@attrs.frozen(eq=False)
class ChangeConfig(Command):
    """Tell the settings actor to validate, save and apply a change (nested keys); replies the new Config."""

    changes: dict[str, Any]


@attrs.frozen
class StateFileDamaged(Event):
    """A state file was unreadable or wrong: kept aside as `set_aside_as` (None if even that failed),
    rebuilt as `what` says, and HomeHelper carried on."""

    path: str
    set_aside_as: str | None
    what: str
