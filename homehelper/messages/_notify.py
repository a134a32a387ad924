"""Messages of the notifier: notifications sent outside the dashboard (apprise)."""

from __future__ import annotations

import attrs

from ._base import Command, Event


@attrs.frozen
class SendTestNotification(Command):
    """Ask the notifier: send a test message to every configured URL now; replies what each did."""


@attrs.frozen
class NotificationFailed(Event):
    """A notification did not reach `url` (shown without its secrets); HomeHelper carried on."""

    url: str
    error: str
    title: str = ""
