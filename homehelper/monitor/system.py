"""One full sample of the machine: psutil metrics, Pi readings and per-app figures.

The result is a JSON-ready dict, the system panel of the dashboard as is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .apps import AppSampler, ProcessTable, top
from .metrics import MachineSampler
from .pi import PiPaths, PiReader


class SystemSampler:
    """Builds a sample; holds the previous counters so rates cover the time between samples."""

    def __init__(self, table: ProcessTable | None = None, pi: PiPaths | None = None,
                 proc: Path = Path("/proc")) -> None:
        self.table = table if table is not None else ProcessTable()
        self.machine = MachineSampler()
        self.pi = PiReader(pi)
        self.apps = AppSampler(self.table, proc)

    def sample(self) -> dict[str, Any]:
        started = time.perf_counter()
        data = self.machine.sample()
        pi = self.pi.read()
        apps = self.apps.sample()
        temps = pi["temperatures"]
        data.update(
            at=time.time(),
            board={"model": pi["model"], "is_pi": bool(pi["model"] and pi["model"].startswith("Raspberry Pi"))},
            temperatures=temps,
            temperature=max((t["celsius"] for t in temps), default=None),
            fans=pi["fans"],
            cooling=pi["cooling"],
            throttled=pi["throttled"],
            apps=apps,
            top={"cpu": top(apps, "cpu_percent"), "memory": top(apps, "memory")},
        )
        data["absent"] = [name for name, missing in (
            ("model", pi["model"] is None), ("temperatures", not temps), ("fans", not pi["fans"]),
            ("throttled", pi["throttled"] is None), ("swap", data["swap"] is None)) if missing]
        data["sample_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        return data


HISTORY_FIELDS = ("at", "cpu", "memory", "swap", "disk", "temperature", "load", "recv_per_s", "sent_per_s")


def history_point(sample: dict[str, Any]) -> tuple[Any, ...]:
    """The few figures the dashboard charts, as a tuple (a quarter of a dict's size in the ring)."""
    root = next((d for d in sample["disks"] if d["mount"] == "/"), sample["disks"][0] if sample["disks"] else None)
    return (round(sample["at"], 1), sample["cpu"]["percent"], sample["memory"]["percent"],
            sample["swap"]["percent"] if sample["swap"] else None, root["percent"] if root else None,
            sample["temperature"], sample["cpu"]["load"][0], sample["net"]["recv_per_s"], sample["net"]["sent_per_s"])


def history_dicts(points: Any) -> list[dict[str, Any]]:
    return [dict(zip(HISTORY_FIELDS, p, strict=True)) for p in points]
