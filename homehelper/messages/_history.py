"""Messages of the metrics history (homehelper/actors/history.py) and the Redis figures."""

from __future__ import annotations

import attrs

from ._base import Command


@attrs.frozen
class GetMetricHistory(Command):
    """Ask the history actor: one series (`machine`, `app:<id>`, `redis`) over `range` (1h, 24h, 30d...)."""

    series: str = "machine"
    range: str = "1h"
    points: int = 360  # at most this many points: buckets are averaged together beyond it


@attrs.frozen
class GetRedisStats(Command):
    """Ask the Redis bridge: Redis's INFO and LATENCY figures and the bridge's own, taken now."""


@attrs.frozen
class FlushHistory(Command):
    """Ask the history actor to write what it holds now (a clean shutdown does it too)."""


@attrs.frozen
class GetHistoryState(Command):
    """Ask the history actor: its file, what waits to be written, the series it holds."""
