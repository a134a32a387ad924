"""The benchmark runner's pieces: statistics, report writer, skip path, Pi profile, sampler, synthetic apps."""

from __future__ import annotations

import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks.harness import Progress, linear_fit, percentile, summary
from benchmarks.harness import loadfigures as load
from benchmarks.harness import profile as pi_profile
from benchmarks.harness.discovery import baseline_scan
from benchmarks.harness.machine import board_model, cpu_model, is_raspberry_pi
from benchmarks.harness.procs import Sampler
from benchmarks.harness.report import write_results
from benchmarks.harness.synth import generate_apps, generate_folders
from homehelper.actors.scanner import scan_folder
from homehelper.manifest import load_manifest


# --- statistics -----------------------------------------------------------------------------------
def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1
    assert percentile([1, 2, 3, 4], 100) == 4
    assert percentile([1, 2, 3, 4], 99) == pytest.approx(3.97)
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    rng = random.Random(7)
    for size in (2, 3, 10, 101):
        data = [rng.uniform(0, 100) for _ in range(size)]
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        for q in (1, 50, 90, 99):
            assert percentile(data, q) == pytest.approx(cuts[q - 1])


def test_percentile_refuses_a_bad_rank() -> None:
    with pytest.raises(ValueError, match="0 to 100"):
        percentile([1, 2], 101)


def test_summary_scales_and_linear_fit() -> None:
    s = summary([0.001, 0.002, 0.003], scale=1000)
    assert (s["count"], s["p50"], s["max"], s["mean"]) == (3, 2.0, 3.0, 2.0)
    assert summary([])["p99"] is None
    slope, intercept = linear_fit([1, 5, 10, 20], [3.5, 5.5, 8.0, 13.0])
    assert slope == pytest.approx(0.5) and intercept == pytest.approx(3.0)
    assert linear_fit([5, 5], [1, 2]) is None


# --- report -----------------------------------------------------------------------------------------
def _fake_results() -> dict:
    series = [{"t": t * 0.5, "cpu_pct": 1.0 + t % 3, "rss_mb": 50 + t * 0.1} for t in range(40)]
    run = {"apps": 20, "series": series, "startup": {"healthy": 20, "of": 20},
           "load": {"cpu_pct": 4.2, "rss_mb_max": 61.0, "refresh_ms": {"count": 9, "p50": 3.0, "p90": 7.0, "p99": 12.5},
                    "refreshes_per_s": 40.0, "health": {"misses": 0}},
           "idle": {"cpu_pct": 0.4, "rss_mb_max": 60.0, "rss_mb_end": 60.0, "write_kb_per_min": 0.0},
           "bridge": {"available": True, "storm_rate": 500, "capacity_per_s": 9000, "lost": 0, "events_per_s": 500}}
    small = json.loads(json.dumps(run)) | {"apps": 5}
    small["idle"]["cpu_pct"] = 0.1
    runs = [small, run]
    result = {"runs": runs, "scaling": load.scaling(runs), "targets": load.targets(runs, "pi5", 20),
              "discovery": [{"folders": 10, "scan_ms": 1.0, "baseline_ms": 0.5, "ratio": 2.0, "per_folder_us": 100.0}],
              "profile": {"profile": "pi5", "method": "cgroup-v1", "note": "an approximation"},
              "table": {"columns": load.COLUMNS, "rows": load.table_rows(runs)}}
    return {"title": "t <&> x", "started": "now", "started_unix": 1_700_000_000, "quick": True,
            "profile": {"profile": "pi5", "method": "cgroup-v1", "note": "an approximation"},
            "machine": {"cpu_model": "test", "git_commit": None},
            "scenarios": {"load": {"status": "ok", "seconds": 1.0, "result": result},
                          "bus": {"status": "skipped", "reason": "benchmarks/bus.py does not exist yet", "seconds": 0}},
            "targets": result["targets"]}


