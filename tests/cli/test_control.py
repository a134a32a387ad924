"""`homehelper start|stop|restart|enable|disable|status|logs|install-app` as real subprocesses against a real
`homehelper serve` (process backend) with real service apps."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from homehelper.backends.logsearch import stamp_of
from tests.backends.apps import CRASHING_APP, HEALTHY_APP, write_app
from tests.cli.test_approve import serving
from tests.cli.test_cli import REPO, hh
from tests.fixtures.redis import free_port

# A service that prints each path it is asked for: the test makes it write a log line on demand.
ECHO_APP = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            print("said", self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
print("evil \\x1b]0;owned\\x07 title", flush=True)
for i in range(8):
    print("line", i, flush=True)
http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H).serve_forever()
"""


class Server:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port

    def run(self, *args: str, timeout: float = 180, **kw: object) -> subprocess.CompletedProcess[str]:
        return hh(*args, "--port", str(self.port), root=self.root, timeout=timeout, **kw)

    def status(self, app_id: str) -> dict[str, object]:
        out = self.run("status", app_id, "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert isinstance(data, dict)
        return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("ctl")
    apps, root, port = base / "apps", base / "state", free_port()
    write_app(apps, "svc", HEALTHY_APP)
    write_app(apps, "echo", ECHO_APP)
    write_app(apps, "fresh", HEALTHY_APP)
    write_app(apps, "drawn", HEALTHY_APP)
    write_app(apps, "boot", HEALTHY_APP)
    write_app(apps, "crashy", CRASHING_APP)  # dies while its http health check waits
    with serving(root, apps, port):
        yield Server(root, port)


def test_start_status_stop_restart(server: Server) -> None:
    out = server.run("start", "svc")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svc: running" and out.stderr == ""  # piped: no progress drawn
    assert server.status("svc")["state"] == "running"
    table = server.run("status")
    assert table.returncode == 0 and "STATE" in table.stdout
    assert "running" in next(line for line in table.stdout.splitlines() if line.startswith("svc "))
    listed = json.loads(server.run("status", "--json").stdout)
    assert {a["id"] for a in listed} >= {"svc", "echo", "fresh"}

    out = server.run("restart", "svc", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"] == [{"app": "svc", "ok": True, "state": "running", "message": ""}]

    out = server.run("stop", "svc")
    assert out.returncode == 0 and out.stdout.strip() == "svc: stopped", out.stderr
    assert server.status("svc")["state"] == "stopped"


def test_several_apps_are_each_reported_and_one_unknown_fails_the_command(server: Server) -> None:
    out = server.run("stop", "svc", "ghost", "fresh")
    assert out.returncode == 1
    assert "svc: stopped" in out.stdout and "fresh: stopped" in out.stdout  # the others still ran
    assert "ghost: failed" in out.stderr and "'ghost'" in out.stderr
    for args in (("status", "ghost"), ("logs", "ghost"), ("logs", "ghost", "-f"), ("start", "ghost")):
        bad = server.run(*args)
        assert bad.returncode == 1 and "ghost" in bad.stderr, (args, bad.stderr)


def test_an_app_that_does_not_come_up_fails_the_start_with_its_error(server: Server) -> None:
    out = server.run("start", "crashy", "--json")
    assert out.returncode == 1
    (result,) = json.loads(out.stdout)["results"]
    assert result["app"] == "crashy" and result["ok"] is False and result["state"] != "running"
    assert "exit status 3" in result["message"], result  # the app's last error
    plain = server.run("restart", "crashy")
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.startswith("crashy: failed (") and "exit status 3" in plain.stderr, plain.stderr
    assert server.run("stop", "crashy").returncode == 0


def test_a_refused_token_is_named(server: Server, tmp_path: Path) -> None:
    """Another state root (no token there) pointed at the running server: 401, said plainly."""
    for args in (("status",), ("start", "svc"), ("logs", "svc", "-f")):
        out = hh(*args, "--port", str(server.port), root=tmp_path)
        assert out.returncode == 1, (args, out.stderr)
        assert "refused" in out.stderr and str(tmp_path / "run" / "cli-token") in out.stderr, out.stderr


def test_logs_tail_filters_and_json(server: Server) -> None:
    assert server.run("start", "echo").returncode == 0
    out = server.run("logs", "echo", "-n", "5")
    assert out.returncode == 0, out.stderr
    # Each line carries the time it was written (the app writes none): stamped at capture.
    assert [_message(line) for line in out.stdout.splitlines()[-5:]] == [f"line {i}" for i in range(3, 8)]
    assert all(stamp_of(line) is not None for line in out.stdout.splitlines())
    assert len(out.stdout.splitlines()) == 5
    # An app's escape sequences are shown, not obeyed by the terminal.
    evil = server.run("logs", "echo", "--grep", "evil").stdout
    assert _message(evil) == "evil \\x1b]0;owned\\x07 title\n" and "\x1b" not in evil
    grep = server.run("logs", "echo", "--grep", "line 2")
    assert [_message(line) for line in grep.stdout.splitlines()] == ["line 2"]
    as_json = server.run("logs", "echo", "-n", "1", "--json")
    (one,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert one["app"] == "echo" and _message(one["line"]) == "line 7"
    # The server dates each line by its stamp: the last minute holds them, a time to come none.
    assert "line 7" in server.run("logs", "echo", "--since", "1m").stdout
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert server.run("logs", "echo", "--since", later).stdout == ""
    assert server.run("logs", "echo", "--since", "yesterday-ish").returncode == 2
    assert server.run("logs", "echo", "-n", "0").returncode == 2


def _message(line: str) -> str:
    """A log line without the timestamp in front of it."""
    assert stamp_of(line) is not None, line
    return line.split(" ", 1)[1]


def test_logs_follow_prints_a_new_line(server: Server) -> None:
    if server.status("echo")["state"] != "running":
        assert server.run("start", "echo").returncode == 0
    port = server.status("echo")["port"]
    env = {**os.environ, "HOMEHELPER_ROOT": str(server.root)}
    # Started as a terminal starts it, with Ctrl-C's default: in three full runs the runner's process
    # ignored SIGINT and SIGQUIT at the moment (a system() in some thread, by the signature), the
    # CLI inherited that, and Python then installs no handler for Ctrl-C.
    with subprocess.Popen([sys.executable, "-m", "homehelper", "logs", "echo", "-f", "-n", "2", "--grep", "said",
                           "--port", str(server.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=REPO,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 30
            # Ask the app to speak until the follower shows the line (its follow may begin after the first ask).
            seen = ""
            while "said /hello-follow" not in seen:
                assert time.monotonic() < deadline, "logs -f never printed the app's new line"
                httpx.get(f"http://127.0.0.1:{port}/hello-follow", timeout=5)
                try:
                    seen = lines.get(timeout=2)
                except queue.Empty:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            proc.send_signal(signal.SIGINT)  # Ctrl-C ends a follow: exit 0, no traceback
            assert proc.wait(timeout=10) == 0
            assert proc.stderr is not None and proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(timeout=5)


def test_enable_and_disable_say_whether_an_app_starts_at_boot(server: Server) -> None:
    out = server.run("enable", "boot")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "boot: starts at boot (stopped)\n" and out.stderr == ""  # installed first, not started
    record = server.root / "run" / "procs" / "boot.json"  # what the next HomeHelper start reads
    assert json.loads(record.read_text())["enabled"] is True
    as_json = json.loads(server.run("disable", "boot", "--json").stdout)
    assert as_json == {"action": "disable", "results": [
        {"app": "boot", "ok": True, "state": "stopped", "enabled": False, "message": ""}]}
    assert json.loads(record.read_text())["enabled"] is False
    out = server.run("enable", "boot", "ghost")
    assert out.returncode == 1 and "boot: starts at boot" in out.stdout and "ghost: failed" in out.stderr


def test_install_app_is_quiet_when_piped_and_draws_progress_in_a_terminal(server: Server) -> None:
    out = server.run("install-app", "fresh")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "fresh: stopped\n" and out.stderr == ""
    as_json = json.loads(server.run("install-app", "fresh", "--json").stdout)
    assert as_json["action"] == "install" and as_json["results"][0]["ok"] is True


def test_install_app_in_a_terminal_draws_its_progress(server: Server) -> None:
    """stderr is a terminal (a pty): the progress line shows the install's steps, stdout the result."""
    import pty

    main, side = pty.openpty()
    env = {**os.environ, "HOMEHELPER_ROOT": str(server.root), "COLUMNS": "120", "TERM": "xterm"}
    with subprocess.Popen([sys.executable, "-m", "homehelper", "install-app", "drawn", "--port", str(server.port)],
                          stdout=subprocess.PIPE, stderr=side, text=True, env=env, cwd=REPO) as proc:
        os.close(side)
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the command ended and closed its side
                break
            if not chunk:
                break
            drawn += chunk
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(timeout=60) == 0
    os.close(main)
    assert out == "drawn: stopped\n", drawn[-800:]
    assert b"drawn: venv" in drawn or b"drawn: done" in drawn, drawn[-500:]


def test_no_server_is_exit_3_with_how_to_start_it(tmp_path: Path) -> None:
    port = str(free_port())
    for args in (("status",), ("start", "a", "b"), ("stop", "a"), ("restart", "a"), ("logs", "a"),
                 ("logs", "a", "-f"), ("install-app", "a")):
        out = hh(*args, "--port", port, root=tmp_path)
        assert out.returncode == 3, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and "homehelper serve" in out.stderr and out.stdout == ""


@pytest.fixture
def stranger() -> Iterator[int]:
    """Another program on the port: a plain web server answering every GET with a page."""
    import http.server

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>router admin</html>")

        def log_message(self, *a: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(httpd.server_address[1])
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


def test_another_program_on_the_port_is_a_clear_failure(stranger: int, tmp_path: Path) -> None:
    for args in (("status",), ("status", "x"), ("logs", "x"), ("logs", "x", "-f"), ("start", "x"),
                 ("install-app", "x")):
        out = hh(*args, "--port", str(stranger), root=tmp_path)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and "is --port right?" in out.stderr, (args, out.stderr)


@pytest.mark.parametrize("command", ["start", "stop", "restart", "enable", "disable", "status", "logs",
                                     "install-app", "approve"])
def test_help_shows_an_example_and_the_exit_codes(command: str, tmp_path: Path) -> None:
    out = hh(command, "--help", root=tmp_path)
    assert out.returncode == 0
    assert f"example:\n  homehelper {command}" in out.stdout and "3 server not running" in out.stdout
