"""Refresh while apps start: the dashboard's refresh p99 with 20 clients while HomeHelper starts 20
service apps, beside the same while the same 20 app files are started bare by a launcher of
their own, in alternating rounds of the same run (issue 17.4).

The server is serve's tree and web app on a real port (benchmarks/dashboard.py `build`), on the
process backend. 20 clients, in processes of their own, click refresh back to back (naming the
digests they have, as the dashboard does) through the whole run, recording when each refresh was
sent. Each round has two windows, measured from the first start until the last app answers
/health: **HomeHelper** (StartApp asked of all 20 app actors at once, as 20 clicks would; healthy
by HomeHelper's own checks) and **bare** (a separate launcher process spawns the same file 20 times
with the same environment, in sessions of their own at the same nice value as HomeHelper's apps,
`app_nice`, and polls /health on HomeHelper's schedule, from 5 ms with each pause a fifth longer,
with a bare HTTP/1.0 GET; the window is the launcher's own, from its first spawn, so its
interpreter's start-up is not in it). Both put the same 20 interpreters on the machine's 2 cores; what
differs is the work HomeHelper's start path puts on the server's one thread: actor messages,
ports, spawns, state files (written from worker threads, never fsync-ed on the event loop), the
log stamper, health checks. A quiet window, with nothing starting, is
printed for scale.

Target: the median over rounds of p99(HomeHelper window) / p99(bare window) <= 1.5x.

    python benchmarks/starting.py [--quick]
"""

from __future__ import annotations

import argparse
import json
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import dashboard  # noqa: E402
from benchmarks.harness.apps import StartAll, all_healthy  # noqa: E402
from benchmarks.harness.procs import free_range  # noqa: E402
from benchmarks.harness.stats import percentile  # noqa: E402
from homehelper.actors.service import ServiceApp  # noqa: E402
from homehelper.actors.service_health import startup_probes  # noqa: E402
from homehelper.backends.proctree import lower_priority  # noqa: E402
from tests.backends.apps import HEALTHY_APP, write_app  # noqa: E402
from tests.web.wsclient import WSClient  # noqa: E402

APPS = 20
CLIENTS = 20
TARGET = 1.5
BOOT = 3.0  # seconds the client processes get to start and connect before the first window
BASELINE = ("the same 20 app files spawned by a launcher process of their own (same environment and nice value, "
            "/health polled as HomeHelper polls, from 5 ms, by a bare HTTP/1.0 GET; timed from its first spawn), "
            "while the same 20 clients refresh: the machine's load of 20 starting apps without HomeHelper's start "
            "path on the server's thread")


async def _reply(ws: WSClient) -> str:
    """The next message that is not the server's keep-alive ping (sent to a socket quiet for a while)."""
    while (message := await ws.recv()) == '{"type":"ping"}':
        pass
    return message


async def _clicker(url: str, cookie: str, begin: float, stop: trio.Event, out: list[tuple[float, float]]) -> None:
    headers = [("Origin", url), ("Cookie", cookie)]
    async with await WSClient.connect(url.replace("http://", "ws://") + "/ws", headers) as ws:
        await ws.send(json.dumps({"type": "refresh", "id": "open", "what": "all", "have": {}}))
        have = dashboard.digests(await _reply(ws))
        await trio.sleep(max(0.0, begin - time.time()))
        i = 0
        while not stop.is_set():
            sent = time.time()
            t = time.perf_counter()
            await ws.send(json.dumps({"type": "refresh", "id": i, "what": "all", "have": have}))
            reply = await _reply(ws)
            out.append((sent, time.perf_counter() - t))
            have = dashboard.digests(reply)
            i += 1


