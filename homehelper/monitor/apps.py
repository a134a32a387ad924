"""Per-app CPU, memory and task count, from the app's cgroup or its process tree.

Under systemd each app has a cgroup: `cpu.stat` (usage_usec), `memory.current`
and `pids.current` cover every process of the app in three small reads. Where a
controller is missing (cgroup v1 or a hybrid layout) its figure comes from the
processes listed in `cgroup.procs`. Apps run as plain processes are measured
through their process tree, read straight from /proc/<pid>/stat: one file per
process gives CPU time, threads and RSS, and the tree is found with one pass
over /proc per sample for all apps (or /proc/<pid>/task/*/children where the
kernel has them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import attrs

from ..actors.runtime import Broadcast, Subscription
from ..messages import AppProcessChanged, AppRemoved, AppStopped

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@attrs.frozen
class ProcStat:
    ppid: int
    cpu_seconds: float  # user + system
    threads: int
    rss: int  # bytes


def read_stat(pid: int, proc: Path) -> ProcStat | None:
    """One process's figures from /proc/<pid>/stat; None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2 :].split()  # comm may hold spaces and parentheses
    try:
        return ProcStat(int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK, int(rest[17]), int(rest[21]) * PAGE)
    except (IndexError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cgroup_usage_usec(cgroup: Path) -> int | None:
    text = _read_text(cgroup / "cpu.stat")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1])
    return None


def cgroup_pids(cgroup: Path) -> list[int] | None:
    text = _read_text(cgroup / "cgroup.procs")
    return None if text is None else [int(x) for x in text.split()]


class ProcessTable:
    """Which process and cgroup each app has, fed by AppProcessChanged events.

    It lives outside the sensor actor (serve.py builds it) so a restarted
    actor still knows the apps that were already running. `following(bus)`
    subscribes at once, before any app starts, and that subscription outlives
    the actor too: events sent while it restarts wait in it.
    """

    FOLLOWED = (AppProcessChanged, AppStopped, AppRemoved)

    def __init__(self) -> None:
        self.apps: dict[str, tuple[int | None, str | None]] = {}
        self.subscription: Subscription | None = None

    @classmethod
    def following(cls, broadcast: Broadcast, maxlen: int = 1024) -> ProcessTable:
        table = cls()
        table.subscription = broadcast.subscribe(maxlen=maxlen, accept=lambda e: isinstance(e, cls.FOLLOWED))
        return table

    def apply(self, event: object) -> None:
        match event:
            case AppProcessChanged(app_id, pid, cgroup):
                self.set(app_id, pid, cgroup)
            case AppStopped(app_id) | AppRemoved(app_id):
                self.forget(app_id)

    def set(self, app_id: str, pid: int | None, cgroup: str | None) -> None:
        if pid is None and cgroup is None:
            self.apps.pop(app_id, None)
        else:
            self.apps[app_id] = (pid, cgroup)

    def forget(self, app_id: str) -> None:
        self.apps.pop(app_id, None)


