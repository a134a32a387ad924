"""Run every benchmark, or the named ones, and write the results JSON and the HTML report.

    python -m benchmarks [--quick] [--profile pi5] [scenario ...]
    python -m benchmarks --list

Each part benchmark is imported and called as `main(["--quick"])` (or `main([])`). A part that is
not written yet, does not import, or raises NotAvailable is SKIPPED with the reason; one that
fails is recorded as an error; the run goes on either way. Results go to benchmarks/results/
(git-ignored): <stamp>.json, <stamp>.html, and latest.json / latest.html.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import NotAvailable, Progress, machine_info
from benchmarks.harness import profile as pi_profile
from benchmarks.harness.report import (
    RESULTS_DIR,
    issue_targets,
    render_markdown,
    text_table,
    update_docs,
    write_results,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DOCS = REPO / "docs" / "benchmarks.md"
# name -> (module in benchmarks/, extra argv). Order: cheap in-process parts first, the load test last.
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "actors": ("actors", []),
    "bus": ("bus", []),
    "services": ("services", []),
    "startup": ("startup", []),
    "streamlit_ui": ("streamlit_ui", []),
    "dashboard": ("dashboard", []),
    "starting": ("starting", []),
    "monitor": ("monitor", []),
    "diskwrites": ("diskwrites", []),
    "fleet": ("fleet", []),
    "discovery": ("load", ["--only", "discovery"]),
    "load": ("load", ["--only", "load"]),
}
# Exceptions that mean "this part cannot run here yet", by name, so a part need not import ours.
UNAVAILABLE_NAMES = {"NotAvailable", "Unavailable", "ScenarioUnavailable", "SkipScenario", "SkipBenchmark"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="short runs (each part's --quick)")
    p.add_argument("--profile", choices=pi_profile.PROFILES, default="none",
                   help="pi5: run HomeHelper under a CPU quota and memory cap approximating a Raspberry Pi 5 "
                        "(the load scenario; on a real Pi: unconstrained)")
    p.add_argument("--apps", help="load scenario: comma-separated service app counts")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results go (default benchmarks/results/)")
    p.add_argument("--list", action="store_true", help="list the scenarios and whether each exists, then exit")
    p.add_argument("--no-docs", action="store_true",
                   help="leave docs/benchmarks.md as it is (by default, unless --out is given, its generated section "
                        "gets this run's tables)")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def scenario_argv(name: str, args: argparse.Namespace) -> list[str]:
    module, extra = SCENARIOS[name]
    argv = (["--quick"] if args.quick else []) + list(extra)
    if module == "load":
        argv += ["--profile", args.profile]
        if args.apps and name == "load":
            argv += ["--apps", args.apps]
    return argv


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, (NotAvailable, ImportError)) or any(
        c.__name__ in UNAVAILABLE_NAMES for c in type(exc).__mro__)


def run_scenario(name: str, argv: list[str], bench_dir: Path = BENCH_DIR,
                 package: str = "benchmarks") -> dict[str, Any]:
    """Import and run one scenario; never raises (but for Ctrl-C): a missing part is 'skipped'."""
    module = SCENARIOS[name][0] if name in SCENARIOS else name
    t0 = time.monotonic()

    def done(status: str, reason: str | None = None, result: Any = None) -> dict[str, Any]:
        return {"status": status, "reason": reason, "seconds": round(time.monotonic() - t0, 1), "argv": argv,
                "result": result}

    if not (bench_dir / f"{module}.py").exists():
        return done("skipped", f"benchmarks/{module}.py does not exist yet (its part has not landed)")
    try:
        mod = importlib.import_module(f"{package}.{module}")
    except Exception as exc:
        if _unavailable(exc):
            return done("skipped", f"benchmarks/{module}.py does not import: {type(exc).__name__}: {exc}")
        return done("error", f"importing benchmarks/{module}.py failed: {type(exc).__name__}: {exc}")
    main = getattr(mod, "main", None)
    if not callable(main):
        return done("skipped", f"benchmarks/{module}.py has no main(argv)")
    try:
        result = main(argv)
    except SystemExit as exc:
        if exc.code in (0, None):
            return done("ok", "exited without returning figures", None)
        return done("error", f"exited with status {exc.code}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if _unavailable(exc):
            return done("skipped", f"not available: {exc}")
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        return done("error", f"{type(exc).__name__}: {exc}\n{tail}")
    if isinstance(result, dict) and result.get("skipped"):
        return done("skipped", str(result.get("skipped")), result)
    return done("ok", None, result if isinstance(result, dict) else {"value": result})


def collect_targets(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Targets a scenario states as [{name, value, target, pass, ...}]; other shapes stay in its own figures."""
    out = []
    for name, sc in scenarios.items():
        result = sc.get("result") or {}
        targets = result.get("targets") if isinstance(result, dict) else None
        if isinstance(targets, list):
            out += [{"scenario": name, **t} for t in targets if isinstance(t, dict) and "name" in t]
        elif isinstance(targets, dict):  # {figure: limit}: shown with its figure, without a verdict
            out += [{"scenario": name, "name": f"{name} {key}", "value": result.get(key), "target": limit,
                     "pass": None, "note": "the scenario states no direction"} for key, limit in targets.items()]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.list:
        for name, (module, _) in SCENARIOS.items():
            there = (BENCH_DIR / f"{module}.py").exists()
            print(f"{name:<14} benchmarks/{module}.py {'' if there else '(not written yet)'}")
        return {}
    names = args.scenarios or list(SCENARIOS)
    plan = pi_profile.plan(args.profile, use_systemd=False if args.profile == "none" else None)
    plan.cleanup()
    started = time.time()
    results: dict[str, Any] = {
        "title": "HomeHelper benchmarks", "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "started_unix": started, "quick": args.quick, "argv": sys.argv[1:] if argv is None else argv,
        "profile": plan.describe(), "machine": machine_info(plan.describe(), REPO), "scenarios": {},
    }
    progress = Progress(len(names), title="bench")
    for i, name in enumerate(names):
        progress.note(f"{name} ...")
        print(f"\n== {name} ==", flush=True)
        try:
            sc = run_scenario(name, scenario_argv(name, args))
        except KeyboardInterrupt:  # keep what was measured: write the results of the scenarios that ran
            for rest in names[i:]:
                results["scenarios"][rest] = {"status": "skipped", "reason": "interrupted (Ctrl-C)", "seconds": 0,
                                              "result": None}
            results["interrupted"] = True
            break
        results["scenarios"][name] = sc
        if sc["status"] != "ok":
            print(f"{name}: {sc['status'].upper()}: {sc['reason']}", flush=True)
        progress.step(f"{name} {sc['status']}")
    progress.close()
    load = (results["scenarios"].get("load") or {}).get("result") or {}
    if load.get("profile"):
        results["profile"] = results["machine"]["profile"] = load["profile"]
    results["targets"] = collect_targets(results["scenarios"])
    results["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["seconds"] = round(time.time() - started, 1)
    json_path, html_path = write_results(results, args.out)
    print_summary(results)
    # Only a run that writes to the usual place is the project's: a test's run into a temp dir is not.
    if not args.no_docs and args.out == RESULTS_DIR and update_docs(DOCS, render_markdown(results)):
        print(f"docs:    {_rel(DOCS)} (its generated section)")
    print(f"\nresults: {_rel(json_path)}\nreport:  {_rel(html_path)}")
    return results


def print_summary(results: dict[str, Any]) -> None:
    print("\n== summary ==")
    rows = [[n, sc["status"], sc["seconds"], (sc.get("reason") or "").splitlines()[0][:70] if sc.get("reason") else ""]
            for n, sc in results["scenarios"].items()]
    print(text_table(["scenario", "status", "seconds", "note"], rows))
    for t in results.get("targets", []):
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t.get("pass")]
        print(f"{verdict} {t['name']}: {t.get('value')} {t.get('unit', '')} (target {t.get('target')})")
    issue = issue_targets(results.get("targets", []), results.get("scenarios"))
    if issue:
        print(f"\n== issue 17 (load average {results.get('load_average')}) ==")
        for t in issue:
            verdict = {True: "PASS", False: "MISS", None: "n/a "}[t.get("pass")]
            print(f"{verdict} {t['name']}: {t.get('value')} {t.get('unit', '')} (target {t.get('target')})"
                  + (f" - {t['note']}" if t.get("value") is None else ""))
    prof = results.get("profile") or {}
    if prof.get("profile") != "none":
        print(f"profile: {prof.get('note')}")


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def cli() -> int:
    """Exit status: 0, or 1 if a scenario failed (skips and missed targets are not failures), 130 if interrupted."""
    results = main()
    if results.get("interrupted"):
        return 130
    return 1 if any(sc["status"] == "error" for sc in results.get("scenarios", {}).values()) else 0


if __name__ == "__main__":
    sys.exit(cli())
