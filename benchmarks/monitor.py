"""System monitor benchmark: what a snapshot costs, and what an idle HomeHelper costs.

1. One full snapshot with 20 running apps (20 real process trees: a shell and
   its sleeping child each) beside the bare psutil calls it is built on, doing
   the same work (the same trees, found the same way, not every process of the
   machine), timed in interleaved rounds of the same run. Target: snapshot <=
   2x bare psutil.
2. HomeHelper's idle CPU with 20 apps registered and running: `serve()` in a
   child process, the sensor actor sampling at its default interval, the CPU
   time of that process over 60 s (--quick: 20 s). Target: < 1 % of one core.

    python benchmarks/monitor.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homehelper.monitor.apps import ProcessTable  # noqa: E402
from homehelper.monitor.system import SystemSampler  # noqa: E402

APPS = 20
SNAPSHOT_TARGET = 2.0  # x bare psutil
IDLE_TARGET = 1.0  # % of one core


def spawn_apps(n: int = APPS) -> list[subprocess.Popen[bytes]]:
    """n small real apps, each a process tree of two (a shell waiting on its child)."""
    return [subprocess.Popen(["sh", "-c", "sleep 3600 & wait"], stdin=subprocess.DEVNULL) for _ in range(n)]


def stop_apps(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        for child in psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []:
            child.kill()
        p.kill()
        p.wait()


def _machine_calls() -> None:
    """The machine-wide psutil calls behind a snapshot."""
    psutil.cpu_times(percpu=True)
    psutil.net_io_counters()
    psutil.virtual_memory()
    psutil.swap_memory()
    os.getloadavg()
    psutil.boot_time()
    for part in psutil.disk_partitions(all=False):
        psutil.disk_usage(part.mountpoint)
    psutil.sensors_temperatures()
    psutil.sensors_fans()


def _direct_children(pid: int) -> list[int]:
    """`pid`'s children, from /proc/<pid>/task/*/children: what finding a tree costs without a scan."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
BASELINE = ("the machine-wide psutil calls, then the same 20 process trees the sampler measures, found the way "
            "it finds them (/proc/<pid>/task/*/children; one pass over /proc only where the kernel lacks those "
            "files) and measured with psutil oneshot (cpu_times, memory_info, num_threads): not every process")


def _measure(pid: int) -> None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            proc.cpu_times()
            proc.memory_info()
            proc.num_threads()
    except psutil.NoSuchProcess:
        pass


def bare_psutil(pids: list[int]) -> None:
    """The psutil calls behind a snapshot, used as directly as psutil allows, on the same work:
    the apps' process trees only (as the sampler finds them), not every process of the machine."""
    _machine_calls()
    children: dict[int, list[int]] | None = None
    if not CHILDREN_FILES:  # as the sampler: one pass over every process, only where it must
        children = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
    for pid in pids:
        todo = [pid]
        while todo:
            p = todo.pop()
            todo.extend(children.get(p, ()) if children is not None else _direct_children(p))
            _measure(p)


