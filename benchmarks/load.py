"""The Pi load scenario: a real `homehelper serve` with N synthetic service apps (each serving
/health and publishing to Redis), 2 Streamlit apps opened and left to idle-expire, dashboard
websocket clients clicking refresh and a Redis message storm; then an idle window. Repeated at
several app counts (scaling), plus discovery time for 10, 100, 1000 app folders beside a bare
os.scandir + json.load of the same folders.

    python benchmarks/load.py [--quick] [--profile pi5] [--apps 1,5,10,20,40] [--only load|discovery]

Targets (printed as PASS / MISS; misses are findings): idle CPU with 20 apps < 1 % of one core;
HomeHelper RSS < 80 MB; refresh p99 < 50 ms with 20 clients (under --profile pi5); zero lost
bus messages below the measured capacity; idle disk writes < 100 KB/min.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import NotAvailable, Progress, summary
from benchmarks.harness import profile as pi_profile
from benchmarks.harness.busload import Storm, StreamReader, stream_added
from benchmarks.harness.clients import ClickStats, click_refresh, snapshot
from benchmarks.harness.discovery import discovery
from benchmarks.harness.loadfigures import COLUMNS, print_report, scaling, table_rows, targets
from benchmarks.harness.machine import board_model
from benchmarks.harness.procs import RedisProc, Sampler, ServeProc, free_port, free_range, kill_leftovers
from benchmarks.harness.synth import generate_apps

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "state" / "bench"
NODE = "main"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer app counts, shorter windows")
    p.add_argument("--profile", choices=pi_profile.PROFILES, default="none", help="pi5: CPU quota + memory cap")
    p.add_argument("--apps", help="comma-separated service app counts (default 1,5,10,20,40; quick 5,20)")
    p.add_argument("--only", choices=("all", "load", "discovery"), default="all")
    p.add_argument("--clients", type=int, default=20, help="dashboard websocket clients")
    p.add_argument("--click-interval", type=float, default=0.5, help="seconds between one client's refreshes")
    p.add_argument("--refresh-what", default="all", help="what a refresh asks for (the dashboard button: all)")
    p.add_argument("--app-rate", type=float, default=1.0, help="messages/s each service app publishes")
    p.add_argument("--storm-rate", type=float, default=500.0, help="storm messages/s during the load window")
    p.add_argument("--health-interval", type=float, default=10.0, help="seconds between HomeHelper's health polls "
                   "of each app (manifest health.interval; its default is 30)")
    p.add_argument("--streamlit", type=int, default=2, help="Streamlit apps opened and left to expire")
    p.add_argument("--load-seconds", type=float, help="load window (default 30; quick 10)")
    p.add_argument("--idle-seconds", type=float, help="idle window (default 30; quick 10)")
    p.add_argument("--burst-seconds", type=float, help="capacity burst (default 4; quick 2)")
    p.add_argument("--backend", choices=("process", "auto", "systemd"), default="process",
                   help="how HomeHelper runs the service apps (process: no systemd needed)")
    p.add_argument("--pi-core-factor", type=float, default=pi_profile.PI5_CORE_FACTOR,
                   help="pi5 profile: one Pi 5 core as a fraction of one host core")
    args = p.parse_args(argv)
    args.scales = [int(x) for x in (args.apps or ("5,20" if args.quick else "1,5,10,20,40")).split(",") if x]
    args.load_seconds = args.load_seconds or (10.0 if args.quick else 30.0)
    args.idle_seconds = args.idle_seconds or (10.0 if args.quick else 30.0)
    args.burst_seconds = args.burst_seconds or (2.0 if args.quick else 4.0)
    return args


# --- one app count ------------------------------------------------------------------------------
def api_apps(url: str) -> list[dict[str, Any]] | None:
    try:
        r = httpx.get(f"{url}/api/apps", timeout=10)
        data = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if isinstance(data, dict):
        data = data.get("apps")
    return data if isinstance(data, list) else None


def wait_healthy(url: str, services: list[str], timeout: float) -> dict[str, Any]:
    """Until every service app runs and answers its health check; gives up early when none ever starts."""
    t0 = time.monotonic()
    moved = False
    states: dict[str, Any] = {}
    while time.monotonic() - t0 < timeout:
        apps = api_apps(url) or []
        states = {a["id"]: a for a in apps if a.get("id") in services}
        healthy = [a for a in states.values() if a.get("state") == "running" and a.get("healthy") is True]
        moved = moved or any(a.get("state") not in (None, "stopped") for a in states.values())
        if services and len(healthy) == len(services):
            return {"seconds": round(time.monotonic() - t0, 2), "healthy": len(healthy), "of": len(services)}
        if not services or (not moved and time.monotonic() - t0 > 15):
            break
        time.sleep(0.5)
    healthy_n = sum(1 for a in states.values() if a.get("state") == "running" and a.get("healthy") is True)
    note = None if moved else "service apps never left 'stopped' (is the service part wired into serve.py?)"
    return {"seconds": None, "healthy": healthy_n, "of": len(services), "note": note,
            "states": sorted({str(a.get("state")) for a in states.values()})}


async def load_window(url: str, args: argparse.Namespace, ui_apps: list[str], services: list[str],
                      healthy_at_start: set[str]) -> dict[str, Any]:
    """Clients clicking refresh, Streamlit apps opened, the app list polled for health misses."""
    stats = ClickStats()
    opens: dict[str, Any] = {}
    health: dict[str, Any] = {"samples": 0, "misses": 0, "apps_missed": set()}
    expired: dict[str, float] = {}  # Streamlit app -> seconds from its open to the first sample showing it stopped

    async def open_ui(app_id: str) -> None:
        t0 = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=120) as c:
                r = await c.post(f"{url}/api/apps/{app_id}/open")
            ok = r.status_code == 200
            opens[app_id] = {"ok": ok, "ms": round((time.perf_counter() - t0) * 1000), "status": r.status_code,
                             "opened_at": time.monotonic(), "error": None if ok else r.text[:200]}
        except httpx.HTTPError as exc:
            opens[app_id] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    async def poll_health(deadline: float) -> None:
        async with httpx.AsyncClient(timeout=10) as c:
            while trio.current_time() < deadline:
                await trio.sleep(2.0)
                try:
                    apps = (await c.get(f"{url}/api/apps")).json()
                except (httpx.HTTPError, ValueError):
                    continue
                health["samples"] += 1
                for a in apps if isinstance(apps, list) else []:
                    if a.get("id") in healthy_at_start and not (a.get("state") == "running" and a.get("healthy")):
                        health["misses"] += 1
                        health["apps_missed"].add(a["id"])
                    _note_expiry(a, opens, expired)

    async with trio.open_nursery() as n:
        for app_id in ui_apps:
            n.start_soon(open_ui, app_id)
        n.start_soon(poll_health, trio.current_time() + args.load_seconds)
        for _ in range(args.clients):
            n.start_soon(click_refresh, url, stats, args.load_seconds, args.click_interval, args.refresh_what)
    health["apps_missed"] = sorted(health["apps_missed"])
    return {"stats": stats, "opens": opens, "health": health, "expired": expired}


def _note_expiry(app: dict[str, Any], opens: dict[str, Any], expired: dict[str, float]) -> None:
    opened = opens.get(str(app.get("id")), {})
    if opened.get("ok") and app["id"] not in expired and app.get("state") == "stopped":
        expired[app["id"]] = round(time.monotonic() - opened["opened_at"], 1)


def wait_expired(url: str, opens: dict[str, Any], expired: dict[str, float], timeout: float) -> dict[str, Any]:
    """After the load: wait for the opened Streamlit apps to stop on their own (idle TTL).

    The app list is sampled every 2 s during the load and every 1 s here, so each time is an upper
    bound, within that step, of when the app stopped."""
    opened = [a for a, o in opens.items() if o.get("ok")]
    if not opened:
        return {"opened": 0}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and len(expired) < len(opened):
        for a in api_apps(url) or []:
            _note_expiry(a, opens, expired)
        if len(expired) < len(opened):
            time.sleep(1.0)
    return {"opened": len(opened), "expired": len(expired), "seconds_after_open": dict(sorted(expired.items()))}


def bridge_phase(redis_url: str, reader: StreamReader, seconds: float) -> dict[str, Any]:
    """Probe that messages go through the bridge, then a burst as fast as one publisher can: capacity."""
    deadline = time.monotonic() + 5.0  # the bridge may still be connecting
    while True:
        probe = Storm(redis_url, NODE, "probe", None, 0.001, batch=1)
        probe.run()
        if probe.receivers or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    got = reader.wait_for("probe", 1, timeout=8.0, settle=8.0) if probe.receivers else 0
    if not got:
        why = "nobody subscribes" if probe.receivers == 0 else "nothing came back on the history stream"
        return {"available": False, "note": f"bridge: {why} (is the Redis bridge wired into serve.py?)"}
    burst = Storm(redis_url, NODE, "burst", None, seconds)
    burst.run()
    arrived = reader.wait_for("burst", burst.sent, timeout=30.0, settle=2.0)
    times = reader.arrivals["burst"]
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    span = max(span, burst.elapsed)
    return {"available": True, "burst_sent": burst.sent, "burst_arrived": arrived, "burst_lost": burst.sent - arrived,
            "offered_per_s": round(burst.sent / burst.elapsed) if burst.elapsed else None,
            "capacity_per_s": round(arrived / span) if span else None,
            "burst_latency_ms": summary(reader.latency["burst"], 1000)}


def run_scale(n: int, args: argparse.Namespace, redis_proc: RedisProc | None, progress: Progress) -> dict[str, Any]:
    apps_dir = STATE / "apps-load"
    services, ui_apps = generate_apps(apps_dir, n, args.streamlit, args.app_rate, args.health_interval)
    if redis_proc is not None:
        import redis

        redis.Redis.from_url(redis_proc.url).flushall()
    port = free_port()
    svc_lo, svc_hi = free_range(max(100, n * 2))
    ui_lo, ui_hi = free_range(50)
    # Only our settings: a HOMEHELPER_* left in the shell must not change what is measured. Without
    # HOMEHELPER_PASSWORD the first start prints a generated password to our pipe; nobody logs in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEHELPER_")}
    env.update(HOMEHELPER_AUTH__LOOPBACK_WITHOUT_LOGIN="true", HOMEHELPER_SERVICE_PORTS=f"{svc_lo}-{svc_hi}",
               HOMEHELPER_STREAMLIT_PORTS=f"{ui_lo}-{ui_hi}")
    if redis_proc is not None:
        env["HOMEHELPER_REDIS_URL"] = redis_proc.url
    constraint = pi_profile.plan(args.profile, board=board_model(), core_factor=args.pi_core_factor,
                                 host_memory_mb=_host_memory_mb())
    argv = constraint.wrap([sys.executable, "-m", "homehelper", "--root", str(STATE / "root"), "serve",
                            "--apps-dir", str(apps_dir), "--port", str(port), "--backend", args.backend])
    serve = ServeProc(argv, env, port, REPO)
    run: dict[str, Any] = {"apps": n, "streamlit_apps": len(ui_apps), "clients": args.clients}
    reader: StreamReader | None = None
    sampler: Sampler | None = None
    try:
        progress.note(f"{n} apps: starting homehelper serve")
        run["serve_ready_s"] = round(serve.start(), 2)
        sampler = Sampler(serve.pid, interval=0.5)
        sampler.start()
        progress.note(f"{n} apps: waiting for the service apps to be healthy")
        run["startup"] = wait_healthy(serve.url, services, timeout=30 + 3 * n)
        sampler.mark("apps_ready")
        at_start = {a["id"] for a in api_apps(serve.url) or []
                    if a.get("id") in services and a.get("state") == "running" and a.get("healthy") is True}
        bridge: dict[str, Any] = {"available": False, "note": "no redis-server on this machine"}
        storm: Storm | None = None
        if redis_proc is not None:
            reader = StreamReader(redis_proc.url, NODE)
            reader.start()
            time.sleep(0.3)  # let XREAD start at "$" before the probe goes out
            progress.note(f"{n} apps: bridge probe and capacity burst")
            bridge = bridge_phase(redis_proc.url, reader, args.burst_seconds)
            if bridge["available"]:
                storm = Storm(redis_proc.url, NODE, "load", args.storm_rate, args.load_seconds)
                bridge["state_before_load"] = bus_state(serve.url)
        progress.note(f"{n} apps: load window {args.load_seconds:g} s ({args.clients} clients)")
        sampler.mark("load")
        added0 = stream_added(redis_proc.url, NODE) if storm is not None and redis_proc is not None else None
        if storm is not None:
            storm.start()
        window = trio.run(load_window, serve.url, args, ui_apps, services, at_start)
        sampler.mark("load_end")
        if storm is not None and reader is not None:
            storm.join()
            arrived = reader.wait_for("load", storm.sent, timeout=15.0, settle=2.0)
            added = stream_added(redis_proc.url, NODE) if redis_proc else None
            bridge.update({
                "storm_rate": args.storm_rate, "storm_sent": storm.sent, "storm_arrived": arrived,
                "apps_publish_per_s": round(n * args.app_rate, 1),
                "lost": storm.sent - arrived, "events_per_s": round(arrived / args.load_seconds, 1),
                "latency_ms": summary(reader.latency["load"], 1000),
                "stream_entries_added": (added - added0) if added is not None and added0 is not None else None,
                "storm_error": storm.error})
        progress.note(f"{n} apps: waiting for the Streamlit apps to idle-expire")
        run["streamlit"] = {"opens": {k: {kk: vv for kk, vv in v.items() if kk != "opened_at"}
                                      for k, v in window["opens"].items()},
                            **wait_expired(serve.url, window["opens"], window["expired"], timeout=60)}
        progress.note(f"{n} apps: idle window {args.idle_seconds:g} s")
        sampler.mark("idle")
        time.sleep(args.idle_seconds)
        sampler.mark("idle_end")
        final = api_apps(serve.url) or []
        stats: ClickStats = window["stats"]
        run["load"] = {**sampler.window("load", "load_end"), "refresh_ms": summary(stats.latency, 1000),
                       "refreshes_per_s": round(len(stats.latency) / args.load_seconds, 1),
                       "refresh_errors": stats.errors, "clients_connected": stats.connected,
                       "health": window["health"]}
        run["idle"] = sampler.window("idle", "idle_end")
        run["bridge"] = bridge
        run["health_final"] = {"healthy": sum(1 for a in final if a.get("id") in services and a.get("healthy") is True),
                               "of": len(services)}
        run["bus_state"] = bus_state(serve.url)
        before = (bridge.get("state_before_load") or {}).get("dropped")
        if before is not None and (run["bus_state"] or {}).get("dropped") is not None:
            bridge["dropped_during_load"] = run["bus_state"]["dropped"] - before
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        run["serve_output"] = serve.tail(20)
    finally:
        progress.note(f"{n} apps: stopping")
        if reader is not None:
            reader.stop()
        took = serve.stop()
        run["shutdown_s"] = None if took is None else round(took, 2)
        if sampler is not None:
            sampler.stop()
            run["series"] = sampler.series()
            run["rss_mb_peak_whole_run"] = round(max((s["rss"] for s in sampler.samples), default=0) / 2**20, 1)
            run["marks"] = sampler.marks
        run["leftover_processes_killed"] = kill_leftovers(str(apps_dir))
        run["cgroup"] = constraint.stats()
        constraint.cleanup()
    return run


def bus_state(url: str) -> dict[str, Any] | None:
    """The bridge's own counters (dropped, buffered, ...) from the dashboard's snapshot, if it has them."""
    snap = trio.run(snapshot, url)
    bus = (snap or {}).get("bus")
    if not isinstance(bus, dict):
        return None
    return {k: bus.get(k) for k in ("connected", "published", "received", "dropped", "buffered", "rejected",
                                    "refused") if k in bus}


def _host_memory_mb() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total // 2**20)
    except Exception:
        return None


BASELINE = ("the load figures have absolute targets (a Pi 5's budget), no baseline; HomeHelper's idle CPU with the "
            "apps not publishing (--app-rate 0) is the reference for what their messages cost; discovery: a bare "
            "os.scandir + json.load of the same folders")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    STATE.mkdir(parents=True, exist_ok=True)
    plan = pi_profile.plan(args.profile, board=board_model(), core_factor=args.pi_core_factor,
                           host_memory_mb=_host_memory_mb())
    plan.cleanup()  # each serve gets its own cgroup; this one only describes the plan
    result: dict[str, Any] = {"params": {k: v for k, v in vars(args).items() if k not in ("apps",)},
                              "profile": plan.describe(), "runs": [], "discovery": [], "baseline": BASELINE}
    print(f"load: baseline: {BASELINE}")
    do_load, do_disc = args.only in ("all", "load"), args.only in ("all", "discovery")
    progress = Progress(len(args.scales) * do_load + do_disc, title="load")
    if do_load:
        redis_proc = RedisProc(STATE / "redis") if RedisProc.available() else None
        if redis_proc is not None:
            redis_proc.start()
        try:
            for n in args.scales:
                result["runs"].append(run_scale(n, args, redis_proc, progress))
                progress.step(f"{n} apps done")
        finally:
            if redis_proc is not None:
                redis_proc.stop()
        result["scaling"] = scaling(result["runs"])
        result["table"] = {"columns": COLUMNS, "rows": table_rows(result["runs"])}
        result["targets"] = targets(result["runs"], plan.profile, args.clients)
        if all("idle" not in r for r in result["runs"]):
            progress.close()
            print_report(result)
            raise NotAvailable("no load run completed: " + "; ".join(r.get("error", "?") for r in result["runs"]))
    if do_disc:
        progress.note("discovery: 10, 100, 1000 folders")
        result["discovery"] = discovery(STATE, [10, 100, 1000], 3 if args.quick else 7)
        progress.step("discovery done")
    progress.close()
    print_report(result)
    return result


if __name__ == "__main__":
    main()
