"""Machine and Pi readings, per-app resources, health levels.

The sensor actor (homehelper.actors.sensors) runs these; nothing here keeps a
timer or writes to disk.
"""

from .apps import AppSampler, ProcessTable
from .metrics import MachineSampler, install_space
from .pi import PiPaths, PiReader
from .system import SystemSampler
from .thresholds import LEVELS, LevelTracker, MachineAlerts

__all__ = [
    "LEVELS",
    "AppSampler",
    "MachineAlerts",
    "LevelTracker",
    "MachineSampler",
    "PiPaths",
    "PiReader",
    "ProcessTable",
    "SystemSampler",
    "install_space",
]
