"""Start to healthy: N small HTTP service apps started through HomeHelper (the real tree of
`homehelper serve` without the web server) until each reports healthy, beside the same apps
started bare (the same Python file, spawned directly, /health polled every 5 ms by a bare HTTP/1.0 GET), in interleaved
rounds of the same run. Run for 1 and 20 apps (--apps 1,10,40 for scaling), on the process
backend and on a real systemd user manager (with a real journald where one can run beside it,
as on a Pi: units log to the journal). Under systemd a second baseline is printed: the same
unit files HomeHelper wrote (same sandbox, same socket proxy) started by one `systemctl --user
start` with the same 5 ms /health polls: what systemd and the sandbox cost, so the ratio against
it is what HomeHelper's supervision adds. That ratio is the target under systemd; the ratio to
the bare spawn is printed beside it.

    python benchmarks/startup.py [--quick] [--apps 1,20] [--backends process,systemd]

HomeHelper's time runs from the StartApp asks (all apps at once) to the last AppHealthChanged
(healthy) event; the bare time from the first spawn to the last 200 from /health.
Target (issue 17.1): the median within 1.5x of bare, for 1 and 20 apps at once; the extra
milliseconds per start say what the supervision costs (backends/base.py probe_delays).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import NotAvailable  # noqa: E402
from benchmarks.harness.apps import StartAll, all_healthy  # noqa: E402
from benchmarks.harness.procs import free_range  # noqa: E402
from homehelper.actors import Broadcast  # noqa: E402
from homehelper.backends import ProcessBackend, SystemdBackend  # noqa: E402
from homehelper.messages import GetApp, ScanApplied  # noqa: E402
from homehelper.serve import Overrides, build_tree  # noqa: E402
from tests.backends.apps import HEALTHY_APP, make_config, write_app  # noqa: E402
from tests.fixtures.systemd import _cleanup, _stop_processes  # noqa: E402

BASELINE = ("the same app file spawned directly with the same environment (python main.py), its /health "
            "polled every 5 ms (a bare HTTP/1.0 GET) until it answers 200; all N spawned at once")
TARGET = 1.5


@contextlib.contextmanager
def _stage(what: str | Callable[[], str]) -> Iterator[None]:
    """A timeout says which stage it ended (the run's summary shows only the error's first line)."""
    try:
        yield
    except trio.TooSlowError:
        raise RuntimeError(what if isinstance(what, str) else what()) from None


async def _homehelper_rounds(root: Path, n: int, rounds: int, manager: Any = None,
                             same_units: list[float] | None = None) -> list[float]:
    """HomeHelper's rounds; under systemd, alternated with rounds of the same unit files started by
    one `systemctl --user start` (HomeHelper's actors stopped meanwhile), appended to `same_units`."""
    config = attrs.evolve(make_config(root, backend="systemd" if manager else "process"), port=0)
    backend: Any = None
    if manager is not None:
        backend = SystemdBackend("user", environ=manager.env, prefix=f"hh-bs{uuid.uuid4().hex[:4]}-",
                                 journal=manager.journal() if hasattr(manager, "journal") else None)
    ids = [f"svc-{i:02d}" for i in range(n)]
    for app_id in ids:
        write_app(config.apps_dir, app_id, HEALTHY_APP)
    times: list[float] = []
    try:
        async with trio.open_nursery() as nursery:
            broadcast = Broadcast()
            scanned = broadcast.subscribe(4, accept=lambda e: isinstance(e, ScanApplied))
            rt = await build_tree(config, nursery, Overrides(broadcast=broadcast, backend=backend))
            every = StartAll(rt.broadcast, rt.apps, ids)
            with _stage(f"the first scan did not register {n} apps within 30 s"), trio.fail_after(30):
                await scanned.receive()  # the first scan applied: every app has its actor

            async def start_all() -> float:
                t0 = time.perf_counter()
                with _stage(lambda: f"after 120 s {every.missing()}"), trio.fail_after(120):
                    await every.start()
                return time.perf_counter() - t0

            async def stop_all() -> None:
                await every.stop()
                for app_id in ids:
                    assert (await rt.apps.ref(app_id).ask(GetApp(app_id)))["state"] == "stopped"

            async def units_round() -> float:
                units = [backend.unit(a) for a in ids]
                t0 = time.perf_counter()
                await trio.run_process(["systemctl", "--user", "start", *units], env=manager.env)
                with _stage(f"{n} units started by systemctl: not all healthy within 60 s"), trio.fail_after(60):
                    await all_healthy(ports)
                took = time.perf_counter() - t0
                await trio.run_process(["systemctl", "--user", "stop", f"{backend.prefix}*"], env=manager.env)
                return took

            await start_all()  # warm-up: venvs made, files cached
            ports = [(await rt.apps.ref(a).ask(GetApp(a)))["port"] for a in ids]
            await stop_all()
            for _ in range(rounds):
                times.append(await start_all())
                await stop_all()
                if same_units is not None:
                    same_units.append(await units_round())
            nursery.cancel_scope.cancel()
    finally:
        if manager is not None:
            _cleanup(backend, manager)
        else:
            _stop_processes(ProcessBackend(config.run_dir / "procs"))
    return times


async def _bare_round(root: Path, n: int) -> float:
    procs: list[trio.Process] = []
    code = root / "bare_main.py"
    code.write_text(HEALTHY_APP)
    lo, hi = free_range(n)
    ports = list(range(lo, hi + 1))
    try:
        t0 = time.perf_counter()
        for i, port in enumerate(ports):
            data = root / f"bare-data-{i}"
            data.mkdir(exist_ok=True)
            env = {**os.environ, "HH_PORT": str(port), "HH_HOST": "127.0.0.1", "HH_DATA_DIR": str(data)}
            procs.append(await trio.lowlevel.open_process(
                [sys.executable, str(code)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL))
        with _stage(f"{n} apps spawned bare: not all healthy within 60 s"), trio.fail_after(60):
            await all_healthy(ports, procs=procs)
        return time.perf_counter() - t0
    finally:
        with trio.CancelScope(shield=True):
            for p in procs:
                p.kill()
                await p.wait()


async def bench(n: int, rounds: int, manager: Any = None) -> dict[str, Any]:
    root = REPO / "state" / "bench" / f"startup-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    os.chmod(root, 0o755)  # a unit's sandbox reads the app folders under it
    try:
        hh: list[float] = []
        bare: list[float] = []
        unit: list[float] = []
        await _bare_round(root, n)  # warm-up
        for _ in range(rounds):  # alternate: the machine is shared and noisy
            bare.append(await _bare_round(root, n))
            hh += await _homehelper_rounds(root / f"hh-{len(hh)}", n, 1, manager, unit if manager else None)
        hh_ms, bare_ms = statistics.median(hh) * 1000, statistics.median(bare) * 1000
        base_ms = statistics.median(unit) * 1000 if unit else bare_ms  # the target's baseline
        return {"backend": "systemd" if manager else "process", "apps": n, "rounds": rounds,
                "homehelper_ms": round(hh_ms, 1), "bare_ms": round(bare_ms, 1),
                "baseline": "the same units by systemctl" if unit else "bare spawn",
                "baseline_ms": round(base_ms, 1), "extra_ms": round(hh_ms - base_ms, 1),
                "ratio": round(hh_ms / base_ms, 2), "ratio_to_bare": round(hh_ms / bare_ms, 2),
                "homehelper_all_ms": [round(t * 1000, 1) for t in hh],
                "baseline_all_ms": [round(t * 1000, 1) for t in (unit or bare)]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _systemd() -> Iterator[Any]:
    """A private systemd user manager, with a real journald beside it where one can run (as on a Pi)."""
    from tests.fixtures.journal import JournalManager, _why_no_journald
    from tests.fixtures.systemd import UserManager, _why_not

    why = _why_not()
    if why is not None:
        raise NotAvailable(f"no systemd user manager: {why}")
    if _why_no_journald() is None:
        manager: Any = JournalManager(Path("/run") / f"hh-bench-startup-{os.getpid()}")
    else:
        manager = UserManager(Path("/run") / f"hh-bench-startup-{os.getpid()}")
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--apps", default=None, help="comma-separated app counts (default 1,20; full run 1,10,20,40)")
    p.add_argument("--backends", default="process,systemd", help="process, systemd or both (default both)")
    args = p.parse_args(argv)
    counts = [int(x) for x in (args.apps or ("1,20" if args.quick else "1,10,20,40")).split(",")]
    rounds = 3 if args.quick else 7
    print(f"startup: baseline: {BASELINE}")
    runs = []
    with contextlib.ExitStack() as stack:
        for backend in args.backends.split(","):
            manager = stack.enter_context(_systemd()) if backend == "systemd" else None
            if manager is not None:
                journald = "with" if hasattr(manager, "journal") else "without"
                print(f"startup: systemd: a private user manager, {journald} journald; baseline: HomeHelper's "
                      "unit files started by one systemctl --user start, /health polled every 5 ms")
            for n in (counts if backend == "process" else [c for c in counts if c in (1, 20)]):
                r = trio.run(bench, n, rounds, manager)
                runs.append(r)
                units = f"  same units {r['baseline_ms']:8.1f} ms" if backend == "systemd" else ""
                print(f"startup: {backend:>7} {n:>3} apps start to healthy: HomeHelper {r['homehelper_ms']:8.1f} ms  "
                      f"bare {r['bare_ms']:8.1f} ms{units}  extra {r['extra_ms']:7.1f} ms  ratio {r['ratio']:.2f}x "
                      f"(target <= {TARGET:g}x) {'PASS' if r['ratio'] <= TARGET else 'MISS'}  to bare "
                      f"{r['ratio_to_bare']:.2f}x  (median of {rounds}; HomeHelper {r['homehelper_all_ms']}, "
                      f"{r['baseline']} {r['baseline_all_ms']})")
    targets = [{"name": f"start to healthy, {r['apps']} app{'s' if r['apps'] > 1 else ''}, {r['backend']}, "
                        f"vs {r['baseline']}",
                "value": r["ratio"], "unit": "x", "target": f"<= {TARGET:g}", "pass": r["ratio"] <= TARGET, "issue": 17,
                "note": f"{r['homehelper_ms']} ms vs {r['baseline_ms']} ms (median of {rounds}); bare spawn "
                        f"{r['bare_ms']} ms ({r['ratio_to_bare']}x)"}
               for r in runs]
    process = [r for r in runs if r["backend"] == "process"]
    scaling = {"apps": [r["apps"] for r in process], "homehelper_ms": [r["homehelper_ms"] for r in process],
               "bare_ms": [r["bare_ms"] for r in process]}
    return {"baseline": BASELINE, "runs": runs, "scaling": scaling, "targets": targets}


if __name__ == "__main__":
    main()
