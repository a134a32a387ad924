"""The `homehelper` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from homehelper.actors.ports import port_is_free

REPO = Path(__file__).resolve().parents[2]


def hh(*args: str, root: Path, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOMEHELPER_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "homehelper", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO, **kw)  # type: ignore[call-overload]


def make_apps(base: Path) -> Path:
    apps = base / "apps"
    (apps / "good").mkdir(parents=True)
    (apps / "good" / "main.py").write_text("")
    (apps / "good" / "homehelper.json").write_text(json.dumps({"id": "good", "name": "Good", "type": "service"}))
    (apps / "bad").mkdir()
    (apps / "bad" / "homehelper.json").write_text(json.dumps({"id": "bad", "type": "service", "ttl": "x"}))
    return apps


def test_validate_exit_codes_and_errors(tmp_path: Path) -> None:
    apps = make_apps(tmp_path)
    ok = hh("validate", str(apps / "good"), root=tmp_path / "state")
    assert ok.returncode == 0 and "valid service app 'good'" in ok.stdout
    bad = hh("validate", str(apps / "bad" / "homehelper.json"), root=tmp_path / "state")
    assert bad.returncode == 1
    assert "ttl: must be a number" in bad.stderr and "entry: 'main.py' does not exist" in bad.stderr


def test_apps_lists_the_examples_offline() -> None:
    out = hh("apps", "--json", "--apps-dir", str(REPO / "apps"), root=REPO / "state" / "cli-test")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    types = {a["type"] for a in data["apps"]}
    assert {"service", "streamlit"} <= types
    assert data["source"].startswith("offline")


def test_a_bad_config_is_a_clear_error_at_start(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text('{"streamlit": {"max_running": "three"}}')
    out = hh("apps", root=tmp_path)
    assert out.returncode == 2
    assert "'streamlit.max_running' must be an integer" in out.stderr


def free_port() -> int:
    for port in range(18000, 19000):
        if port_is_free(port):
            return port
    raise RuntimeError("no free port")


def test_serve_answers_lists_apps_and_stops_on_sigterm_within_5_s(tmp_path: Path) -> None:
    apps = make_apps(tmp_path)
    port = free_port()
    env = {**os.environ, "HOMEHELPER_ROOT": str(tmp_path / "state"), "HOMEHELPER_BACKEND": "process",
           "HOMEHELPER_AUTH__LOOPBACK_WITHOUT_LOGIN": "true"}
    with subprocess.Popen([sys.executable, "-m", "homehelper", "serve", "--apps-dir", str(apps), "--port", str(port)],
                          env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            from tests.cli.test_start import Served

            Served(proc).wait_for("HomeHelper serving", timeout=30)  # it says so once it listens
            listed = hh("apps", "--json", "--apps-dir", str(apps), "--port", str(port), root=tmp_path / "state")
            data = json.loads(listed.stdout)
            assert data["source"] == "live"
            states = {a["id"]: a["state"] for a in data["apps"]}
            assert states == {"good": "stopped", "bad": "invalid"}
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
            assert time.monotonic() - t0 < 5
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_bench_passes_its_arguments_to_the_runner(tmp_path: Path) -> None:
    out = hh("bench", "--list", root=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert {"actors", "services", "streamlit_ui", "dashboard", "bus", "monitor", "load"} <= set(listed)


def test_apps_offline_reads_past_a_damaged_port_map(tmp_path: Path) -> None:
    apps = make_apps(tmp_path)
    registry = tmp_path / "state" / "registry"
    registry.mkdir(parents=True)
    for damage in ("{ torn", "[" * 30_000, "[1, 2]"):
        (registry / "ports.json").write_text(damage)
        out = hh("apps", "--json", "--apps-dir", str(apps), root=tmp_path / "state")
        assert out.returncode == 0, out.stderr
        assert [a["id"] for a in json.loads(out.stdout)["apps"] if a["type"]] == ["good"]
        assert (registry / "ports.json").read_text() == damage  # only the server sets a damaged file aside
