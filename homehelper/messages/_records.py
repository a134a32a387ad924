"""Plain records: what a part announces so that others can wait on it instead of polling.

Not `Event`s: they stay in the process (the event log and the Redis bridge take Events only),
like the runtime's ChildStarted. Tests and the dashboard wait on them.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["BusIdentityKnown", "SystemSampled"]


@attrs.frozen
class SystemSampled:
    """The sensor actor took a background sample (`sample`, the snapshot dict, which the history
    actor keeps on disk); `samples` taken so far, `history` points kept in memory now."""

    sample: Any
    samples: int = 0
    history: int = 0


@attrs.frozen
class BusIdentityKnown:
    """The bridge (re)connected and learnt how apps meet Redis: `identity` per-app | shared (bus state's)."""

    identity: str
    note: str = ""