class AppSampler:
    """Measures every app in a ProcessTable; CPU % is over the time since the last call."""

    def __init__(self, table: ProcessTable, proc: Path = Path("/proc"),
                 cgroup_roots: tuple[Path, ...] = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))) -> None:
        self.table = table
        self.proc = proc
        self.cgroup_roots = cgroup_roots
        self.children_files = os.path.exists(f"{proc}/self/task/{os.getpid()}/children")
        self._last: dict[str, tuple[float, float]] = {}  # app -> (cpu seconds, monotonic time)
        self._percent: dict[str, float | None] = {}

    def resolve_cgroup(self, cgroup: str) -> Path | None:
        """An absolute path, or one relative to a cgroup mount (as /proc/<pid>/cgroup gives it)."""
        path = Path(cgroup)
        if path.is_absolute() and (path / "cgroup.procs").exists():
            return path
        for root in self.cgroup_roots:
            candidate = root / cgroup.lstrip("/")
            if (candidate / "cgroup.procs").exists():
                return candidate
        return None

    def _children_map(self) -> dict[int, list[int]]:
        """ppid -> pids, from one pass over /proc (kernels without task/*/children)."""
        children: dict[int, list[int]] = {}
        for name in os.listdir(self.proc):
            if name.isdigit():
                st = read_stat(int(name), self.proc)
                if st is not None:
                    children.setdefault(st.ppid, []).append(int(name))
        return children

    def _direct_children(self, pid: int) -> list[int]:
        out: list[int] = []
        try:
            tids = os.listdir(f"{self.proc}/{pid}/task")
        except OSError:
            return out
        for tid in tids:
            text = _read_text(Path(f"{self.proc}/{pid}/task/{tid}/children"))
            if text:
                out.extend(int(x) for x in text.split())
        return out

    def tree(self, pid: int, children: dict[int, list[int]] | None) -> list[int]:
        """`pid` and all its descendants."""
        out, seen, todo = [], {pid}, [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            for c in children.get(p, ()) if children is not None else self._direct_children(p):
                if c not in seen:  # files read moments apart can disagree when a pid is reused
                    seen.add(c)
                    todo.append(c)
        return out

    def _measure(self, pids: list[int]) -> tuple[float, int, int, int]:
        """(cpu seconds, rss bytes, threads, live processes) summed over `pids`."""
        cpu = 0.0
        rss = threads = alive = 0
        for p in pids:
            st = read_stat(p, self.proc)
            if st is not None:
                cpu += st.cpu_seconds
                rss += st.rss
                threads += st.threads
                alive += 1
        return cpu, rss, threads, alive

    def sample(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        children: dict[int, list[int]] | None = None
        for app_id, (pid, cgroup) in list(self.table.apps.items()):
            path = self.resolve_cgroup(cgroup) if cgroup else None
            if path is not None:
                fig = self._from_cgroup(path)
            elif pid is not None:
                if children is None and not self.children_files:
                    children = self._children_map()  # one pass, shared by every app
                cpu, rss, threads, alive = self._measure(self.tree(pid, children))
                fig = {"source": "process", "cpu_seconds": cpu, "memory": rss, "tasks": threads,
                       "processes": alive} if alive else None
            else:
                fig = None
            if fig is None:
                out[app_id] = {"source": "absent", "pid": pid, "cpu_percent": None, "memory": None, "tasks": None}
                self._last.pop(app_id, None)
                continue
            fig["pid"] = pid
            fig["cpu_percent"] = self._cpu_percent(app_id, fig["cpu_seconds"], now)
            out[app_id] = fig
        for gone in set(self._last) - set(self.table.apps):
            self._last.pop(gone, None)
            self._percent.pop(gone, None)
        return out

    def _cpu_percent(self, app_id: str, cpu_seconds: float, now: float) -> float | None:
        """Percent of one core (like top) since the previous sample; None on the first one."""
        last = self._last.get(app_id)
        if last is not None and now - last[1] < 0.25:
            return self._percent.get(app_id)  # too short to measure: keep the last figure
        self._last[app_id] = (cpu_seconds, now)
        percent = None if last is None else round(max(0.0, cpu_seconds - last[0]) / (now - last[1]) * 100.0, 1)
        self._percent[app_id] = percent
        return percent

    def _from_cgroup(self, path: Path) -> dict[str, Any] | None:
        usage = cgroup_usage_usec(path)
        memory = _read_int(path / "memory.current")
        tasks = _read_int(path / "pids.current")
        pids = cgroup_pids(path)
        if pids is None:
            return None
        fig: dict[str, Any] = {"source": "cgroup", "cgroup": str(path), "processes": len(pids)}
        if usage is None or memory is None or tasks is None:
            # a controller is missing here (cgroup v1 or hybrid): count the cgroup's processes
            cpu, rss, threads, _ = self._measure(pids)
            usage = int(cpu * 1e6) if usage is None else usage
            memory = rss if memory is None else memory
            tasks = threads if tasks is None else tasks
        fig.update(cpu_seconds=usage / 1e6, memory=memory, tasks=tasks)
        return fig


def top(apps: dict[str, dict[str, Any]], key: str, n: int = 5) -> list[dict[str, Any]]:
    """The `n` apps using most of `key` (cpu_percent or memory)."""
    ranked = sorted(((a, f[key]) for a, f in apps.items() if f.get(key) is not None), key=lambda x: -x[1])
    return [{"app_id": a, key: v} for a, v in ranked[:n]]
