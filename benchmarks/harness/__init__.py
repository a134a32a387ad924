"""The benchmark harness: progress bar, machine info, statistics, Pi profile, real processes, report."""

from .machine import machine_info
from .progress import Progress
from .stats import linear_fit, percentile, summary


class NotAvailable(Exception):
    """Raised by a scenario whose part of HomeHelper is not there yet: the runner skips it and says why."""


__all__ = ["NotAvailable", "Progress", "linear_fit", "machine_info", "percentile", "summary"]
