"""Messages of the Redis bridge and the event history.

BusConnected, BusDisconnected and BusMessage live in `_system.py`.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command, Event


@attrs.frozen
class GetEventHistory(Command):
    """Ask the event log (in process) or the bridge (Redis stream): recent events as dicts, newest last."""

    count: int = 100
    app_id: str | None = None  # only events about this app
    kind: str | None = None  # only events of this kind


@attrs.frozen
class GetBusState(Command):
    """Ask the bridge: is Redis connected, what is buffered and dropped (a dict, for the dashboard)."""


@attrs.frozen
class AppStatusReported(Event):
    """An app published its own status on `homehelper:<node>:apps:<id>:status`."""

    app_id: str
    status: str
    detail: Any = None


@attrs.frozen
class AppHeartbeat(Event):
    """An app published on `homehelper:<node>:apps:<id>:heartbeat`."""

    app_id: str
    data: Any = None
