"""Messages only service apps answer: start-at-boot."""

from __future__ import annotations

import attrs

from ._base import Command


@attrs.frozen
class EnableApp(Command):
    """Start the app at boot (with HomeHelper) or not."""

    app_id: str
    enabled: bool = True
