"""Messages of the fleet: several HomeHelpers over one Redis (homehelper/actors/fleet.py)."""

from __future__ import annotations

import attrs

from ._base import Command, Event


@attrs.frozen
class GetFleet(Command):
    """Ask the fleet actor: every node of the fleet with its summary (a dict, for the dashboard)."""


@attrs.frozen
class FleetJoined(Event):
    """This node's presence is in Redis: the other nodes see it (once per connection)."""

    node_id: str


@attrs.frozen
class FleetAway(Event):
    """This node lost the fleet's Redis: it works alone and shows the fleet as unknown (once per outage)."""

    node_id: str
    error: str


@attrs.frozen
class FleetCommandHandled(Event):
    """This node acted on (or refused) a command another node's user sent through the fleet."""

    app_id: str
    action: str
    command_id: str
    asker: str  # the node it came from
    user: str  # who asked there
    ok: bool
    error: str | None = None
