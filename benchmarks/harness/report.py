"""The results file (JSON) and the report people read (HTML with inline SVG plots)."""

from __future__ import annotations

import json
import os
import time
from html import escape
from pathlib import Path
from typing import Any

from . import svg

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def _atomic_write(path: Path, text: str) -> None:
    """Temp file beside the target, then rename: a report is never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(results: dict[str, Any], out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """`<stamp>.json` and `<stamp>.html` under `out_dir`, copied to latest.json / latest.html."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(results.get("started_unix", time.time())))
    profile = (results.get("profile") or {}).get("profile", "none")
    base = f"{stamp}-{profile}{'-quick' if results.get('quick') else ''}"
    text = json.dumps(results, indent=2, default=str, sort_keys=False) + "\n"
    html, md = render_html(results), render_markdown(results)
    json_path, html_path = out_dir / f"{base}.json", out_dir / f"{base}.html"
    for path, body in ((json_path, text), (out_dir / "latest.json", text), (html_path, html),
                       (out_dir / "latest.html", html), (out_dir / f"{base}.md", md), (out_dir / "latest.md", md)):
        _atomic_write(path, body)
    return json_path, html_path


def render_markdown(results: dict[str, Any]) -> str:
    """The summary as Markdown, ready to paste into docs/benchmarks.md."""
    m, prof = results.get("machine") or {}, results.get("profile") or {}
    out = [f"Run {results.get('started')} ({'quick' if results.get('quick') else 'full'}, "
           f"{results.get('seconds')} s), commit {m.get('git_commit')}: {m.get('cpu_model')}, {m.get('cores')} cores, "
           f"{m.get('memory_mb')} MB, kernel {m.get('kernel')}, Python {m.get('python')}, "
           f"board {m.get('board_model') or 'none (not a Pi)'}.", "",
           f"Profile **{prof.get('profile')}** ({prof.get('method')}): {prof.get('note')}", ""]
    targets = results.get("targets") or []
    if targets:
        out += ["| target | measured | limit | verdict | note |", "|---|---:|---|---|---|"]
        out += [f"| {t.get('name')} | {_plain(t.get('value'))} {t.get('unit', '')} | {t.get('target')} | "
                f"{ {True: 'PASS', False: 'MISS', None: 'n/a'}[t.get('pass')] } | {t.get('note') or ''} |"
                for t in targets]
        out.append("")
    load = ((results.get("scenarios") or {}).get("load") or {}).get("result") or {}
    if load.get("table"):
        out += [markdown_table(load["table"]["columns"], load["table"]["rows"]), ""]
    scaling = load.get("scaling") or {}
    if scaling.get("idle_cpu_pct_per_app") is not None:
        out += [f"Cost per added app (least squares over the runs): idle CPU {scaling['idle_cpu_pct_per_app']:+.3f} "
                f"%/app, load CPU {scaling['load_cpu_pct_per_app']:+.3f} %/app, RSS {scaling['rss_mb_per_app']:+.2f} "
                "MB/app.", ""]
    disc = ((results.get("scenarios") or {}).get("discovery") or {}).get("result") or {}
    if disc.get("discovery"):
        rows = [[d["folders"], d["scan_ms"], d["baseline_ms"], d["ratio"], d["per_folder_us"]]
                for d in disc["discovery"]]
        out += [markdown_table(["folders", "scan_folder ms", "scandir+json ms", "ratio", "us/folder"], rows), ""]
    out += ["| scenario | status | seconds | note |", "|---|---|---:|---|"]
    for name, sc in (results.get("scenarios") or {}).items():
        reason = (sc.get("reason") or "").splitlines()[0] if sc.get("reason") else ""
        out.append(f"| {name} | {sc.get('status')} | {sc.get('seconds')} | {reason} |")
    return "\n".join(out) + "\n"


