"""Per-app figures of real processes: process trees, and a real cgroup v2 where the kernel lets us."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import trio

from homehelper.monitor.apps import AppSampler, ProcessTable, read_stat, top
from tests.fixtures.tree import wait_until

BUSY = [sys.executable, "-c", "while True: pass"]


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def start(procs: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv)
    procs.append(p)
    return p


def test_read_stat_matches_psutil() -> None:
    st = read_stat(os.getpid(), Path("/proc"))
    me = psutil.Process()
    assert st is not None
    assert st.ppid == me.ppid()
    assert st.threads == me.num_threads()
    assert abs(st.rss - me.memory_info().rss) < 4 * 1024 * 1024
    t = me.cpu_times()
    assert abs(st.cpu_seconds - (t.user + t.system)) < 0.1
    assert read_stat(2**22 + 1, Path("/proc")) is None  # beyond pid_max: gone


async def test_process_tree_is_summed(spawn: list[subprocess.Popen[bytes]]) -> None:
    shell = start(spawn, ["sh", "-c", "sleep 60 & sleep 60 & wait"])

    def settled() -> bool:  # both children exec'd `sleep` and sleep in it (their memory holds still)
        kids = psutil.Process(shell.pid).children()
        return len(kids) == 2 and all(k.name() == "sleep" and k.status() == psutil.STATUS_SLEEPING for k in kids)

    await wait_until(settled, timeout=10)
    table = ProcessTable()
    table.set("logger", shell.pid, None)
    sampler = AppSampler(table)
    fig = sampler.sample()["logger"]
    tree = [psutil.Process(shell.pid), *psutil.Process(shell.pid).children(recursive=True)]
    assert fig["source"] == "process" and fig["pid"] == shell.pid
    assert fig["processes"] == len(tree) == 3
    assert fig["tasks"] == sum(p.num_threads() for p in tree)
    assert abs(fig["memory"] - sum(p.memory_info().rss for p in tree)) < 1024 * 1024
    assert fig["cpu_percent"] is None  # the first sample has nothing to compare with


async def test_cpu_percent_of_a_busy_app(spawn: list[subprocess.Popen[bytes]]) -> None:
    busy = start(spawn, BUSY)
    idle = start(spawn, ["sleep", "60"])
    table = ProcessTable()
    table.set("busy", busy.pid, None)
    table.set("idle", idle.pid, None)
    sampler = AppSampler(table)
    me = psutil.Process(busy.pid)
    sampler.sample()
    t0, c0 = time.monotonic(), sum(me.cpu_times()[:2])
    await trio.sleep(1.0)
    apps = sampler.sample()
    expected = (sum(me.cpu_times()[:2]) - c0) / (time.monotonic() - t0) * 100.0  # what psutil saw meanwhile
    assert expected > 5.0  # the spinning process got some of a shared machine
    assert apps["busy"]["cpu_percent"] == pytest.approx(expected, abs=10.0)
    assert apps["idle"]["cpu_percent"] < 5.0
    assert [t["app_id"] for t in top(apps, "cpu_percent")] == ["busy", "idle"]


async def test_a_gone_process_is_absent_and_forgotten(spawn: list[subprocess.Popen[bytes]]) -> None:
    p = start(spawn, ["sleep", "60"])
    table = ProcessTable()
    table.set("x", p.pid, None)
    sampler = AppSampler(table)
    assert sampler.sample()["x"]["source"] == "process"
    p.kill()
    p.wait()
    assert sampler.sample()["x"] == {"source": "absent", "pid": p.pid, "cpu_percent": None, "memory": None,
                                     "tasks": None}
    table.forget("x")
    assert sampler.sample() == {}


def test_table_drops_an_app_without_process() -> None:
    table = ProcessTable()
    table.set("a", 10, None)
    table.set("a", None, None)
    assert table.apps == {}


CGROUP2 = Path("/sys/fs/cgroup/unified")


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A real cgroup v2 directory (hybrid layout here: cpu.stat, no memory/pids controllers)."""
    base = CGROUP2 if (CGROUP2 / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    path = base / f"hh-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc}")
    yield path
    for _ in range(50):
        try:
            path.rmdir()
            break
        except OSError:
            time.sleep(0.05)