async def _clients_child(job: dict[str, Any]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    stop = trio.Event()  # set when the parent closes our stdin: the rounds are over

    async def watch() -> None:
        async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
            while await stdin.receive_some():
                pass
        stop.set()

    async with trio.open_nursery() as n:
        n.start_soon(watch)
        for cookie in job["cookies"]:
            n.start_soon(_clicker, job["url"], cookie, job["begin"], stop, out)
    return out


async def _launch_bare(job: dict[str, Any]) -> tuple[float, float]:
    """The baseline's launcher (a process of its own): spawn, poll /health as HomeHelper does, kill.
    Its window (wall-clock times, as the clients' samples) runs from its first spawn until every
    app answers: its own start-up (an interpreter importing trio) is not in it."""
    procs = []
    t0 = time.time()
    try:
        for i, port in enumerate(job["ports"]):
            env = {**os.environ, "HH_PORT": str(port), "HH_HOST": "127.0.0.1", "HH_DATA_DIR": f"{job['data']}-{i}"}
            os.makedirs(env["HH_DATA_DIR"], exist_ok=True)
            procs.append(await trio.lowlevel.open_process(
                [sys.executable, job["code"]], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))  # a session each, as HomeHelper starts them
            lower_priority(procs[-1].pid, job["nice"])  # and at the priority HomeHelper gives them
        with trio.fail_after(60):  # checked as HomeHelper checks: from 5 ms, each pause a fifth longer
            await all_healthy(job["ports"], lambda: startup_probes(ServiceApp.first_probe_every), procs)
        return t0, time.time()
    finally:
        for p in procs:
            p.kill()
            await p.wait()


def _p99(values: list[float]) -> float:
    return round((percentile(values, 99) or 0.0) * 1000, 2)


async def run(quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 5
    root = REPO / "state" / "bench" / f"starting-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    ids = [f"svc-{i:02d}" for i in range(APPS)]
    code = root / "bare_main.py"
    code.write_text(HEALTHY_APP)
    windows: list[tuple[str, float, float]] = []
    try:
        async with trio.open_nursery() as nursery:
            app, url = await dashboard.build(nursery, root, lambda apps_dir: [
                write_app(apps_dir, a, HEALTHY_APP) for a in ids])
            deps = app.extensions["homehelper"]
            every = StartAll(deps.broadcast, deps.apps, ids)  # as 20 clicks would, to the app actors

            async def homehelper_window() -> None:
                t0 = time.time()
                with trio.fail_after(120):
                    await every.start()
                windows.append(("homehelper", t0, time.time()))
                await every.stop()

            async def bare_window() -> None:
                lo, hi = free_range(APPS)
                job = {"ports": list(range(lo, hi + 1)), "code": str(code), "data": str(root / "bare"),
                       "nice": deps.config.app_nice}
                proc = await trio.run_process([sys.executable, __file__, "--bare-child", json.dumps(job)],
                                              capture_stdout=True, cwd=REPO)
                t0, t1 = json.loads(proc.stdout)
                windows.append(("bare", t0, t1))

            await homehelper_window()  # warm-up: files cached, the stamper running
            await bare_window()
            cookies = await dashboard.sessions(url, CLIENTS)
            per = 4  # processes, as the dashboard benchmark's clients
            begin = time.time() + BOOT
            stop_read, stop_write = os.pipe()  # closing the write end stops the clients
            samples: list[tuple[float, float]] = []

            async def clients(k: int) -> None:
                job = {"url": url, "cookies": cookies[k::per], "begin": begin}
                proc = await trio.run_process([sys.executable, __file__, "--clients-child", json.dumps(job)],
                                              stdin=stop_read, capture_stdout=True, cwd=REPO)
                samples.extend(tuple(x) for x in json.loads(proc.stdout))

            async with trio.open_nursery() as fleet:
                for k in range(per):
                    fleet.start_soon(clients, k)
                await trio.sleep(max(0.0, begin - time.time()) + 0.3)
                for _ in range(rounds):
                    t0 = time.time()
                    await trio.sleep(0.6)
                    windows.append(("quiet", t0, time.time()))
                    await bare_window()
                    await trio.sleep(0.3)
                    await homehelper_window()
                    await trio.sleep(0.3)
                os.close(stop_write)
            os.close(stop_read)
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return _summary(windows[2:], samples, rounds)


def _summary(windows: list[tuple[str, float, float]], samples: list[tuple[float, float]],
             rounds: int) -> dict[str, Any]:
    def within(t0: float, t1: float) -> list[float]:
        return [d for sent, d in samples if t0 <= sent < t1]

    per_round: list[dict[str, Any]] = []
    kinds = [w[0] for w in windows]
    for r in range(rounds):
        quiet, bare, hh = windows[3 * r: 3 * r + 3]
        b, h, q = within(*bare[1:]), within(*hh[1:]), within(*quiet[1:])
        per_round.append({"bare_ms": round((bare[2] - bare[1]) * 1000), "homehelper_ms": round((hh[2] - hh[1]) * 1000),
                          "quiet_p99": _p99(q), "bare_p99": _p99(b), "homehelper_p99": _p99(h),
                          "bare_n": len(b), "homehelper_n": len(h), "ratio": round(_p99(h) / max(_p99(b), 1e-6), 2)})
    ratio = statistics.median(r["ratio"] for r in per_round)
    assert kinds == ["quiet", "bare", "homehelper"] * rounds, kinds
    return {"apps": APPS, "clients": CLIENTS, "rounds": per_round, "ratio": ratio, "baseline": BASELINE,
            "targets": [{"name": f"refresh p99 while {APPS} apps start, {CLIENTS} clients, vs while they start bare",
                         "value": ratio, "unit": "x", "issue": 17, "target": f"<= {TARGET:g}", "pass": ratio <= TARGET,
                         "note": "; ".join(f"{r['homehelper_p99']} ms vs {r['bare_p99']} ms (quiet {r['quiet_p99']} ms)"
                                           for r in per_round)}]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds, not 5")
    ap.add_argument("--clients-child", help=argparse.SUPPRESS)
    ap.add_argument("--bare-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.clients_child:
        print(json.dumps(trio.run(_clients_child, json.loads(args.clients_child))))
        return {}
    if args.bare_child:
        print(json.dumps(trio.run(_launch_bare, json.loads(args.bare_child))))
        return {}
    result = trio.run(run, args.quick)
    print(f"starting: refresh p99 with {CLIENTS} clients while {APPS} service apps start (process backend)")
    print(f"starting: baseline: {BASELINE}")
    print(f"{'round':>5} {'bare start':>10} {'HH start':>9} {'quiet p99':>10} {'bare p99':>9} {'HH p99':>8}"
          f" {'n bare':>7} {'n HH':>6} {'ratio':>6}")
    for i, r in enumerate(result["rounds"]):
        print(f"{i:>5} {r['bare_ms']:>8}ms {r['homehelper_ms']:>7}ms {r['quiet_p99']:>8}ms {r['bare_p99']:>7}ms"
              f" {r['homehelper_p99']:>6}ms {r['bare_n']:>7} {r['homehelper_n']:>6} {r['ratio']:>5}x")
    t = result["targets"][0]
    print(f"starting: {'PASS' if t['pass'] else 'MISS'} median ratio {result['ratio']}x (target {t['target']}x)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