def test_report_writer_makes_valid_json_and_html_with_well_formed_svg(tmp_path: Path) -> None:
    results = _fake_results()
    json_path, html_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "latest.json").read_text() == json_path.read_text()
    html = html_path.read_text()
    assert html == (tmp_path / "latest.html").read_text()
    assert "t &lt;&amp;&gt; x" in html  # escaped, not injected
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched at view time
    svgs = [chunk.split("</svg>")[0] + "</svg>" for chunk in html.split("<svg")[1:]]
    assert len(svgs) >= 4  # CPU, RSS, latency, cost per app, discovery
    for chunk in svgs:
        ET.fromstring("<svg" + chunk)
    assert "polyline" in html and "<rect" in html
    assert "MISS" in html or "PASS" in html
    md = (tmp_path / "latest.md").read_text()
    assert "| idle CPU of HomeHelper | 0.40 % of one core | < 1 | PASS |" in md and "| bus | skipped |" in md
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_report_prints_the_table_and_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    load.print_report(_fake_results()["scenarios"]["load"]["result"])
    out = capsys.readouterr().out
    assert "idle CPU %" in out and "target: PASS refresh p99: 12.5 ms (target < 50)" in out
    assert "discovery:    10 folders" in out and "ratio 2.0x" in out


def test_targets_give_pass_miss_and_no_verdict_above_capacity() -> None:
    results = _fake_results()
    verdicts = {t["name"]: t["pass"] for t in results["targets"]}
    assert verdicts == {"idle CPU of HomeHelper": True, "RSS of HomeHelper": True, "refresh p99": True,
                        "lost messages": True, "idle disk writes": True}
    runs = results["scenarios"]["load"]["result"]["runs"]
    runs[1]["idle"]["cpu_pct"] = 1.5
    runs[1]["bridge"]["storm_rate"] = 20_000  # above capacity: losses there are expected, not a finding
    verdicts = {t["name"]: t["pass"] for t in load.targets(runs, "none", 20)}
    assert verdicts["idle CPU of HomeHelper"] is False
    assert verdicts["lost messages"] is None
    assert load.scaling(runs)["idle_cpu_pct_per_app"] == pytest.approx((1.5 - 0.1) / 15, abs=1e-3)


# --- runner: skip, error, ok ------------------------------------------------------------------------
@pytest.fixture
def fake_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fine.py").write_text("def main(argv=None):\n    return {'argv': argv, 'figure': 42}\n")
    (pkg / "broken.py").write_text("from homehelper.no_such_part import Thing\n")
    (pkg / "crashes.py").write_text("def main(argv=None):\n    raise RuntimeError('boom')\n")
    (pkg / "notyet.py").write_text("class Unavailable(Exception):\n    pass\n\n"
                                   "def main(argv=None):\n    raise Unavailable('the bridge is not wired')\n")
    (pkg / "exits.py").write_text("import sys\n\ndef main(argv=None):\n    sys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return pkg


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("fine", "ok", None),
    ("missing", "skipped", "does not exist yet"),
    ("broken", "skipped", "does not import"),
    ("notyet", "skipped", "the bridge is not wired"),
    ("crashes", "error", "RuntimeError: boom"),
    ("exits", "error", "status 3"),
])
def test_run_scenario_skips_missing_parts_and_never_raises(fake_bench: Path, name: str, status: str,
                                                            reason: str | None) -> None:
    out = runner.run_scenario(name, ["--quick"], bench_dir=fake_bench, package="fakebench")
    assert out["status"] == status
    if reason is None:
        assert out["result"] == {"argv": ["--quick"], "figure": 42}
    else:
        assert reason in out["reason"]


