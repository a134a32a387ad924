"""Start and stop 20 service apps through HomeHelper (serve's actor tree, one ServiceApp actor each,
asked together), beside `systemctl --user start`/`stop` of the same 20 units in
one call, in the same run.

    python benchmarks/services.py [--quick] [--apps N]

Start is timed until every start job is done (the ask answered, or systemctl returned); stop is
timed on settled apps (all answering /health), on both sides.
Target: HomeHelper's time <= 1.5x systemctl's, for start and for stop. Uses the
user manager of this session when `systemctl --user` answers (a Pi), else starts
a private one (as root, the tests' recipe); without either it is not available.
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

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import NotAvailable
from homehelper.actors import Broadcast
from homehelper.backends import SystemdBackend, netwall
from homehelper.backends.httpprobe import probe
from homehelper.messages import GetApp, ScanApplied, StartApp, StopApp
from homehelper.serve import Overrides, build_tree
from tests.backends.apps import HEALTHY_APP, make_config, write_app

REPO = Path(__file__).resolve().parents[1]
BASELINE = ("one `systemctl --user start` (or stop) of the same units in one call, timed until it returns (a stop "
            "names each app's port socket and proxy too, as HomeHelper's stop does, so the port is free after); "
            "HomeHelper's side asks all its app actors at once")
TARGET = 1.5


def _manager() -> tuple[dict[str, str], Any]:
    """(environment for systemctl --user, a private manager to stop afterwards or None)."""
    env = dict(os.environ)
    probe = subprocess.run(["systemctl", "--user", "is-system-running"], env=env, capture_output=True, text=True,
                           timeout=10, check=False) if shutil.which("systemctl") else None
    if probe is not None and probe.stdout.strip() in ("running", "degraded"):
        return env, None
    from tests.fixtures.systemd import UserManager, _why_not

    why = _why_not()
    if why is not None:
        raise NotAvailable(f"no systemd user manager: {why}")
    manager = UserManager(Path("/run") / f"hh-bench-systemd-{os.getpid()}")
    manager.start()
    return manager.env, manager


async def _bench(n: int, rounds: int, env: dict[str, str], root: Path) -> dict[str, list[float]]:
    config = make_config(root)
    backend = SystemdBackend("user", environ=env, prefix=f"hh-bench{uuid.uuid4().hex[:4]}-")
    manifests = [write_app(config.apps_dir, f"app{i:02d}", HEALTHY_APP) for i in range(n)]
    units = [backend.unit(m.id) for m in manifests]
    times: dict[str, list[float]] = {"hh_start": [], "hh_stop": [], "ctl_start": [], "ctl_stop": []}
    broadcast = Broadcast()
    scanned = broadcast.subscribe(4, accept=lambda e: isinstance(e, ScanApplied))
    try:
        async with trio.open_nursery() as nursery:
            # serve's tree on this backend; its registry makes one ServiceApp actor per app folder
            rt = await build_tree(config, nursery, Overrides(backend=backend, broadcast=broadcast))
            await scanned.receive()
            refs = [rt.apps.ref(m.id) for m in manifests]

            async def all_ask(make: Any) -> float:
                t0 = time.perf_counter()
                async with trio.open_nursery() as n2:
                    for m, ref in zip(manifests, refs, strict=True):
                        n2.start_soon(ref.ask, make(m.id), 120)
                return time.perf_counter() - t0

            app_ports: list[int] = []  # each app's port, from its actor after the first start

            async def settled() -> None:
                """Every app answers /health: stop is measured on running apps, not ones still booting."""
                if not app_ports:
                    app_ports.extend([(await r.ask(GetApp(r.name)))["port"] for r in refs])
                for port in app_ports:
                    with trio.fail_after(30):
                        while True:
                            ok, _ = await probe(port, "/health", 1.0)
                            if ok:
                                break
                            await trio.sleep(0.05)

            async def ctl(verb: str) -> float:
                names = units if verb == "start" else [*units, *companions]  # a start pulls the socket in
                t0 = time.perf_counter()
                proc = await trio.run_process(["systemctl", "--user", verb, *names], env=env, capture_stdout=True,
                                              capture_stderr=True, check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"systemctl {verb} failed: {proc.stderr.decode()[-1000:]}")
                return time.perf_counter() - t0

            # Warm-up (not measured): venvs, unit files and one daemon-reload, as after a first install.
            await all_ask(StartApp)
            await settled()
            await all_ask(StopApp)
            async def hh_round() -> None:
                times["hh_start"].append(await all_ask(StartApp))
                await settled()
                times["hh_stop"].append(await all_ask(StopApp))

            async def ctl_round() -> None:
                times["ctl_start"].append(await ctl("start"))
                await settled()
                times["ctl_stop"].append(await ctl("stop"))

            # each app's port socket and proxy (their unit files exist once the warm-up prepared the apps)
            proxied = [m.id for m in manifests
                       if (backend.unit_dir / netwall.socket_unit(m.id, backend.prefix)).exists()]
            companions = [u for app_id in proxied for u in netwall.companions(app_id, backend.prefix)]
            for i in range(rounds):  # interleaved, each side first in turn: drift hits both alike
                for side in ((hh_round, ctl_round) if i % 2 == 0 else (ctl_round, hh_round)):
                    await side()
            states = {(await r.ask(GetApp(r.name)))["state"] for r in refs}
            assert states == {"stopped"}, states
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.run_process(["systemctl", "--user", "stop", *units], env=env, check=False)
            for u in units:
                (backend.unit_dir / u).unlink(missing_ok=True)
            await trio.run_process(["systemctl", "--user", "daemon-reload"], env=env, check=False)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--apps", type=int, default=20)
    args = p.parse_args(argv)
    rounds = 5 if args.quick else 11
    env, manager = _manager()
    root = REPO / "state" / f"bench-services-{uuid.uuid4().hex[:8]}"  # not /tmp: units use PrivateTmp
    root.mkdir(parents=True)
    try:
        times = trio.run(_bench, args.apps, rounds, env, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if manager is not None:
            manager.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {"apps": args.apps, "rounds": rounds}
    for verb in ("start", "stop"):
        ratio = med[f"hh_{verb}"] / med[f"ctl_{verb}"]
        result[f"homehelper_{verb}_s"] = round(med[f"hh_{verb}"], 4)
        result[f"systemctl_{verb}_s"] = round(med[f"ctl_{verb}"], 4)
        result[f"{verb}_ratio"] = round(ratio, 3)
        print(f"services: {verb} {args.apps} apps: HomeHelper {med[f'hh_{verb}'] * 1000:7.1f} ms  "
              f"systemctl {med[f'ctl_{verb}'] * 1000:7.1f} ms  ratio {ratio:.2f}x "
              f"(target <= {TARGET}) {'PASS' if ratio <= TARGET else 'MISS'}")
    result["baseline"] = BASELINE
    print(f"services: baseline: {BASELINE}")
    result["targets"] = [
        {"name": f"services {verb} of {args.apps} apps vs systemctl", "value": result[f"{verb}_ratio"], "unit": "x",
         "target": f"<= {TARGET}", "pass": result[f"{verb}_ratio"] <= TARGET,
         "note": f"{result[f'homehelper_{verb}_s']} s vs {result[f'systemctl_{verb}_s']} s"}
        for verb in ("start", "stop")]
    return result


if __name__ == "__main__":
    main()
