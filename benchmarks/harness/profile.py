"""`--profile pi5`: run HomeHelper under a CPU quota and a memory cap, to approximate a Pi 5 on a faster machine.

It is an approximation and the report says so: a quota gives the process tree fewer
CPU-seconds per second, it does not make one core slower, so a single request's
latency is still the host core's (plus throttling pauses, kept short by a 10 ms
quota period). The quota stands for a Pi 5's four Cortex-A76 cores at an estimated
PI5_CORE_FACTOR of one host core each. Redis and the load generators run outside it:
they stand for the network and the clients.

Ways to apply it, first that works: a transient systemd scope (`systemd-run --user
--scope -p CPUQuota= -p MemoryMax=`) when a user manager answers; a cgroup v2 directory;
cgroup v1 cpu and memory directories nested under this process's own; else it says it
cannot and runs unconstrained. On a real Raspberry Pi it runs unconstrained and records
the board model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PI5_CORES = 4
PI5_CORE_FACTOR = 0.4  # one Pi 5 core vs one current x86 core at pure-Python work: an estimate, not a measurement
PI5_MEMORY_MB = 8192
QUOTA_PERIOD_US = 10_000  # short period: throttling pauses of a few ms, not 100 ms ones
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Runs in the child before HomeHelper: joins the cgroups, then becomes HomeHelper (same pid).
_JOIN = ("import os,sys\nfor p in sys.argv[1].split(os.pathsep):\n    open(p,'w').write('0')\n"
         "os.execvp(sys.argv[2], sys.argv[2:])")
PROFILES = ("none", "pi5")


class Constraint:
    """How the HomeHelper process tree is limited; `wrap` a command, `cleanup` afterwards."""

    def __init__(self, profile: str, method: str, note: str, cpu_percent: float | None = None,
                 memory_mb: int | None = None) -> None:
        self.profile = profile
        self.method = method  # none | real-pi | systemd-run | cgroup-v2 | cgroup-v1 | unconstrained
        self.note = note
        self.cpu_percent = cpu_percent  # of one host core
        self.memory_mb = memory_mb
        self.dirs: list[Path] = []  # cgroup directories made for this run
        self.join_files: list[Path] = []
        self.unit: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"profile": self.profile, "method": self.method, "cpu_quota_percent_of_one_core": self.cpu_percent,
                "memory_max_mb": self.memory_mb, "cpu_quota_period_us": QUOTA_PERIOD_US if self.cpu_percent else None,
                "pi5_core_factor": PI5_CORE_FACTOR if self.profile == "pi5" else None, "note": self.note,
                "cgroups": [str(d) for d in self.dirs]}

    def wrap(self, argv: list[str]) -> list[str]:
        if self.method == "systemd-run":
            props = [f"CPUQuota={self.cpu_percent:.0f}%", f"CPUQuotaPeriodSec={QUOTA_PERIOD_US // 1000}ms"]
            if self.memory_mb:
                props.append(f"MemoryMax={self.memory_mb}M")
            cmd = ["systemd-run", "--user", "--scope", "--quiet", "--collect", f"--unit={self.unit}"]
            for p in props:
                cmd += ["-p", p]
            return [*cmd, "--", *argv]
        if self.join_files:
            return [sys.executable, "-c", _JOIN, os.pathsep.join(map(str, self.join_files)), *argv]
        return list(argv)

    def stats(self) -> dict[str, Any]:
        """Throttling and memory peak of the cgroups, where the kernel reports them."""
        out: dict[str, Any] = {}
        for d in self.dirs:
            for name in ("cpu.stat", "memory.peak", "memory.max_usage_in_bytes", "memory.failcnt"):
                f = d / name
                try:
                    text = f.read_text()
                except OSError:
                    continue
                if name == "cpu.stat":
                    for line in text.splitlines():
                        k, _, v = line.partition(" ")
                        if k in ("nr_periods", "nr_throttled", "throttled_time", "throttled_usec"):
                            out[k] = int(v)
                else:
                    out[name] = int(text.strip())
        return out

    def cleanup(self) -> None:
        """Kill what is left in our cgroups (only what we put there), then remove them."""
        if self.unit is not None:
            subprocess.run(["systemctl", "--user", "stop", self.unit], capture_output=True, timeout=15)
        for d in reversed(self.dirs):
            for _ in range(50):
                pids = _pids(d)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            try:
                d.rmdir()
            except OSError:
                pass
        self.dirs.clear()


def _pids(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def systemd_user_answers() -> bool:
    try:
        done = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.stdout.strip() in ("running", "degraded", "starting")


def _own_cgroup(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> str | None:
    """This process's path in the v1 hierarchy holding `controller` ("" key for v2)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _try_v2(c: Constraint, root: Path, name: str) -> bool:
    ctrl = root / "cgroup.controllers"
    try:
        available = ctrl.read_text().split()
    except OSError:
        return False
    if "cpu" not in available:
        return False
    want = [x for x in ("cpu", "memory") if x in available]
    _write(root / "cgroup.subtree_control", " ".join(f"+{x}" for x in want))
    d = root / name
    try:
        d.mkdir(exist_ok=True)
    except OSError:
        return False
    c.dirs.append(d)
    quota = int(c.cpu_percent * QUOTA_PERIOD_US / 100) if c.cpu_percent else None
    cpu_ok = quota is None or _write(d / "cpu.max", f"{quota} {QUOTA_PERIOD_US}")
    mem_ok = c.memory_mb is None or _write(d / "memory.max", str(c.memory_mb * 2**20))
    if not cpu_ok:
        c.cleanup()
        return False
    if not mem_ok:
        c.note += " The memory cap could not be set (no memory controller here)."
        c.memory_mb = None
    c.method = "cgroup-v2"
    c.join_files = [d / "cgroup.procs"]
    return True


