"""Messages about an app's typed options and secrets (homehelper.options)."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command, Event


@attrs.frozen
class GetOptions(Command):
    """Ask an app actor: its options schema, values, and which secrets are set (never their values)."""

    app_id: str


@attrs.frozen
class SetOptions(Command):
    """Change some of an app's options (None: back to the default; for a password: forget it).
    All are checked first: one bad value changes nothing. A running app restarts to read them."""

    app_id: str
    changes: dict[str, Any] = attrs.field(factory=dict, hash=False, repr=False)  # may hold secrets: never logged


@attrs.frozen
class AppOptionsChanged(Event):
    """The user changed these options of the app (names only: values may be secrets)."""

    app_id: str
    names: tuple[str, ...] = ()
    restarted: bool = False