def test_runner_writes_results_with_a_skipped_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(runner.SCENARIOS, "nothing", ("no_such_benchmark_part", []))
    results = runner.main(["--quick", "--out", str(tmp_path), "nothing"])
    assert results["scenarios"]["nothing"]["status"] == "skipped"
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert saved["scenarios"]["nothing"]["status"] == "skipped"
    assert saved["machine"]["python"] == sys.version.split()[0] and saved["machine"]["cores"] == os.cpu_count()
    html = (tmp_path / "latest.html").read_text()
    assert "skipped" in html and "no_such_benchmark_part.py does not exist yet" in html
    out = capsys.readouterr().out
    assert "nothing: SKIPPED" in out and f"results: {tmp_path}" in out


def test_runner_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        runner.main(["no-such-scenario"])
    assert exc.value.code == 2
    assert "unknown scenario no-such-scenario" in capsys.readouterr().err


def test_progress_writes_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(2, title="t", stream=out)
    p.note("first")
    p.step("one")
    p.step("two")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert "[" + "-" * 28 + "] 0/2" in lines[0] and lines[2].startswith("t [" + "#" * 28 + "] 2/2")


# --- machine and profile ----------------------------------------------------------------------------
def test_board_and_cpu_model_from_pi_files(tmp_path: Path) -> None:
    (tmp_path / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\n"
                                      "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    model = board_model(tmp_path / "model")
    assert model == "Raspberry Pi 5 Model B Rev 1.0" and is_raspberry_pi(model)
    assert cpu_model(tmp_path / "cpuinfo") == "Raspberry Pi 5 Model B Rev 1.0"
    assert board_model(tmp_path / "absent") is None and not is_raspberry_pi(None)


def test_profile_plans() -> None:
    assert pi_profile.plan("none").method == "none"
    real = pi_profile.plan("pi5", board="Raspberry Pi 5 Model B Rev 1.0")
    assert real.method == "real-pi" and real.cpu_percent is None and real.wrap(["x"]) == ["x"]
    with pytest.raises(ValueError, match="unknown profile"):
        pi_profile.plan("pi9")


def test_profile_says_so_when_it_cannot_constrain(tmp_path: Path) -> None:
    c = pi_profile.plan("pi5", host_cores=8, use_systemd=False, cgroup_root=tmp_path)
    assert c.method == "unconstrained" and "UNCONSTRAINED" in c.note and c.wrap(["x"]) == ["x"]


def test_profile_writes_a_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    c = pi_profile.plan("pi5", host_cores=8, host_memory_mb=4096, use_systemd=False, cgroup_root=tmp_path,
                        core_factor=0.5)
    assert c.method == "cgroup-v2" and "APPROXIMATION" in c.note
    d = c.dirs[0]
    assert (d / "cpu.max").read_text() == "20000 10000"  # 4 Pi cores x 0.5 = 200 % of one core
    assert (d / "memory.max").read_text() == str(4096 * 2**20)  # capped at the host's memory
    assert c.wrap(["prog"])[-1] == "prog" and str(d / "cgroup.procs") in c.wrap(["prog"])


def test_systemd_run_wrapping() -> None:
    c = pi_profile.plan("pi5", host_cores=2, use_systemd=True)
    argv = c.wrap(["python", "-m", "homehelper"])
    assert argv[:4] == ["systemd-run", "--user", "--scope", "--quiet"]
    assert "CPUQuota=160%" in argv and "MemoryMax=8192M" in argv
    assert argv[-4:] == ["--", "python", "-m", "homehelper"]


def test_profile_really_constrains_a_process_on_this_machine() -> None:
    c = pi_profile.plan("pi5", use_systemd=False)
    if c.method not in ("cgroup-v1", "cgroup-v2"):
        pytest.skip(f"no writable cgroup here: {c.note}")
    try:
        out = subprocess.run(c.wrap([sys.executable, "-c", "print(open('/proc/self/cgroup').read())"]),
                             capture_output=True, text=True, timeout=20, check=True).stdout
        assert f"hh-bench-{os.getpid()}" in out
    finally:
        c.cleanup()
    assert not any(d.exists() for d in c.dirs) and c.dirs == []


# --- sampler, synthetic apps, discovery baseline ---------------------------------------------------
def test_sampler_measures_cpu_between_marks() -> None:
    s = Sampler(os.getpid(), interval=0.05)
    s.start()
    s.mark("a")
    t_end = time.process_time() + 0.3
    while time.process_time() < t_end:  # burn CPU: the window must see it
        pass
    s.mark("b")
    s.stop()
    w = s.window("a", "b")
    # CPU-seconds, not a percentage: a busy shared machine stretches the wall time, not the work
    assert w["cpu_s"] >= 0.25 and w["cpu_pct"] == pytest.approx(100 * w["cpu_s"] / w["seconds"], rel=0.05, abs=1)
    assert w["rss_mb_max"] > 10 and w["samples"] >= 2
    assert s.window("a", "missing") == {"seconds": 0.0, "samples": 0}


def test_generated_apps_have_valid_manifests(tmp_path: Path) -> None:
    services, uis = generate_apps(tmp_path / "apps", 3, 2, rate=2.5)
    assert services == ["svc-01", "svc-02", "svc-03"] and uis == ["ui-01", "ui-02"]
    m = load_manifest(tmp_path / "apps" / "svc-02", tmp_path / "apps")
    assert m.type == "service" and m.autostart and dict(m.env)["BENCH_RATE"] == "2.5"
    ui = load_manifest(tmp_path / "apps" / "ui-01", tmp_path / "apps")
    assert ui.type == "streamlit" and ui.ttl == 10
    generate_apps(tmp_path / "apps", 1, 0, rate=1)  # regenerating empties the folder first
    assert sorted(p.name for p in (tmp_path / "apps").iterdir()) == ["svc-01"]


def test_discovery_baseline_reads_what_the_scanner_finds(tmp_path: Path) -> None:
    generate_folders(tmp_path, 12)
    found, invalid = scan_folder(tmp_path)
    assert len(found) == 12 and not invalid
    assert sorted(m["id"] for m in baseline_scan(tmp_path)) == sorted(m.id for m in found)


def test_nice_ticks_cover_the_data() -> None:
    from benchmarks.harness.svg import nice_ticks

    for lo, hi in ((0, 3.42), (0, 0.0), (0, 80), (5, 20), (0, 0.013), (12.5, 12.5)):
        ticks = nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) >= 2
        assert ticks == sorted(ticks)


