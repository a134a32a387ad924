"""Machine metrics from psutil: CPU, load, memory, swap, disks, network, uptime;
and the free-disk guard installers call before they write a venv.

`MachineSampler` keeps the previous CPU and network counters so each sample
reports rates over the time since the last one, without psutil's module-level
state (which any other caller of `psutil.cpu_percent()` would disturb).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import psutil

from ..config import Config

# Filesystems that hold no user data; psutil's all=False already drops most pseudo ones.
_SKIP_FSTYPES = frozenset({"squashfs", "tmpfs", "devtmpfs", "overlay", "ramfs", "iso9660"})
MIN_CPU_INTERVAL = 0.25  # below this a CPU delta is noise; the previous figure is kept
MB = 1024 * 1024


def _busy(t: Any) -> tuple[float, float]:
    """(busy, total) seconds of one cpu_times() entry; iowait and steal are idle time here."""
    total = sum(t)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


def cpu_percents(prev: list[Any], cur: list[Any]) -> list[float]:
    out = []
    for a, b in zip(prev, cur, strict=False):
        busy_a, total_a = _busy(a)
        busy_b, total_b = _busy(b)
        dt = total_b - total_a
        out.append(round(max(0.0, min(100.0, (busy_b - busy_a) / dt * 100.0)), 1) if dt > 0 else 0.0)
    return out


def disks() -> list[dict[str, Any]]:
    """Usage of each mounted disk, once per device (bind mounts repeat it)."""
    out = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FSTYPES or part.device in seen:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # unmounted meanwhile, or not readable
            continue
        if usage.total == 0:
            continue
        seen.add(part.device)
        out.append({"mount": part.mountpoint, "device": part.device, "fstype": part.fstype,
                    "total": usage.total, "used": usage.used, "free": usage.free,
                    "percent": round(usage.used / usage.total * 100.0, 1)})
    return out


def memory() -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(memory, swap or None). Used memory is total - available: the page cache is not 'used'."""
    vm = psutil.virtual_memory()
    used = vm.total - vm.available
    mem = {"total": vm.total, "available": vm.available, "used": used,
           "percent": round(used / vm.total * 100.0, 1) if vm.total else 0.0}
    sw = psutil.swap_memory()
    swap = ({"total": sw.total, "used": sw.used, "free": sw.free,
             "percent": round(sw.used / sw.total * 100.0, 1)} if sw.total else None)
    return mem, swap


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (the state root may not exist yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def install_space(config: Config, path: Path | None = None) -> dict[str, Any]:
    """Free space where installs write (the venvs), against monitor.min_free_disk_mb.

    The one rule: Installer.check_disk refuses an install by it, the snapshot's `installs` shows it."""
    target = _existing(path or config.root / "venvs")
    free_mb = shutil.disk_usage(target).free // MB
    required_mb = config.monitor.min_free_disk_mb
    blocked = None
    if free_mb < required_mb:
        blocked = (f"not enough free disk to install: {free_mb} MB free on the disk holding {target}, "
                   f"installs need at least {required_mb} MB (monitor.min_free_disk_mb); free some space first")
    return {"free_mb": free_mb, "required_mb": required_mb, "path": str(target), "blocked": blocked}


class MachineSampler:
    """CPU, memory, swap, disks, network and uptime; rates since the previous call."""

    def __init__(self) -> None:
        self.boot_time = psutil.boot_time()  # fixed until reboot; psutil re-reads /proc/stat each call
        self.cores = psutil.cpu_count() or 1
        self._cpu = psutil.cpu_times(percpu=True)
        self._net = psutil.net_io_counters()
        self._at = time.monotonic()
        self._percents: list[float] = [0.0] * len(self._cpu)
        self._rates: tuple[float | None, float | None] = (None, None)
        self._measured = False

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        cpu = psutil.cpu_times(percpu=True)
        net = psutil.net_io_counters()
        dt = now - self._at
        if dt >= MIN_CPU_INTERVAL:
            self._percents = cpu_percents(self._cpu, cpu)
            if net is not None and self._net is not None:
                self._rates = (max(0.0, (net.bytes_recv - self._net.bytes_recv) / dt),
                               max(0.0, (net.bytes_sent - self._net.bytes_sent) / dt))
            self._cpu, self._net, self._at, self._measured = cpu, net, now, True
        total = round(sum(self._percents) / len(self._percents), 1) if self._percents else 0.0
        mem, swap = memory()
        load = os.getloadavg()
        return {
            "cpu": {"percent": total if self._measured else None,
                    "per_core": list(self._percents) if self._measured else None,
                    "count": self.cores, "load": [round(x, 2) for x in load]},
            "memory": mem,
            "swap": swap,
            "disks": disks(),
            "net": {"bytes_recv": net.bytes_recv if net else None, "bytes_sent": net.bytes_sent if net else None,
                    "recv_per_s": _round(self._rates[0]), "sent_per_s": _round(self._rates[1])},
            "uptime": round(time.time() - self.boot_time, 1),
            "boot_time": self.boot_time,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
