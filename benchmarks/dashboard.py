"""Dashboard benchmark: the websocket refresh round trip beside a bare websocket echo.

The real web app (auth gate, /ws, snapshots from the real registry, event log and sensor actor)
with 20 registered apps, served by Hypercorn on a real port in this process. Each client logs
in, opens /ws and a bare echo websocket on the same server, then alternates: one full refresh
("refresh all": apps, fresh system sample, events), one echo of a message the same size as the
request. Run with 1 and with 20 concurrent clients; p50 / p99 of each, and the ratio of p99s.
Target: p99 refresh <= 5x p99 echo.

    python benchmarks/dashboard.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness.stats import percentile  # noqa: E402
from homehelper.actors import Broadcast, ChildSpec, Supervisor  # noqa: E402
from homehelper.actors.app import AppActor, AppContext  # noqa: E402
from homehelper.actors.eventlog import EventLog  # noqa: E402
from homehelper.actors.ports import PortAllocator  # noqa: E402
from homehelper.actors.registry import Registry  # noqa: E402
from homehelper.actors.scanner import Scanner  # noqa: E402
from homehelper.actors.sensors import SensorActor  # noqa: E402
from homehelper.actors.ttl import TTLClock  # noqa: E402
from homehelper.config import Config  # noqa: E402
from homehelper.messages import ListApps  # noqa: E402
from homehelper.web import WebDeps, create_app  # noqa: E402
from homehelper.web.auth import Auth, auth_file  # noqa: E402
from homehelper.web.server import serve_app  # noqa: E402
from tests.web.wsclient import WSClient  # noqa: E402

APPS = 20
TARGET = 5.0  # p99 refresh / p99 echo
PASSWORD = "dashboard benchmark"


def make_apps(apps_dir: Path, n: int) -> None:
    for i in range(n):
        folder = apps_dir / f"bench-{i:02d}"
        folder.mkdir(parents=True)
        (folder / "homehelper.json").write_text(json.dumps(
            {"id": folder.name, "name": f"Bench app {i}", "type": "service", "description": "x" * 60}))
        (folder / "main.py").write_text("print('hi')\n")


async def build(nursery: trio.Nursery, root: Path) -> tuple[Any, str]:
    config = Config(root=root, apps_dir=root / "apps")
    make_apps(config.apps_dir, APPS)
    bus = Broadcast()
    sup = Supervisor("root", emit=bus.publish)
    await nursery.start(sup.run)
    apps = Supervisor("apps", emit=bus.publish)
    await nursery.start(apps.run)
    ranges = {"service": config.service_ports, "streamlit": config.streamlit_ports}
    ports = sup.start_child(ChildSpec("ports", lambda: PortAllocator(ranges, None)))
    ttl = sup.start_child(ChildSpec("ttl", TTLClock))
    events = sup.start_child(ChildSpec("eventlog", lambda: EventLog(bus, config.event_history)))
    ctx = AppContext(config=config, emit=bus.publish, ports=ports, ttl=ttl)
    registry = sup.start_child(ChildSpec("registry", lambda: Registry(apps, lambda m: AppActor(m, ctx), bus, None)))
    scanner = sup.start_child(ChildSpec("scanner", lambda: Scanner(config.apps_dir, registry, bus.publish)))
    sensors = sup.start_child(ChildSpec("sensors", lambda: SensorActor(config, bus.publish, bus)))
    auth = Auth(auth_file(root), config.auth.session_hours)
    auth.ensure_password({"HOMEHELPER_PASSWORD": PASSWORD})
    deps = WebDeps(config=config, bus=bus, registry=registry, apps=apps, scanner=scanner, sensors=sensors,
                   event_log=events, ttl=ttl, auth=auth)
    app = create_app(deps)

    @app.websocket("/bench-echo")  # the baseline: same server, same auth gate, no work
    async def echo() -> None:
        from quart import websocket

        await websocket.accept()
        while True:
            await websocket.send(await websocket.receive())

    with trio.fail_after(10):
        while len(await registry.ask(ListApps())) < APPS:  # noqa: ASYNC110 - the first scan
            await trio.sleep(0.01)
    urls = await nursery.start(serve_app, app, "127.0.0.1", 0, trio.Event())
    return app, urls[0]


async def client(url: str, rounds: int, refresh: list[float], echo: list[float], sizes: list[int],
                 fresh: list[int]) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(url + "/login", json={"password": PASSWORD})
        r.raise_for_status()
        cookie = f"hh_session={http.cookies['hh_session']}"
    headers = [("Origin", url), ("Cookie", cookie)]
    base = url.replace("http://", "ws://")
    async with await WSClient.connect(base + "/ws", headers) as ws, \
            await WSClient.connect(base + "/bench-echo", headers) as eco:
        for i in range(rounds):
            req = json.dumps({"type": "refresh", "id": i, "what": "all"})
            t = time.perf_counter()
            await ws.send(req)
            reply = await ws.recv()
            refresh.append(time.perf_counter() - t)
            sizes.append(len(reply))
            if json.loads(reply)["data"]["system"]["now"]["fresh"]:
                fresh.append(1)
            t = time.perf_counter()
            await eco.send(req)
            await eco.recv()
            echo.append(time.perf_counter() - t)


def _p(values: list[float], q: float) -> float:
    return round((percentile(values, q) or 0.0) * 1000, 3)


async def scenario(url: str, clients: int, rounds: int, blocks: int) -> dict[str, Any]:
    """`blocks` runs of `rounds` per client; the verdict is the median of the blocks' p99 ratios, so
    one burst of noise from a neighbour on this shared machine cannot decide it alone."""
    every: dict[str, list[float]] = {"refresh": [], "echo": []}
    ratios: list[float] = []
    sizes: list[int] = []
    fresh: list[int] = []
    for _ in range(blocks):
        refresh: list[float] = []
        echo: list[float] = []
        async with trio.open_nursery() as n:
            for _ in range(clients):
                n.start_soon(client, url, rounds, refresh, echo, sizes, fresh)
        ratios.append(_p(refresh, 99) / max(_p(echo, 99), 1e-6))
        every["refresh"] += refresh
        every["echo"] += echo
    ratio = sorted(ratios)[len(ratios) // 2]
    return {"clients": clients, "round_trips": len(every["refresh"]), "new_samples": len(fresh),
            "reply_bytes": max(sizes),
            "refresh_p50_ms": _p(every["refresh"], 50), "refresh_p99_ms": _p(every["refresh"], 99),
            "echo_p50_ms": _p(every["echo"], 50), "echo_p99_ms": _p(every["echo"], 99),
            "ratio_p99_overall": round(_p(every["refresh"], 99) / max(_p(every["echo"], 99), 1e-6), 2),
            "ratio_p99_blocks": [round(r, 2) for r in ratios],
            "ratio_p99": round(ratio, 2), "target": TARGET, "pass": ratio <= TARGET}


async def run(quick: bool) -> dict[str, Any]:
    root = REPO / "state" / "bench" / f"dashboard-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    try:
        async with trio.open_nursery() as n:
            _, url = await build(n, root)
            await scenario(url, 2, 10, 1)  # warm-up: imports, first samples, connection setup
            out = {"apps": APPS, "quick": quick, "scenarios": [
                await scenario(url, 1, 200 if quick else 600, 5),
                await scenario(url, 20, 10 if quick else 30, 5),
            ]}
            n.cancel_scope.cancel()
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer round trips (well under a minute)")
    args = ap.parse_args(argv)
    results = trio.run(run, args.quick)
    print(f"dashboard: websocket refresh round trip with {APPS} registered apps vs a bare echo, same server")
    print("  (a refresh shows system readings at most 1 s old: 'samples' = refreshes that took a new one;")
    print("   ratio p99 = median over 5 blocks of p99 refresh / p99 echo, measured alternately in the same run)")
    print(f"{'clients':>7} {'trips':>6} {'samples':>7} {'bytes':>7} {'refresh p50':>12} {'p99':>8} {'echo p50':>9}"
          f" {'p99':>8} {'ratio p99':>9}  target")
    for s in results["scenarios"]:
        print(f"{s['clients']:>7} {s['round_trips']:>6} {s['new_samples']:>7} {s['reply_bytes']:>7}"
              f" {s['refresh_p50_ms']:>10.2f}ms"
              f" {s['refresh_p99_ms']:>6.2f}ms {s['echo_p50_ms']:>7.2f}ms {s['echo_p99_ms']:>6.2f}ms"
              f" {s['ratio_p99']:>8}x  <= {TARGET:g}x {'PASS' if s['pass'] else 'MISS'}"
              f"   (blocks {s['ratio_p99_blocks']}, all trips {s['ratio_p99_overall']}x)")
    results["pass"] = all(s["pass"] for s in results["scenarios"])
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