def test_report_shows_every_scenario_record_its_baseline_and_its_targets(tmp_path: Path) -> None:
    dash = {"baseline": "a bare <echo>", "scenarios": [
        {"kind": "back-to-back", "clients": 1, "ratio_p99": 3.1, "builds": 1000},
        {"kind": "fresh clicks", "clients": 20, "ratio_p99": 1.4, "builds": 87}],
        "targets": [{"name": "dashboard refresh p99 vs echo p99, 20 clients", "value": 2.7, "unit": "x",
                     "target": "<= 2", "pass": False, "note": "15670 bytes each"}]}
    actors = {"ask_ratio": 0.72, "targets": {"ask_ratio": 0.6}}  # the older {figure: limit} shape
    scenarios = {"dashboard": {"status": "ok", "seconds": 1.0, "result": dash},
                 "actors": {"status": "ok", "seconds": 1.0, "result": actors}}
    results = {"title": "t", "started": "now", "started_unix": 1_700_000_000, "quick": True, "profile": {},
               "machine": {}, "scenarios": scenarios, "targets": runner.collect_targets(scenarios)}
    _, html_path = write_results(results, tmp_path)
    html = html_path.read_text()
    assert "[2 items]" not in html
    assert "scenarios[1].kind</td><td>fresh clicks" in html and "scenarios[1].builds</td><td>87" in html
    assert "Baseline: a bare &lt;echo&gt;" in html
    assert html.count("dashboard refresh p99 vs echo p99, 20 clients") == 2  # the summary and its own table
    assert "actors ask_ratio" in html  # a dict of limits still lists its figure
    assert [t["value"] for t in results["targets"]] == [2.7, 0.72]
