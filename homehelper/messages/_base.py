"""What every message is: commands (imperative) and events (past tense).

`Event` is defined by the runtime (homehelper.actors.runtime), so the runtime's
own events (supervision, failed commands) are events like any other.
"""

from __future__ import annotations

from ..actors.runtime import Event

__all__ = ["Command", "Event"]


class Command:
    """Marker base: something an actor is asked to do."""

    __slots__ = ()
