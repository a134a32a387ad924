"""homehelper.sdk's app server, data folder and sd_notify, as an app uses them: real HTTP requests
to a real server, real datagrams on a real socket, and a real app process stopped by SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homehelper import sdk
from homehelper.sdk import _server


def get(server: sdk.AppServer, path: str, method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No HH_PORT: as run by hand, the server takes any free port.
    return {"HH_APP_ID": "lamp", "HH_HOST": "127.0.0.1", "HH_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    yield sock, str(tmp_path / "notify")
    sock.close()


def test_serve_health_answers_on_the_apps_port_and_says_ready(env: dict[str, str],
                                                              notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    server = sdk.serve_health(environ={**env, "NOTIFY_SOCKET": address})
    try:
        assert sock.recv(4096) == b"READY=1"  # once it listens: a watchdog app is running from here
        status, headers, body = get(server, "/health")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok", "app": "lamp"}
        assert get(server, "/health", "HEAD")[0] == 200
        assert get(server, "/elsewhere")[0] == 404
    finally:
        server.stop()
    with pytest.raises(OSError):
        get(server, "/health")  # stopped: nothing listens any more


def test_health_says_what_the_app_says_and_a_failure_is_a_503(env: dict[str, str]) -> None:
    answers: list[Any] = [{"readings": 3}, {"status": "degraded", "why": "sensor lost"}, False]

    def health() -> Any:
        if not answers:
            raise RuntimeError("the database is gone")
        return answers.pop(0)

    with sdk.AppServer(health, environ=env) as server:
        assert (lambda r: (r[0], json.loads(r[2])))(get(server, "/health")) == (
            200, {"status": "ok", "app": "lamp", "readings": 3})
        status, _, body = get(server, "/health")
        assert status == 503 and json.loads(body)["why"] == "sensor lost"
        assert get(server, "/health")[0] == 503
        status, _, body = get(server, "/health")
        assert status == 503 and json.loads(body) == {"status": "error", "app": "lamp", "error": "RuntimeError"}
        assert get(server, "/health")[0] == 503  # and it keeps serving


def test_routes_answer_html_json_bytes_and_responses(env: dict[str, str]) -> None:
    app = sdk.AppServer(environ=env)
    seen: list[sdk.Request] = []

    @app.route("/ui")
    def page(request: sdk.Request) -> str:
        seen.append(request)
        return "<h1>hi</h1>"

    @app.route("/api/items", methods=("GET", "POST"))
    def items(request: sdk.Request) -> Any:
        if request.method == "POST":
            return sdk.Response({"got": request.json()}, status=201, headers={"X-Made": "1"})
        return [1, 2]

    @app.route("/raw")
    def raw(request: sdk.Request) -> bytes:
        return b"\x00\x01"

    @app.route("/boom")
    def boom(request: sdk.Request) -> None:
        raise ValueError("secret detail")

    with app as server:
        status, headers, body = get(server, "/ui/?room=kitchen&room=hall")
        assert (status, headers["Content-Type"], body) == (200, "text/html; charset=utf-8", b"<h1>hi</h1>")
        assert seen[0].path == "/ui" and seen[0].query == {"room": "hall"}
        assert json.loads(get(server, "/api/items")[2]) == [1, 2]
        status, headers, body = get(server, "/api/items", "POST", b'{"a": 1}', {"Content-Type": "application/json"})
        assert (status, headers["X-Made"], json.loads(body)) == (201, "1", {"got": {"a": 1}})
        assert get(server, "/raw")[1]["Content-Type"] == "application/octet-stream"
        assert get(server, "/ui", "DELETE")[0] == 405
        status, _, body = get(server, "/boom")
        assert status == 500 and b"secret" not in body  # logged for the app, not shown to the visitor
        assert get(server, "/ui")[0] == 200  # a failing page leaves the server serving


def test_hostile_requests_are_refused_and_bounded(env: dict[str, str]) -> None:
    app = sdk.AppServer(environ=env)
    app.route("/in", methods=("POST",))(lambda request: len(request.body))
    with app as server:
        big = str(_server.MAX_BODY + 1)
        assert get(server, "/in", "POST", b"x", {"Content-Length": big})[0] == 413
        assert get(server, "/in", "POST", b"x", {"Content-Length": "-5"})[0] == 413
        assert get(server, "/in", "POST", b"x", {"Content-Length": "lots"})[0] == 413
        assert json.loads(get(server, "/in", "POST", b"abc")[2]) == 3
    with pytest.raises(ValueError, match="starts with '/'"):
        app.route("ui")


def test_every_repeats_a_task_until_stopped_and_survives_its_failures(env: dict[str, str]) -> None:
    app = sdk.AppServer(environ=env)
    rounds: list[int] = []
    third = threading.Event()

    @app.every(0.01)
    def task() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        if len(rounds) >= 3:
            third.set()

    with app:
        assert third.wait(10)
    done = len(rounds)
    assert not any(t.name == "sdk-task" and t.is_alive() for t in threading.enumerate()) and len(rounds) == done
    with pytest.raises(ValueError):
        app.every(0)


def test_data_dir_is_made_and_run_by_hand_is_relative(tmp_path: Path) -> None:
    folder = sdk.data_dir({"HH_APP_ID": "lamp", "HH_DATA_DIR": str(tmp_path / "a" / "b")})
    assert folder == tmp_path / "a" / "b" and folder.is_dir()
    # A job is started with HH_PORT=0: no port, not an error (it once failed every sdk call).
    assert sdk.settings({"HH_APP_ID": "lamp", "HH_PORT": "0"}).port is None


def test_ready_and_heartbeat_reach_the_notify_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    env = {"NOTIFY_SOCKET": address}
    assert sdk.ready(env) and sdk.heartbeat(env)
    assert [sock.recv(4096), sock.recv(4096)] == [b"READY=1", b"WATCHDOG=1"]
    assert not sdk.heartbeat({}) and not sdk.heartbeat({"NOTIFY_SOCKET": address + "-gone"})  # never raises


APP = """
import sys
from homehelper import sdk
app = sdk.AppServer()
app.route("/ui")(lambda request: "page")
app.run()
"""


def test_run_serves_until_sigterm_then_stops_cleanly(env: dict[str, str], tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HH_", "NOTIFY"))}
    proc = subprocess.Popen([sys.executable, "-c", APP], env={**clean, **env},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "lamp: serving on http://127.0.0.1:<port>"
        assert line.startswith("lamp: serving on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        assert json.loads(conn.getresponse().read())["status"] == "ok"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0 and proc.stdout.read() == "lamp: stopped\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
