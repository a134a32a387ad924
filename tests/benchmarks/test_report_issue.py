"""The report's issue-17 summary, scaling plots and the generated section of docs/benchmarks.md."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as runner
from benchmarks.harness.report import DOCS_BEGIN, DOCS_END, issue_targets, render_html, render_markdown, update_docs

REPO = Path(__file__).resolve().parents[2]


def _results() -> dict[str, Any]:
    targets = [
        {"scenario": "actors", "name": "actor ask vs a bare one-shot reply", "value": 0.85, "unit": "x",
         "target": ">= 0.8", "pass": True, "issue": 17},
        {"scenario": "actors", "name": "actor tell vs a bare memory channel", "value": 0.9, "unit": "x",
         "target": ">= 0.7", "pass": True},
        {"scenario": "dashboard", "name": "dashboard refresh p99 vs echo p99, 20 clients, 40 apps, back-to-back",
         "value": 2.4, "unit": "x", "target": "<= 2", "pass": False, "issue": 17},
        {"scenario": "startup", "name": "start to healthy, 1 app, vs bare", "value": 1.2, "unit": "x",
         "target": "<= 1.5", "pass": True, "issue": 17},
        {"scenario": "bus", "name": "bus inbound cost of 20 msg/s (20 apps at 1 msg/s)", "value": 0.4,
         "unit": "% of one core", "target": "< 0.5", "pass": True, "issue": 17},
    ]
    return {"started": "2026-11-28 11:00:00 UTC", "seconds": 1.0, "quick": True, "load_average": "1.00 2.00 3.00",
            "machine": {}, "profile": {"profile": "none"}, "targets": targets, "scenarios": {
                "startup": {"status": "ok", "seconds": 1, "result": {"scaling": {
                    "apps": [1, 10, 40], "homehelper_ms": [60.0, 400.0, 1400.0], "bare_ms": [45.0, 350.0, 1200.0]}}},
                "dashboard": {"status": "ok", "seconds": 1, "result": {"scaling": {
                    "apps": [1, 10, 40], "refresh_p99_ms": [3.0, 4.0, 6.0], "echo_p99_ms": [2.0, 2.0, 2.5],
                    "clients": 20}}}}}


def test_issue_targets_come_in_the_issues_order_without_the_others() -> None:
    names = [t["name"] for t in issue_targets(_results()["targets"])]
    assert names == ["start to healthy, 1 app, vs bare",
                     "dashboard refresh p99 vs echo p99, 20 clients, 40 apps, back-to-back",
                     "bus inbound cost of 20 msg/s (20 apps at 1 msg/s)", "actor ask vs a bare one-shot reply"]


def test_a_figure_its_scenario_failed_to_measure_is_listed_as_not_measured() -> None:
    results = _results()
    scenarios = {**results["scenarios"], "startup": {"status": "error", "reason": "TooSlowError: \ntrace"}}
    got = {t["name"]: t for t in issue_targets(results["targets"], scenarios)}
    missing = got["start to healthy, 20 apps"]
    assert missing["value"] is None and missing["pass"] is None
    assert missing["note"] == "not measured: startup error: TooSlowError: "
    assert "dashboard refresh p99 vs echo p99, 20 clients, 20 apps" not in got  # ran, at other app counts
    assert not any(n.startswith("bus unloaded") for n in got)  # bus was not part of this run


def test_markdown_and_html_show_the_issue_verdicts_the_load_and_the_scaling() -> None:
    results = _results()
    md = render_markdown(results)
    assert "load average at the end 1.00 2.00 3.00" in md
    assert "| dashboard refresh p99 vs echo p99, 20 clients, 40 apps, back-to-back | 2.40 x | <= 2 | MISS |" in md
    assert "| 40 | 1400 | 1200 | 1.17 |" in md  # start to healthy by app count
    html = render_html(results)
    assert "Issue 17: responsiveness" in html and "Scaling" in html
    plots = [c.split("</svg>")[0] + "</svg>" for c in html.split("<svg")[1:]]
    assert len(plots) == 2
    for chunk in plots:
        ET.fromstring("<svg" + chunk)
    assert "Start to healthy" in html and "echo p99 (baseline)" in html


def test_update_docs_replaces_only_the_generated_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\nhand-written\n{DOCS_BEGIN}\nold run\n{DOCS_END}\nmore prose\n")
    assert update_docs(doc, "new run\n")
    text = doc.read_text()
    assert "old run" not in text and "new run" in text
    assert text.startswith("# Benchmarks\nhand-written\n") and text.endswith(f"{DOCS_END}\nmore prose\n")
    plain = tmp_path / "plain.md"
    plain.write_text("no marks\n")
    assert not update_docs(plain, "x")
    assert plain.read_text() == "no marks\n"


def test_the_repository_docs_have_the_generated_section() -> None:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    assert text.count(DOCS_BEGIN) == 1 and text.index(DOCS_BEGIN) < text.index(DOCS_END)


def test_a_run_into_another_folder_leaves_the_docs_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"{DOCS_BEGIN}\nold\n{DOCS_END}\n")
    monkeypatch.setattr(runner, "DOCS", doc)
    monkeypatch.setitem(runner.SCENARIOS, "nothing", ("no_such_benchmark_part", []))
    runner.main(["--quick", "--out", str(tmp_path / "out"), "nothing"])
    assert "old" in doc.read_text()
    monkeypatch.setattr(runner, "RESULTS_DIR", tmp_path / "usual")  # the usual place: the docs follow the run
    runner.main(["--quick", "nothing"])
    assert "old" not in doc.read_text() and "| nothing | skipped |" in doc.read_text()