def bare_proc_reads(pids: list[int]) -> None:
    """For context, the floor: the machine calls, then the same trees read as the sampler reads them
    (one /proc/<pid>/stat per process, split by hand), with no sampler around them."""
    _machine_calls()
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        todo = [pid]
        while todo:
            p = todo.pop()
            todo.extend(_direct_children(p))
            try:
                with open(f"/proc/{p}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                (int(fields[11]) + int(fields[12]), int(fields[21]) * page, int(fields[17]))
            except (OSError, IndexError, ValueError):
                pass


def bare_psutil_all_processes(pids: list[int]) -> None:
    """For context, the old baseline: the trees found by a scan of every process of the machine."""
    _machine_calls()
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
    for pid in pids:
        todo = [pid]
        while todo:
            p = todo.pop()
            todo.extend(children.get(p, ()))
            _measure(p)


def bare_psutil_main_only(pids: list[int]) -> None:
    """For context: the same without finding the trees (each app's main process only)."""
    _machine_calls()
    for pid in pids:
        proc = psutil.Process(pid)
        with proc.oneshot():
            proc.cpu_times()
            proc.memory_info()
            proc.num_threads()


def per_call(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def bench_snapshot(quick: bool) -> dict[str, Any]:
    procs = spawn_apps()
    try:
        time.sleep(0.3)
        table = ProcessTable()
        for i, p in enumerate(procs):
            table.set(f"app-{i:02d}", p.pid, None)
        sampler = SystemSampler(table)
        pids = [p.pid for p in procs]
        snap = sampler.sample()
        assert len(snap["apps"]) == APPS and all(a["processes"] == 2 for a in snap["apps"].values()), snap["apps"]
        rounds, n = (6, 20) if quick else (15, 40)
        ours, bare, flat, scan, raw = [], [], [], [], []
        for _ in range(rounds):  # interleaved: the machine is shared and noisy
            ours.append(per_call(sampler.sample, n))
            bare.append(per_call(lambda: bare_psutil(pids), n))
            flat.append(per_call(lambda: bare_psutil_main_only(pids), n))
            scan.append(per_call(lambda: bare_psutil_all_processes(pids), n))
            raw.append(per_call(lambda: bare_proc_reads(pids), n))
        actor_ms = trio.run(_actor_snapshot_ms, table, n)
        snapshot_ms, bare_ms = statistics.median(ours) * 1000, statistics.median(bare) * 1000
        return {"apps": APPS, "processes": sum(a["processes"] for a in snap["apps"].values()),
                "snapshot_ms": round(snapshot_ms, 3), "bare_psutil_ms": round(bare_ms, 3),
                "actor_ask_ms": round(actor_ms, 3),
                "bare_psutil_no_tree_ms": round(statistics.median(flat) * 1000, 3),
                "bare_psutil_scan_all_ms": round(statistics.median(scan) * 1000, 3),
                "bare_proc_reads_ms": round(statistics.median(raw) * 1000, 3),
                "machine_processes": len(psutil.pids()), "children_files": CHILDREN_FILES,
                "ratio": round(snapshot_ms / bare_ms, 3),
                "actor_ratio": round(actor_ms / bare_ms, 3)}
    finally:
        stop_apps(procs)


async def _actor_snapshot_ms(table: ProcessTable, n: int) -> float:
    """The same snapshot through the sensor actor: ask GetSystemSnapshot(fresh=True)."""
    from homehelper.actors import Broadcast, ChildSpec, Supervisor
    from homehelper.actors.sensors import SensorActor
    from homehelper.config import Config
    from homehelper.messages import GetSystemSnapshot

    cfg = Config(root=REPO / "state" / "bench", apps_dir=REPO / "state" / "bench-apps")
    broadcast = Broadcast()
    async with trio.open_nursery() as nursery:
        sup = Supervisor("root", emit=broadcast.publish)
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("sensors", lambda: SensorActor(cfg, broadcast.publish, broadcast, table)))
        await ref.ask(GetSystemSnapshot(fresh=True))
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n):
                await ref.ask(GetSystemSnapshot(fresh=True))
            times.append((time.perf_counter() - started) / n)
        nursery.cancel_scope.cancel()
    return statistics.median(times) * 1000


# --- idle CPU -------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_apps(apps_dir: Path, n: int = APPS) -> None:
    for i in range(n):
        d = apps_dir / f"bench-{i:02d}"
        d.mkdir(parents=True)
        (d / "main.py").write_text("import time\ntime.sleep(3600)\n")
        (d / "homehelper.json").write_text(json.dumps({"id": f"bench-{i:02d}", "name": f"Bench {i}",
                                                       "type": "service", "entry": "main.py"}))


