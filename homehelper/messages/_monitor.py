"""Messages of the system monitor beyond the snapshot asks in _system.py."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Command


@attrs.frozen
class SetMonitorConfig(Command):
    """Tell the sensor actor: new thresholds, interval or history size (config changed at run time)."""

    monitor: Any  # homehelper.config.MonitorConfig
