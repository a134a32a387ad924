"""Start to healthy: N small HTTP service apps started through HomeHelper (the process backend,
the real tree of `homehelper serve` without the web server) until each reports healthy, beside
the same apps started bare (the same Python file, spawned directly, /health polled every 5 ms),
in interleaved rounds of the same run. Run for 1 and 20 apps (--apps 1,10,40 for scaling).

    python benchmarks/startup.py [--quick] [--apps 1,20]

HomeHelper's time runs from the StartApp asks (all apps at once) to the last AppHealthChanged
(healthy) event; the bare time from the first spawn to the last 200 from /health.
Target (issue 17.1): the median within 1.5x of bare, for 1 and 20 apps at once; the extra
milliseconds per start say what the supervision costs (backends/base.py probe_delays).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homehelper.actors import Broadcast  # noqa: E402
from homehelper.backends import ProcessBackend  # noqa: E402
from homehelper.messages import AppHealthChanged, GetApp, ScanApplied, StartApp, StopApp  # noqa: E402
from homehelper.serve import Overrides, build_tree  # noqa: E402
from tests.backends.apps import HEALTHY_APP, make_config, write_app  # noqa: E402
from tests.fixtures.systemd import _stop_processes  # noqa: E402

BASELINE = ("the same app file spawned directly with the same environment (python main.py), its /health "
            "polled every 5 ms until it answers 200; all N spawned at once")
POLL = 0.005
TARGET = 1.5


async def _homehelper_rounds(root: Path, n: int, rounds: int) -> list[float]:
    config = attrs.evolve(make_config(root, backend="process"), port=0)
    ids = [f"svc-{i:02d}" for i in range(n)]
    for app_id in ids:
        write_app(config.apps_dir, app_id, HEALTHY_APP)
    times: list[float] = []
    try:
        async with trio.open_nursery() as nursery:
            broadcast = Broadcast()
            scanned = broadcast.subscribe(4, accept=lambda e: isinstance(e, ScanApplied))
            rt = await build_tree(config, nursery, Overrides(broadcast=broadcast))
            healthy: set[str] = set()
            changed = trio.Event()

            def seen(ev: Any) -> bool:
                nonlocal changed
                if isinstance(ev, AppHealthChanged) and ev.healthy:
                    healthy.add(ev.app_id)
                    changed.set()
                return False

            rt.broadcast.subscribe(1, accept=seen)
            with trio.fail_after(30):
                await scanned.receive()  # the first scan applied: every app has its actor

            async def start_all() -> float:
                nonlocal changed
                healthy.clear()
                t0 = time.perf_counter()
                async with trio.open_nursery() as asks:
                    for app_id in ids:
                        asks.start_soon(lambda a=app_id: rt.apps.ref(a).ask(StartApp(a), timeout=300))
                with trio.fail_after(120):
                    while len(healthy) < n:
                        changed = trio.Event()
                        await changed.wait()
                return time.perf_counter() - t0

            async def stop_all() -> None:
                async with trio.open_nursery() as asks:
                    for app_id in ids:
                        asks.start_soon(lambda a=app_id: rt.apps.ref(a).ask(StopApp(a), timeout=60))
                for app_id in ids:
                    assert (await rt.apps.ref(app_id).ask(GetApp(app_id)))["state"] == "stopped"

            await start_all()  # warm-up: venvs made, files cached
            await stop_all()
            for _ in range(rounds):
                times.append(await start_all())
                await stop_all()
            nursery.cancel_scope.cancel()
    finally:
        _stop_processes(ProcessBackend(config.run_dir / "procs"))
    return times


async def _bare_round(root: Path, n: int, base_port: int) -> float:
    procs: list[trio.Process] = []
    code = root / "bare_main.py"
    code.write_text(HEALTHY_APP)
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            t0 = time.perf_counter()
            for i in range(n):
                data = root / f"bare-data-{i}"
                data.mkdir(exist_ok=True)
                env = {**os.environ, "HH_PORT": str(base_port + i), "HH_HOST": "127.0.0.1", "HH_DATA_DIR": str(data)}
                procs.append(await trio.lowlevel.open_process(
                    [sys.executable, str(code)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL))

            async def healthy(i: int) -> None:
                while True:
                    try:
                        if (await http.get(f"http://127.0.0.1:{base_port + i}/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await trio.sleep(POLL)

            with trio.fail_after(60):
                async with trio.open_nursery() as polls:
                    for i in range(n):
                        polls.start_soon(healthy, i)
            return time.perf_counter() - t0
    finally:
        with trio.CancelScope(shield=True):
            for p in procs:
                p.kill()
                await p.wait()


async def bench(n: int, rounds: int) -> dict[str, Any]:
    root = REPO / "state" / "bench" / f"startup-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    try:
        hh: list[float] = []
        bare: list[float] = []
        base_port = 30000 + (os.getpid() % 200) * 100
        await _bare_round(root, n, base_port)  # warm-up
        for _ in range(rounds):  # alternate: the machine is shared and noisy
            bare.append(await _bare_round(root, n, base_port))
            hh += await _homehelper_rounds(root / f"hh-{len(hh)}", n, 1)
        hh_ms, bare_ms = statistics.median(hh) * 1000, statistics.median(bare) * 1000
        return {"apps": n, "rounds": rounds, "homehelper_ms": round(hh_ms, 1), "bare_ms": round(bare_ms, 1),
                "extra_ms": round(hh_ms - bare_ms, 1), "ratio": round(hh_ms / bare_ms, 2),
                "homehelper_all_ms": [round(t * 1000, 1) for t in hh],
                "bare_all_ms": [round(t * 1000, 1) for t in bare]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--apps", default=None, help="comma-separated app counts (default 1,20; full run 1,10,20,40)")
    args = p.parse_args(argv)
    counts = [int(x) for x in (args.apps or ("1,20" if args.quick else "1,10,20,40")).split(",")]
    rounds = 3 if args.quick else 7
    print(f"startup: baseline: {BASELINE}")
    runs = []
    for n in counts:
        r = trio.run(bench, n, rounds)
        runs.append(r)
        print(f"startup: {n:>3} apps start to healthy: HomeHelper {r['homehelper_ms']:8.1f} ms  bare "
              f"{r['bare_ms']:8.1f} ms  extra {r['extra_ms']:7.1f} ms  ratio {r['ratio']:.2f}x (target <= {TARGET:g}x) "
              f"{'PASS' if r['ratio'] <= TARGET else 'MISS'}  "
              f"(median of {rounds}; HomeHelper {r['homehelper_all_ms']}, bare {r['bare_all_ms']})")
    targets = [{"name": f"start to healthy, {r['apps']} app{'s' if r['apps'] > 1 else ''}, vs bare",
                "value": r["ratio"], "unit": "x", "target": f"<= {TARGET:g}", "pass": r["ratio"] <= TARGET, "issue": 17,
                "note": f"{r['homehelper_ms']} ms vs {r['bare_ms']} ms (median of {rounds})"} for r in runs]
    scaling = {"apps": [r["apps"] for r in runs], "homehelper_ms": [r["homehelper_ms"] for r in runs],
               "bare_ms": [r["bare_ms"] for r in runs]}
    return {"baseline": BASELINE, "runs": runs, "scaling": scaling, "targets": targets}


if __name__ == "__main__":
    main()