def _try_v1(c: Constraint, root: Path, name: str) -> bool:
    cpu_mount, mem_mount = root / "cpu", root / "memory"
    own_cpu = _own_cgroup("cpu")
    if own_cpu is None or not (cpu_mount / "cpu.cfs_quota_us").exists():
        return False
    d = cpu_mount / own_cpu.lstrip("/") / name
    try:
        d.mkdir(exist_ok=True)
    except OSError:
        return False
    c.dirs.append(d)
    quota = int((c.cpu_percent or 100) * QUOTA_PERIOD_US / 100)
    if not (_write(d / "cpu.cfs_period_us", str(QUOTA_PERIOD_US)) and _write(d / "cpu.cfs_quota_us", str(quota))):
        c.cleanup()
        return False
    c.join_files = [d / "cgroup.procs"]
    own_mem = _own_cgroup("memory")
    mem_ok = False
    if c.memory_mb and own_mem is not None and (mem_mount / "memory.limit_in_bytes").exists():
        m = mem_mount / own_mem.lstrip("/") / name
        try:
            m.mkdir(exist_ok=True)
            c.dirs.append(m)
            mem_ok = _write(m / "memory.limit_in_bytes", str(c.memory_mb * 2**20))
        except OSError:
            mem_ok = False
        if mem_ok:
            c.join_files.append(m / "cgroup.procs")
    if c.memory_mb and not mem_ok:
        c.note += " The memory cap could not be set."
        c.memory_mb = None
    c.method = "cgroup-v1"
    return True


def plan(profile: str, *, host_cores: int | None = None, host_memory_mb: int | None = None,
         board: str | None = None, core_factor: float = PI5_CORE_FACTOR, memory_mb: int = PI5_MEMORY_MB,
         use_systemd: bool | None = None, cgroup_root: Path = CGROUP_ROOT) -> Constraint:
    """Decide how to apply `profile` here, creating the cgroups it needs (call `cleanup` afterwards)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    if profile == "none":
        return Constraint("none", "none", "no constraint: HomeHelper runs with the whole machine")
    if board and "raspberry pi" in board.lower():
        return Constraint("pi5", "real-pi", f"running on a real {board}: unconstrained, figures are the Pi's own")
    cores = host_cores or os.cpu_count() or 1
    cpu = round(min(cores * 100.0, PI5_CORES * core_factor * 100.0), 1)
    mem = min(memory_mb, host_memory_mb) if host_memory_mb else memory_mb
    note = (f"APPROXIMATION of a Raspberry Pi 5: HomeHelper and the apps it starts get {cpu:.0f}% of one host core "
            f"({PI5_CORES} Pi cores x {core_factor} of a host core, an estimate) and {mem} MB; a quota limits "
            f"CPU-seconds, it does not slow a core down, so single-request latency is still the host's.")
    c = Constraint("pi5", "unconstrained", note, cpu, mem)
    name = f"hh-bench-{os.getpid()}"
    if use_systemd is None:
        use_systemd = systemd_user_answers()
    if use_systemd:
        c.method, c.unit = "systemd-run", f"{name}.scope"
        return c
    if _try_v2(c, cgroup_root, name) or _try_v2(c, cgroup_root / "unified", name) or _try_v1(c, cgroup_root, name):
        return c
    c.cpu_percent = c.memory_mb = None
    c.note = ("cannot apply the pi5 profile here (no systemd user manager, no writable cgroup with a cpu "
              "controller): running UNCONSTRAINED; figures are this machine's.")
    return c