async def test_cgroup_figures(cgroup: Path, spawn: list[subprocess.Popen[bytes]]) -> None:
    busy = start(spawn, BUSY)
    (cgroup / "cgroup.procs").write_text(f"{busy.pid}\n")
    table = ProcessTable()
    table.set("svc", busy.pid, str(cgroup))
    sampler = AppSampler(table)
    sampler.sample()
    await trio.sleep(0.8)
    fig = sampler.sample()["svc"]
    assert fig["source"] == "cgroup" and fig["cgroup"] == str(cgroup) and fig["processes"] == 1
    usage = next(int(line.split()[1]) for line in (cgroup / "cpu.stat").read_text().splitlines()
                 if line.startswith("usage_usec"))
    assert 0 < fig["cpu_seconds"] <= usage / 1e6
    assert fig["cpu_percent"] > 5.0  # a spinning process, on a shared machine
    memory_current = cgroup / "memory.current"
    rss = psutil.Process(busy.pid).memory_info().rss
    expected = int(memory_current.read_text()) if memory_current.exists() else rss
    assert abs(fig["memory"] - expected) < 2 * 1024 * 1024
    assert fig["tasks"] >= 1
    # the same cgroup named as /proc/<pid>/cgroup gives it, relative to the mount
    table.set("svc", busy.pid, "/" + cgroup.name)
    assert AppSampler(table, cgroup_roots=(cgroup.parent,)).sample()["svc"]["source"] == "cgroup"


async def test_a_removed_cgroup_falls_back_to_the_process(spawn: list[subprocess.Popen[bytes]]) -> None:
    p = start(spawn, ["sleep", "60"])
    table = ProcessTable()
    table.set("svc", p.pid, "/sys/fs/cgroup/unified/hh-no-such-unit.service")
    assert AppSampler(table).sample()["svc"]["source"] == "process"


# --- a /proc tree in the real format: the kernel here lacks /proc/<pid>/task/*/children --------------

def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, threads: int, rss_pages: int) -> str:
    """/proc/<pid>/stat as the kernel writes it (52 fields; the ones read here set, the rest plausible)."""
    fields = ["S", ppid, pid, pid, 0, -1, 4194560, 1234, 0, 0, 0, utime, stime, 0, 0, 20, 0, threads, 0, 12345,
              123456789, rss_pages, 18446744073709551615] + [0] * 27
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def fake_proc(root: Path, with_children: bool) -> Path:
    tick = os.sysconf("SC_CLK_TCK")
    procs = {  # pid: (comm, ppid, threads)
        100: ("python3", 1, 3), 101: ("worker", 100, 1), 102: ("a) (b", 101, 2), 200: ("other", 1, 1)}
    for pid, (comm, ppid, threads) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(stat_line(pid, comm, ppid, utime=2 * tick, stime=tick, threads=threads, rss_pages=100))
        if with_children:
            for tid in range(threads):  # children are listed under the thread that forked them
                kids = [p for p, (_, pp, _) in procs.items() if pp == pid] if tid == 0 else []
                (d / "task" / str(pid + tid)).mkdir(parents=True)
                (d / "task" / str(pid + tid) / "children").write_text("".join(f"{k} " for k in kids))
    if with_children:
        me = root / "self" / "task" / str(os.getpid())
        me.mkdir(parents=True)
        (me / "children").write_text("")
    return root


@pytest.mark.parametrize("with_children", [True, False], ids=["task-children", "full-scan"])
def test_tree_from_a_proc_tree(tmp_path: Path, with_children: bool) -> None:
    proc = fake_proc(tmp_path / "proc", with_children)
    table = ProcessTable()
    table.set("app", 100, None)
    sampler = AppSampler(table, proc=proc)
    assert sampler.children_files is with_children
    fig = sampler.sample()["app"]
    page = os.sysconf("SC_PAGE_SIZE")
    assert fig["processes"] == 3  # 100, its child and grandchild; not 200
    assert fig["tasks"] == 3 + 1 + 2
    assert fig["memory"] == 3 * 100 * page
    assert fig["cpu_seconds"] == pytest.approx(3 * 3.0)  # 2 s user + 1 s system each
