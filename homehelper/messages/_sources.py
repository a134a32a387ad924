"""Messages of apps added and updated from a source (homehelper.actors.updater)."""

from __future__ import annotations

import attrs

from ._base import Command, Event


@attrs.frozen
class PreviewSource(Command):
    """Ask the updater: fetch and check a source; replies what it holds (manifest, permissions) and a
    token to confirm with. Nothing is installed."""

    source: str = attrs.field(repr=False)  # may carry credentials
    subdir: str = ""
    ref: str | None = None


@attrs.frozen
class ConfirmAdd(Command):
    """Ask the updater: install the app of a preview (its token)."""

    token: str


@attrs.frozen
class CheckUpdate(Command):
    """Ask the updater: is there a newer commit on the app's tracked ref?"""

    app_id: str


@attrs.frozen
class UpdateApp(Command):
    """Ask the updater: install the tracked ref's newest commit (or version `to`, installed before or
    not) and switch to it, rolling back when it fails its health check."""

    app_id: str
    to: str | None = None


@attrs.frozen
class GetSource(Command):
    """Ask the updater: an app's recorded source (URL redacted) and its installed versions."""

    app_id: str


@attrs.frozen
class SetAutoUpdate(Command):
    app_id: str
    enabled: bool


@attrs.frozen
class AppAdded(Event):
    app_id: str
    source: str  # redacted
    version: str


@attrs.frozen
class AppUpdateAvailable(Event):
    app_id: str
    current: str
    available: str


@attrs.frozen
class AppUpdated(Event):
    app_id: str
    previous: str
    version: str


@attrs.frozen
class AppUpdateFailed(Event):
    """An update that did not hold: `rolled_back_to` is the version running again (None: nothing to roll
    back to, or the fetch failed before anything changed)."""

    app_id: str
    version: str
    error: str
    rolled_back_to: str | None = None
