"""The runtime's own events (supervision). Domain messages live in homehelper.messages."""

from __future__ import annotations

import attrs


@attrs.frozen
class ChildStarted:
    supervisor: str
    child: str
    start: int  # 1 for the first start, then one more per restart


@attrs.frozen
class ChildExited:
    supervisor: str
    child: str
    error: str | None  # None for a normal return


@attrs.frozen
class ChildRestarting:
    supervisor: str
    child: str
    attempt: int
    delay: float
    error: str | None


@attrs.frozen
class ChildQuarantined:
    supervisor: str
    child: str
    restarts: int
    retry_in: float
    error: str | None


@attrs.frozen
class ChildStopped:
    supervisor: str
    child: str
