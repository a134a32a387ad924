"""Messages only service apps answer: logs and start-at-boot."""

from __future__ import annotations

import attrs

from ._base import Command


@attrs.frozen
class GetLogs(Command):
    """Ask: the last `lines` lines of the app's log (a list of str)."""

    app_id: str
    lines: int = 100


@attrs.frozen
class EnableApp(Command):
    """Start the app at boot (with HomeHelper) or not."""

    app_id: str
    enabled: bool = True