def flatten(data: Any, prefix: str = "", limit: int = 400) -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys, lists of records as `key[i].field` (each scenario's figures
    shown, not "[2 items]"); only long lists of plain values are summarised."""
    out: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += flatten(v, f"{prefix}{k}.", limit)
    elif isinstance(data, list) and data and len(data) <= 50 and all(isinstance(x, dict) for x in data):
        for i, item in enumerate(data):
            out += flatten(item, f"{prefix.rstrip('.')}[{i}].", limit)
    elif isinstance(data, list) and (len(data) > 12 or any(isinstance(x, (dict, list)) for x in data)):
        out.append((prefix.rstrip("."), f"[{len(data)} items]"))
    else:
        out.append((prefix.rstrip("."), data))
    return out[:limit]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    return escape(str(v))


def targets_table(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        verdict = {True: "PASS", False: "MISS", None: "n/a"}[t.get("pass")]
        cls = {True: "pass", False: "miss", None: "na"}[t.get("pass")]
        rows.append(f"<tr><td>{escape(str(t.get('name')))}</td><td>{_cell(t.get('value'))} {escape(t.get('unit', ''))}"
                    f"</td><td>{escape(str(t.get('target')))}</td><td class='{cls}'>{verdict}</td>"
                    f"<td>{escape(str(t.get('note') or ''))}</td></tr>")
    return ("<table><tr><th>target</th><th>measured</th><th>limit</th><th></th><th>note</th></tr>"
            + "".join(rows) + "</table>")


def _load_plots(load: dict[str, Any]) -> list[str]:
    runs = [r for r in load.get("runs", []) if r.get("series")]
    plots = []
    cpu = {f"{r['apps']} apps": [(p["t"], p["cpu_pct"]) for p in r["series"]] for r in runs}
    rss = {f"{r['apps']} apps": [(p["t"], p["rss_mb"]) for p in r["series"]] for r in runs}
    last = runs[-1] if runs else {}
    phases = [(t, f"{label} ({last.get('apps')} apps)" if label == "load" else label)
              for label, t in last.get("marks", []) if label in ("load", "idle")]
    plots.append(svg.line_chart(cpu, "HomeHelper CPU over time", "seconds since start", "% of one core",
                                phases=phases))
    plots.append(svg.line_chart(rss, "HomeHelper RSS over time", "seconds since start", "MB", target=80,
                                target_label="80 MB target", phases=phases))
    lat = [r for r in load.get("runs", []) if (r.get("load") or {}).get("refresh_ms", {}).get("count")]
    if lat:
        groups = [f"{r['apps']} apps" for r in lat]
        bars = {q: [r["load"]["refresh_ms"].get(q) for r in lat] for q in ("p50", "p90", "p99")}
        plots.append(svg.bar_chart(groups, bars, "Refresh latency (websocket, 'refresh all')", "ms", target=50,
                                   target_label="p99 target 50 ms"))
    scaling = load.get("scaling") or {}
    if scaling.get("apps"):
        xs = scaling["apps"]
        plots.append(svg.line_chart({"idle CPU %": list(zip(xs, scaling.get("idle_cpu_pct", []), strict=False)),
                                     "load CPU %": list(zip(xs, scaling.get("load_cpu_pct", []), strict=False))},
                                    "Cost per app: CPU", "service apps", "% of one core", markers=True))
        plots.append(svg.line_chart({"RSS MB": list(zip(xs, scaling.get("rss_mb", []), strict=False))},
                                    "Cost per app: HomeHelper RSS", "service apps", "MB", markers=True))
    disc = load.get("discovery") or []
    if disc:
        groups = [f"{d['folders']} folders" for d in disc]
        plots.append(svg.bar_chart(groups, {"scan_folder": [d.get("scan_ms") for d in disc],
                                            "scandir+json baseline": [d.get("baseline_ms") for d in disc]},
                                   "Discovery time", "ms"))
    return plots


def render_html(results: dict[str, Any]) -> str:
    m = results.get("machine") or {}
    prof = results.get("profile") or {}
    parts = [f"<h1>{escape(results.get('title', 'HomeHelper benchmarks'))}</h1>",
             f"<p>{escape(str(results.get('started')))} &middot; {_cell(results.get('seconds'))} s &middot; "
             f"{'quick run' if results.get('quick') else 'full run'} &middot; commit {_cell(m.get('git_commit'))}</p>",
             f"<p class='note'><b>Profile {escape(str(prof.get('profile')))}</b> ({escape(str(prof.get('method')))}): "
             f"{escape(str(prof.get('note', '')))}</p>"]
    targets = results.get("targets") or []
    if targets:
        parts += ["<h2>Targets</h2>", "<p>Misses are findings, not failures.</p>", targets_table(targets)]
    load = dict(((results.get("scenarios") or {}).get("load") or {}).get("result") or {})
    disc = (((results.get("scenarios") or {}).get("discovery") or {}).get("result") or {}).get("discovery")
    if disc and not load.get("discovery"):
        load["discovery"] = disc  # the runner runs discovery as its own scenario
    if load:
        parts += ["<h2>Pi load scenario</h2>", *(f"<figure>{p}</figure>" for p in _load_plots(load))]
        if load.get("table"):
            parts.append(_table(load["table"]))
    parts.append("<h2>Scenarios</h2>")
    for name, sc in (results.get("scenarios") or {}).items():
        status = sc.get("status")
        parts.append(f"<h3>{escape(name)} <span class='{escape(str(status))}'>{escape(str(status))}</span> "
                     f"<small>{_cell(sc.get('seconds'))} s</small></h3>")
        if sc.get("reason"):
            parts.append(f"<p class='note'>{escape(str(sc['reason']))}</p>")
        result = sc.get("result") or {}
        if isinstance(result, dict) and result.get("baseline"):
            parts.append(f"<p>Baseline: {escape(str(result['baseline']))}</p>")
        own = result.get("targets") if isinstance(result, dict) else None
        if isinstance(own, list) and own:
            parts.append(targets_table([t for t in own if isinstance(t, dict)]))
        rows = [(k, v) for k, v in flatten(result) if not k.startswith(("runs", "table", "targets"))]
        if rows:
            parts.append("<table>" + "".join(f"<tr><td>{escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in rows)
                         + "</table>")
    parts.append("<h2>Machine</h2><table>" + "".join(
        f"<tr><td>{escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in flatten(m) if not k.startswith("profile"))
        + "</table>")
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#111827}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d1d5db;padding:3px 8px;"
             "text-align:left;font-size:13px}.pass,.ok{color:#15803d;font-weight:bold}.miss,.error{color:#b91c1c;"
             "font-weight:bold}.na,.skipped{color:#6b7280}.note{background:#fef3c7;padding:6px 10px}"
             "figure{margin:1em 0}")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>HomeHelper benchmarks</title>"
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def _table(table: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.get("columns", []))
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.get("rows", []))
    return f"<table><tr>{head}</tr>{rows}</table>"


def text_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table for the terminal (and for docs/benchmarks.md as Markdown)."""
    cells = [[str(c) for c in columns]] + [[_plain(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    out += ["| " + " | ".join(_plain(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return "-" if v is None else str(v)
