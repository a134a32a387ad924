"""Service apps whose health is not HTTP: `process` (alive is healthy) and `watchdog` (sd_notify),
on both backends."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from homehelper.config import Config
from homehelper.messages import (
    AppConfigError,
    AppCrashed,
    AppHealthChanged,
    AppStarted,
    StartApp,
    StopApp,
)
from tests.actors.test_service import Harness, _fresh, harness
from tests.backends.apps import IMPORT_ERROR_APP, make_config, wait_until, write_app


@pytest.fixture
def config(state_root: Path) -> Config:
    return make_config(state_root)

# A plain polling loop serving no HTTP; it notes anyone knocking on its port (a health poll would).
PLAIN_LOOP_APP = """
import os, socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((os.environ["HH_HOST"], int(os.environ["HH_PORT"])))
srv.listen()
srv.settimeout(0.2)
while True:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        continue
    with open(os.path.join(os.environ["HH_DATA_DIR"], "knocks"), "a") as f:
        f.write("knock\\n")
    conn.close()
"""

# Serves /health and counts the polls: the test's clock of health intervals going by.
COUNTED_APP = """
import http.server, os
polls = os.path.join(os.environ["HH_DATA_DIR"], "polls")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(polls, "a") as f:
            f.write("poll\\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H).serve_forever()
"""

# Says READY=1 after SETUP seconds, then WATCHDOG=1 every 0.2 s, BEATS times (-1: for ever).
WATCHDOG_APP = """
import os, time
from homehelper import sdk
data = os.environ["HH_DATA_DIR"]
with open(os.path.join(data, "watchdog"), "w") as f:
    f.write(f"{sdk.watchdog_interval()} {os.environ['NOTIFY_SOCKET'] != ''}")
time.sleep(float(os.environ.get("SETUP", "0")))
sdk.ready()
beats, n = int(os.environ.get("BEATS", "-1")), 0
while beats < 0 or n < beats:
    time.sleep(0.2)
    sdk.heartbeat()
    n += 1
    with open(os.path.join(data, "beats"), "w") as f:
        f.write(str(n))
print("no more heartbeats", flush=True)
time.sleep(3600)
"""


def _count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):  # not yet, or caught mid-write
        return 0


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


async def test_a_plain_loop_without_http_runs_unpolled_and_is_never_restarted(any_backend: Any,
                                                                               config: Config) -> None:
    plain = write_app(config.apps_dir, "plain", PLAIN_LOOP_APP, health=None)
    assert plain.health.type == "process"
    # Explicitly "process" with the shortest interval and no grace: any poll would restart it at once.
    strict = write_app(config.apps_dir, "strict", PLAIN_LOOP_APP,
                       health={"type": "process", "interval": 1, "failures": 1, "grace": 0})
    clock = write_app(config.apps_dir, "clock", COUNTED_APP, health={"interval": 1, "timeout": 1})
    async with harness(config, any_backend) as h:
        refs = {m.id: h.add(m) for m in (plain, strict, clock)}
        for app_id, ref in refs.items():
            await ref.ask(StartApp(app_id), timeout=60)
        for app_id in ("plain", "strict"):
            snap = await h.until_state(refs[app_id], "running")
            assert snap["healthy"] is True and snap["pid"]
        await h.until_state(refs["clock"], "running")
        polls = config.data_dir("clock") / "polls"
        seen = _lines(polls)
        await wait_until(lambda: _lines(polls) >= seen + 4, timeout=30)  # four health intervals went by
        for app_id in ("plain", "strict"):
            snap = await h.state(refs[app_id])
            assert snap["state"] == "running" and snap["healthy"] is True
            assert len(h.of(AppStarted, app_id)) == 1 and not h.of(AppCrashed, app_id)
            assert [e.healthy for e in h.of(AppHealthChanged, app_id)] == [True]
            assert not (config.data_dir(app_id) / "knocks").exists()  # nobody polled it
        for app_id, ref in refs.items():
            await ref.ask(StopApp(app_id))


@pytest.mark.parametrize("health", [None, {"type": "watchdog", "interval": 1}], ids=["process", "watchdog"])
async def test_an_app_without_http_health_that_cannot_import_is_a_config_error(any_backend: Any, config: Config,
                                                                               health: Any) -> None:
    manifest = write_app(config.apps_dir, "broken", IMPORT_ERROR_APP, health=health)
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("broken"), timeout=60)
        error = (await h.until_event(AppConfigError, "broken"))[0]
        assert "definitely_not_a_module_hh" in error.error
        assert (await h.state(ref))["state"] == "config_error" and not h.of(AppCrashed, "broken")


async def test_a_watchdog_app_that_heartbeats_is_running(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "beating", WATCHDOG_APP, env={"SETUP": "0.5"},
                         health={"type": "watchdog", "interval": 1, "grace": 10})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("beating"), timeout=60)
        assert (await h.state(ref))["state"] == "starting"  # until it says READY=1
        snap = await h.until_state(ref, "running")
        assert snap["healthy"] is True
        watchdog = config.data_dir("beating") / "watchdog"
        assert watchdog.read_text() == "1.0 True"  # NOTIFY_SOCKET and WATCHDOG_USEC, on both backends
        beats = config.data_dir("beating") / "beats"
        await wait_until(lambda: _count(beats) >= 12, timeout=30)  # 2.4 s
        again = await h.state(ref)
        assert again["state"] == "running" and again["pid"] == snap["pid"]
        assert len(h.of(AppStarted, "beating")) == 1 and not h.of(AppCrashed, "beating")
        await ref.ask(StopApp("beating"))


def _reasons(h: Harness, app_id: str) -> list[tuple[str, str]]:
    from homehelper.messages import AppStateChanged

    return [(e.state, e.reason) for e in h.of(AppStateChanged, app_id)]


async def test_a_watchdog_app_that_stops_heartbeating_is_restarted(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "fading", WATCHDOG_APP, env={"BEATS": "3"},
                         health={"type": "watchdog", "interval": 1, "grace": 10})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("fading"), timeout=60)
        first = await h.until_state(ref, "running")
        crash = (await h.until_event(AppCrashed, "fading"))[0]
        assert crash.next_try_in == 1.0 and "no more heartbeats" in crash.log_tail
        if any_backend.name == "systemd":
            assert crash.exit_status == signal.SIGABRT  # systemd's WatchdogSec= ran out
        health = [(e.healthy, e.detail) for e in h.of(AppHealthChanged, "fading")]
        assert health[0] == (True, "") and health[1][0] is False and health[1][1].startswith("watchdog: ")
        await h.until_event(AppStarted, "fading", count=2)
        states = _reasons(h, "fading")
        states = states[states.index(("starting", "user")):]
        backoff = next(i for i, s in enumerate(states) if s[0] == "backoff")
        assert states[:2] == [("starting", "user"), ("running", "ready")], states
        assert states[backoff][1].startswith("watchdog: ") and states[backoff + 1] == ("starting", "restart"), states
        second = await h.until_state(ref, "running")
        assert second["pid"] != first["pid"]
        await ref.ask(StopApp("fading"))


async def test_a_watchdog_app_that_never_says_ready_is_restarted(any_backend: Any, config: Config) -> None:
    manifest = write_app(config.apps_dir, "sleepy", WATCHDOG_APP, env={"SETUP": "3600"},
                         health={"type": "watchdog", "interval": 1, "grace": 1})
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("sleepy"), timeout=60)
        unhealthy = (await h.until_event(AppHealthChanged, "sleepy"))[0]
        assert unhealthy.healthy is False and unhealthy.detail == "not ready: no READY=1 within 1 s"
        assert (await h.until_event(AppCrashed, "sleepy"))[0].next_try_in == 1.0
        await h.until_event(AppStarted, "sleepy", count=2)
        await ref.ask(StopApp("sleepy"))


async def test_a_restarted_homehelper_adopts_a_watchdog_app_and_keeps_hearing_it(any_backend: Any,
                                                                                  config: Config) -> None:
    manifest = write_app(config.apps_dir, "beating", WATCHDOG_APP,
                         health={"type": "watchdog", "interval": 1, "grace": 10})
    beats = config.data_dir("beating") / "beats"
    async with harness(config, any_backend) as h:
        ref = h.add(manifest)
        await ref.ask(StartApp("beating"), timeout=60)
        first = await h.until_state(ref, "running")
    async with harness(config, _fresh(any_backend)) as h2:
        ref = h2.add(manifest)
        snap = await h2.until_state(ref, "running")
        assert snap["pid"] == first["pid"] and not h2.of(AppStarted, "beating")  # adopted, counted as ready
        seen = _count(beats)
        await wait_until(lambda: _count(beats) >= seen + 10, timeout=30)  # 2 s: two intervals
        again = await h2.state(ref)
        assert again["state"] == "running" and again["pid"] == first["pid"] and not h2.of(AppCrashed, "beating")
        await ref.ask(StopApp("beating"))
