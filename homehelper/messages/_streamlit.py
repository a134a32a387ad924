"""Messages of the Streamlit UI part: the app actors, the Streamlit slots, the proxy."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command

# --- to a StreamlitApp actor (from the TTL clock and its own process watcher) ---


@attrs.frozen
class UIExpired(Command):
    """A deadline of a Streamlit app fired; `run` tells a stale deadline from a live one."""

    app_id: str
    reason: str  # idle_ttl | max_lifetime
    run: int


@attrs.frozen
class UIProcessExited(Command):
    """The Streamlit process of run `run` ended on its own."""

    app_id: str
    run: int
    status: int | None


# --- to the Streamlit slots ------------------------------------------------------------


@attrs.frozen
class ReserveSlot(Command):
    """Ask: a running slot for this app, evicting an idle one if the cap is reached."""

    app_id: str
    ref: Any  # ActorRef of the app actor, told StopApp(reason="evicted") when it must make room
    adopted: bool = False  # it already runs (found after a HomeHelper restart): counted, never refused


@attrs.frozen
class ReleaseSlot(Command):
    """Tell: the app's Streamlit process is gone; its slot is free."""

    app_id: str


@attrs.frozen
class GetSlots(Command):
    """Ask: {app_id: seconds since it was reserved} for every app holding a slot."""


# --- published by a StreamlitApp (a plain record: in process only, never history or Redis) ---


@attrs.frozen
class UIDeadlines:
    """When a Streamlit app's run ends unless used again: its idle and max-lifetime deadlines, on
    trio's clock. Published at each start and keep-alive, so the registry's read model tells the
    time left without asking the TTL clock (every keep-alive would be a history entry as an Event)."""

    app_id: str
    idle_due: float
    life_due: float
