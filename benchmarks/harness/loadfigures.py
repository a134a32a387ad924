"""The load scenario's figures: cost per app, targets with PASS / MISS, the table it prints."""

from __future__ import annotations

from typing import Any

from .report import text_table
from .stats import linear_fit

TARGETS = {"idle_cpu_pct": 1.0, "rss_mb": 80.0, "refresh_p99_ms": 50.0, "lost": 0, "idle_write_kb_min": 100.0}
TARGET_APPS = 20


def scaling(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "idle" in r]
    xs = [r["apps"] for r in ok]
    idle = [r["idle"].get("cpu_pct") for r in ok]
    load = [r["load"].get("cpu_pct") for r in ok]
    rss = [r["idle"].get("rss_mb_end") for r in ok]
    out: dict[str, Any] = {"apps": xs, "idle_cpu_pct": idle, "load_cpu_pct": load, "rss_mb": rss}
    for key, ys in (("idle_cpu_pct_per_app", idle), ("rss_mb_per_app", rss), ("load_cpu_pct_per_app", load)):
        fit = linear_fit(xs, ys) if None not in ys else None
        out[key] = round(fit[0], 4) if fit else None
        if fit:
            out[key.replace("_per_app", "_base")] = round(fit[1], 3)
    return out


def _at(runs: list[dict[str, Any]], apps: int) -> dict[str, Any] | None:
    """The run with `apps` service apps, else the largest below it."""
    done = [r for r in runs if "idle" in r and r["apps"] <= apps]
    return max(done, key=lambda r: r["apps"]) if done else None


def targets(runs: list[dict[str, Any]], profile: str, clients: int) -> list[dict[str, Any]]:
    r = _at(runs, TARGET_APPS)
    if r is None:
        return []
    where = f"{r['apps']} apps" + ("" if r["apps"] == TARGET_APPS else f" (no {TARGET_APPS}-app run)")
    out = []

    def add(name: str, value: Any, limit: float, unit: str, note: str = "") -> None:
        passed = None if value is None else value < limit if name != "lost messages" else value == limit
        out.append({"scenario": "load", "name": name, "value": value, "unit": unit,
                    "target": f"{'=' if name == 'lost messages' else '<'} {limit:g}", "pass": passed,
                    "note": (f"{where}; {note}" if note else where)})

    add("idle CPU of HomeHelper", r["idle"].get("cpu_pct"), TARGETS["idle_cpu_pct"], "% of one core",
        "apps publishing, health checks running, no clients")
    rss = max(r["load"].get("rss_mb_max") or 0, r["idle"].get("rss_mb_max") or 0) or None
    burst = r.get("rss_mb_peak_whole_run")
    add("RSS of HomeHelper", rss, TARGETS["rss_mb"], "MB", "peak over load and idle"
        + (f"; {burst} MB at most over the whole run, capacity burst included" if burst else ""))
    p99 = r["load"]["refresh_ms"].get("p99")
    add("refresh p99", p99, TARGETS["refresh_p99_ms"], "ms",
        f"{clients} clients, profile {profile}" + ("" if profile == "pi5" else ": the target is for --profile pi5"))
    b = r.get("bridge") or {}
    if b.get("available") and "lost" in b:
        below = b.get("capacity_per_s") is not None and b["storm_rate"] < b["capacity_per_s"]
        add("lost messages", b["lost"] if below else None, TARGETS["lost"], "messages",
            f"storm {b['storm_rate']:g}/s vs capacity {b.get('capacity_per_s')}/s"
            + ("" if below else ": storm not below capacity, no verdict"))
    else:
        out.append({"scenario": "load", "name": "lost messages", "value": None, "unit": "messages", "target": "= 0",
                    "pass": None, "note": b.get("note", "bridge not measured")})
    add("idle disk writes", r["idle"].get("write_kb_per_min"), TARGETS["idle_write_kb_min"], "KB/min",
        "/proc/<pid>/io write_bytes of HomeHelper itself")
    return out


COLUMNS = ["apps", "healthy", "idle CPU %", "load CPU %", "RSS MB", "refresh p50 ms", "p99 ms", "refresh/s",
           "bridge ev/s", "capacity ev/s", "lost", "health misses", "idle KB/min"]


def table_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in runs:
        if "idle" not in r:
            rows.append([r["apps"], "error", r.get("error", "")[:60]] + [None] * (len(COLUMNS) - 3))
            continue
        b = r.get("bridge") or {}
        rows.append([r["apps"], f"{r['startup'].get('healthy')}/{r['startup'].get('of')}", r["idle"].get("cpu_pct"),
                     r["load"].get("cpu_pct"), max(r["load"].get("rss_mb_max") or 0, r["idle"].get("rss_mb_max") or 0),
                     r["load"]["refresh_ms"].get("p50"), r["load"]["refresh_ms"].get("p99"),
                     r["load"].get("refreshes_per_s"), b.get("events_per_s"), b.get("capacity_per_s"), b.get("lost"),
                     r["load"]["health"]["misses"], r["idle"].get("write_kb_per_min")])
    return rows


def print_report(result: dict[str, Any]) -> None:
    prof = result["profile"]
    print(f"load: profile {prof['profile']} ({prof['method']}): {prof['note']}")
    if result.get("runs"):
        print(text_table(COLUMNS, result["table"]["rows"]))
        for r in result["runs"]:
            for key in ("error",):
                if r.get(key):
                    print(f"load: {r['apps']} apps: {r[key]}")
            ui = r.get("streamlit") or {}
            failed = {k: v.get("error") for k, v in (ui.get("opens") or {}).items() if not v.get("ok")}
            notes = [(r.get("startup") or {}).get("note"), (r.get("bridge") or {}).get("note"),
                     f"Streamlit open failed: {failed}" if failed else None,
                     f"Streamlit: {ui.get('expired')}/{ui.get('opened')} idle-expired, seconds after open "
                     f"{ui.get('seconds_after_open')}" if ui.get("opened") else None]
            b = r.get("bridge") or {}
            if b.get("available") and "storm_sent" in b:
                lat, bl = b.get("latency_ms") or {}, b.get("burst_latency_ms") or {}
                notes.append(f"bridge: burst offered {b.get('offered_per_s')}/s, capacity {b.get('capacity_per_s')}/s, "
                             f"burst lost {b.get('burst_lost')} of {b.get('burst_sent')} (p99 {bl.get('p99')} ms); "
                             f"storm {b['storm_rate']:g}/s: {b['storm_arrived']}/{b['storm_sent']} arrived, "
                             f"round trip p50 {lat.get('p50')} ms p99 {lat.get('p99')} ms; bridge dropped during load "
                             f"{b.get('dropped_during_load')}")
            for note in filter(None, notes):
                print(f"load: {r['apps']} apps: {note}"[:300])
        s = result["scaling"]
        if s.get("idle_cpu_pct_per_app") is not None:
            print(f"load: cost per added app: idle CPU {s['idle_cpu_pct_per_app']:+.3f} %/app, "
                  f"load CPU {s['load_cpu_pct_per_app']:+.3f} %/app, RSS {s['rss_mb_per_app']:+.2f} MB/app")
    for d in result.get("discovery", []):
        print(f"discovery: {d['folders']:>5} folders: scan_folder {d['scan_ms']:>8.2f} ms  scandir+json baseline "
              f"{d['baseline_ms']:>8.2f} ms  ratio {d['ratio']}x  ({d['per_folder_us']} us/folder)")
    for t in result.get("targets", []):
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t["pass"]]
        print(f"target: {verdict} {t['name']}: {t['value']} {t['unit']} (target {t['target']}) - {t['note']}")