async def _idle_child(root: Path, window: float, pids: list[int]) -> None:
    """Runs in the child: HomeHelper serving, 20 apps registered, their processes followed."""
    from homehelper.actors import ChildSpec
    from homehelper.actors.sensors import SensorActor
    from homehelper.config import load_config
    from homehelper.messages import AppProcessChanged, GetSystemSnapshot, ListApps
    from homehelper.serve import serve

    config = load_config(root, {"port": _free_port()}, environ={})  # apps in root/apps
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        sensors = rt.refs.get("sensors")
        wired = sensors is not None
        if sensors is None:  # serve.py without the sensor yet: attach it the way serve.py will
            procs = ProcessTable.following(rt.broadcast)
            sensors = rt.root.start_child(ChildSpec("sensors", lambda: SensorActor(config, rt.broadcast.publish, rt.broadcast,
                                                                                   procs)))
        registered = 0
        for _ in range(50):  # let the scanner register the apps
            await trio.sleep(0.2)
            registered = len(await rt.refs["registry"].ask(ListApps()))
            if registered >= APPS:
                break
        for i, pid in enumerate(pids):
            rt.broadcast.publish(AppProcessChanged(f"bench-{i:02d}", pid))
        await trio.sleep(0.5)
        print("ready", flush=True)
        await trio.sleep(window)
        snap = await sensors.ask(GetSystemSnapshot(fresh=False))
        print(json.dumps({"wired_in_serve": wired, "apps_registered": registered, "apps_followed": len(snap["apps"]),
                          "monitor": snap["monitor"]}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # the parent reads our CPU time, then closes stdin
        nursery.cancel_scope.cancel()


def cpu_seconds(pid: int) -> float:
    """User + system time of the whole process, exited threads included (10 ms ticks: fine over 20-60 s)."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def written(pid: int) -> int | None:
    """Bytes the process caused to be written to storage (None where /proc/<pid>/io is not readable)."""
    try:
        return int(psutil.Process(pid).io_counters().write_bytes)
    except (psutil.AccessDenied, AttributeError):
        return None


def bench_idle(quick: bool) -> dict[str, Any]:
    window = 20.0 if quick else 60.0
    root = REPO / "state" / "bench" / f"monitor-{uuid.uuid4().hex[:8]}"
    write_apps(root / "apps")
    procs = spawn_apps()
    child = None
    log = (root / "child.log").open("w")
    try:
        child = subprocess.Popen([sys.executable, __file__, "--idle-child", str(root), str(window),
                                  *(str(p.pid) for p in procs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=log, text=True, cwd=REPO)
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            log.flush()
            raise RuntimeError(f"HomeHelper did not start: {line!r}\n{(root / 'child.log').read_text()[-2000:]}")
        t0, c0, w0 = time.monotonic(), cpu_seconds(child.pid), written(child.pid)
        report = json.loads(child.stdout.readline())
        t1, c1, w1 = time.monotonic(), cpu_seconds(child.pid), written(child.pid)
        child.stdin.close()
        child.wait(timeout=10)
        cpu = c1 - c0
        return {"window_s": round(t1 - t0, 1), "cpu_seconds": round(cpu, 4),
                "disk_write_bytes": None if w0 is None or w1 is None else w1 - w0,
                "idle_cpu_percent": round(cpu / (t1 - t0) * 100.0, 3), **report}
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        stop_apps(procs)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; idle window 20 s instead of 60 s")
    parser.add_argument("--idle-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.idle_child:
        root, window, *pids = args.idle_child
        trio.run(_idle_child, Path(root), float(window), [int(p) for p in pids])
        return {}
    snap = bench_snapshot(args.quick)
    print(f"monitor: baseline: {BASELINE}")
    print(f"snapshot with {snap['apps']} apps ({snap['processes']} processes): {snap['snapshot_ms']:.3f} ms, "
          f"bare psutil {snap['bare_psutil_ms']:.3f} ms, ratio {snap['ratio']:.2f}x "
          f"(target <= {SNAPSHOT_TARGET}x: {'pass' if snap['ratio'] <= SNAPSHOT_TARGET else 'MISS'})")
    print(f"  through the actor (ask GetSystemSnapshot(fresh=True)): {snap['actor_ask_ms']:.3f} ms, "
          f"ratio {snap['actor_ratio']:.2f}x; for context, bare psutil without the process trees "
          f"(main processes only): {snap['bare_psutil_no_tree_ms']:.3f} ms; the old baseline that scans all "
          f"{snap['machine_processes']} processes of the machine: {snap['bare_psutil_scan_all_ms']:.3f} ms; "
          f"the floor, the same /proc/<pid>/stat reads by hand: {snap['bare_proc_reads_ms']:.3f} ms "
          f"(snapshot {snap['snapshot_ms'] / max(snap['bare_proc_reads_ms'], 1e-9):.2f}x of it)")
    idle = bench_idle(args.quick)
    note = " (--quick: 20 s window, not 60 s)" if args.quick else ""
    print(f"idle HomeHelper with {APPS} apps over {idle['window_s']} s{note}: {idle['cpu_seconds']:.3f} CPU s = "
          f"{idle['idle_cpu_percent']:.3f} % of one core (target < {IDLE_TARGET} %: "
          f"{'pass' if idle['idle_cpu_percent'] < IDLE_TARGET else 'MISS'}); sensor wired in serve.py: "
          f"{idle['wired_in_serve']}, apps registered: {idle['apps_registered']}, followed: {idle['apps_followed']}, "
          f"monitor's own sampling {idle['monitor']['cpu_seconds']} CPU s in {idle['monitor']['samples']} samples; "
          f"disk writes while idle: {idle['disk_write_bytes']} bytes")
    targets = [
        {"name": f"monitor snapshot, {APPS} apps, vs bare psutil", "value": snap["ratio"], "unit": "x",
         "target": f"<= {SNAPSHOT_TARGET}", "pass": snap["ratio"] <= SNAPSHOT_TARGET,
         "note": f"{snap['snapshot_ms']} ms vs {snap['bare_psutil_ms']} ms"},
        {"name": f"idle HomeHelper CPU, {APPS} apps", "value": idle["idle_cpu_percent"], "unit": "% of one core",
         "target": f"< {IDLE_TARGET}", "pass": idle["idle_cpu_percent"] < IDLE_TARGET,
         "note": f"over {idle['window_s']} s" + (" (--quick)" if args.quick else "")},
    ]
    return {"baseline": BASELINE, "snapshot": snap, "idle": idle, "targets": targets,
            "pass": all(t["pass"] for t in targets)}


if __name__ == "__main__":
    main()
