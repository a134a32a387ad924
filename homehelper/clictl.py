"""`homehelper start|stop|restart|enable|disable|status|logs|install-app`: control the running server, pm2-style.

Every command talks to the server on this machine: the port from the config (or --port) and the
CLI token the server keeps in `<root>/run/cli-token`. Exit codes: 0 ok, 1 failed (any app of
several), 2 usage, 3 the server is not running.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .backends import logsearch
from .config import Config

OK, FAILED, USAGE, NOT_RUNNING = 0, 1, 2, 3
MAX_LINES = 5000  # the server's tail limit (homehelper.backends.logs.MAX_LINES)
# What each action must end in to count as done.
DONE = {"start": ("running",), "restart": ("running",), "stop": ("stopped",)}
EXAMPLES = {
    "start": "homehelper start weather door-sensor",
    "stop": "homehelper stop weather",
    "restart": "homehelper restart weather",
    "status": "homehelper status            # every app\n  homehelper status weather --json",
    "logs": "homehelper logs weather -n 50 --grep ERROR\n  homehelper logs weather -f --since 10m",
    "install-app": "homehelper install-app weather   # (re)builds its venv, with a progress bar",
    "enable": "homehelper enable weather   # its unit starts at boot (installed first)",
    "disable": "homehelper disable weather",
}


class NotRunning(Exception):
    pass


class Failed(Exception):
    pass


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[root], help=help_, description=help_ + " (asks the running server)",
            epilog=f"example:\n  {EXAMPLES[name]}\n\nexit codes: 0 ok, 1 failed, 2 usage, 3 server not running",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--port", type=int, help="port of the running dashboard (default: the config's)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    for name, what in (("start", "start"), ("stop", "stop"), ("restart", "restart")):
        act = command(name, f"{what} apps; each is reported")
        act.add_argument("apps", nargs="+", metavar="APP")
        act.add_argument("--node", metavar="NODE", help="apps of another node of the fleet (docs/fleet.md)")
    command("enable", "start service apps at boot (each installed first); each is reported").add_argument(
        "apps", nargs="+", metavar="APP")
    command("disable", "no longer start service apps at boot; each is reported").add_argument(
        "apps", nargs="+", metavar="APP")
    st = command("status", "show apps' state, port and last error")
    st.add_argument("app", nargs="?", metavar="APP")
    st.add_argument("--node", metavar="NODE", help="another node of the fleet: its apps as it last reported them")
    lg = command("logs", "print an app's log lines")
    lg.add_argument("app", metavar="APP")
    lg.add_argument("-n", "--lines", type=int, default=50, help=f"how many lines (1-{MAX_LINES}, default 50)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
    lg.add_argument("--since", type=since_arg, help="lines from the last 10m, 2h, 1d, 30s, or since an ISO "
                    "time; only lines starting with a timestamp are dated (others go with the line above)")
    lg.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT (case-sensitive)")
    command("install-app", "install an app's dependencies (its venv), showing progress").add_argument(
        "app", metavar="APP")


def run(config: Config, args: argparse.Namespace) -> int:
    server = Server(config)
    try:
        if args.command in ("start", "stop", "restart", "enable", "disable"):
            return actions(server, args.command, args.apps, args.json)
        if args.command == "install-app":
            return actions(server, "install", [args.app], args.json)
        if args.command == "status":
            return status(server, args.app, args.json)
        if args.command == "logs":
            if not 1 <= args.lines <= MAX_LINES:
                print(f"homehelper logs: -n must be from 1 to {MAX_LINES}", file=sys.stderr)
                return USAGE
            return logs(server, args)
    except (NotRunning, Failed) as exc:
        return said(exc)
    except KeyboardInterrupt:  # Ctrl-C: the end of a follow; for an action, only the waiting ends
        if args.command == "logs":
            return OK
        print("homehelper: interrupted; the server finishes what it was asked (see `homehelper status`)",
              file=sys.stderr)
        return FAILED
    return USAGE


def said(exc: NotRunning | Failed, prefix: str = "homehelper") -> int:
    """Print why a command could not be done; its exit code (3: no server answers, 1: it failed)."""
    print(f"{prefix}: {exc}", file=sys.stderr)
    return NOT_RUNNING if isinstance(exc, NotRunning) else FAILED


class Server:
    """The running server on this machine: its URL and the CLI token's header."""

    def __init__(self, config: Config) -> None:
        token_file = self.token_file = config.run_dir / "cli-token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            token = ""
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
        host = f"[{host}]" if ":" in host else host
        self.base = f"http://{host}:{config.port}"

    def not_running(self) -> NotRunning:
        return NotRunning(f"HomeHelper is not running on {self.base}: start it with `homehelper serve` "
                          f"(or pass --port / --root of the one that runs)")

    def refused(self) -> Failed:
        """401: the token is missing or is another server's."""
        why = (f"the token in {self.token_file} was refused" if self.headers
               else f"no token could be read from {self.token_file}")
        return Failed(f"the server at {self.base} refused this command: {why}"
                      f" (run it as the user that runs the server, with that server's --root)")

    def stranger(self, status: int) -> str:
        return f"{self.base} answered HTTP {status}, not as HomeHelper does: is --port right?"

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                timeout: float = 30.0) -> Any:
        """One call to the server's API: its JSON answer, or NotRunning / Failed saying why not."""
        import httpx

        try:
            r = httpx.request(method, self.base + path, headers=self.headers, params=params, json=json,
                              timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise self.not_running() from None
        except httpx.HTTPError as exc:
            raise Failed(f"{self.base}: {exc}") from None
        if r.status_code == 401:
            raise self.refused()
        if r.status_code != 200:
            said = message(r)
            raise Failed(self.stranger(r.status_code) if said.startswith("HTTP ") else said)
        try:
            return r.json()
        except ValueError:
            raise Failed(f"{self.base} answered, but not as HomeHelper does: is --port right?") from None

    @contextmanager
    def websocket(self) -> Iterator[Any]:
        from .cliws import BlockingWS, WSClosed

        try:
            ws = BlockingWS(self.base.replace("http", "ws", 1) + "/ws", self.headers)
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.EHOSTUNREACH:
                raise self.not_running() from None
            raise Failed(f"{self.base}: {exc}") from None
        except WSClosed as exc:
            if exc.status == 401:
                raise self.refused() from None
            raise Failed(self.stranger(exc.status) if exc.status else str(exc)) from None
        try:
            yield ws
        except (WSClosed, OSError) as exc:
            raise Failed(str(exc)) from None
        finally:
            ws.close()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # tab stays


def safe(text: object) -> str:
    """Text from the server or an app, with control characters shown, not obeyed by the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))


def message(r: Any) -> str:
    try:
        return safe(r.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}"


# --- start / stop / restart / install-app ------------------------------------------------------
def actions(server: Server, action: str, app_ids: list[str], as_json: bool) -> int:
    """Each app in turn over the websocket (which waits for the app to settle and streams its progress)."""
    results: list[dict[str, Any]] = []
    with server.websocket() as ws, _progress(enabled=not as_json and sys.stderr.isatty()) as show:
        for n, app_id in enumerate(app_ids, 1):
            show(f"{app_id}: {action}")
            ws.send({"type": "action", "id": n, "app": app_id, "action": action})
            while True:
                msg = ws.recv(timeout=1000)  # the server's own limit for an install is 900 s
                if msg.get("id") != n:
                    continue
                if msg.get("type") == "progress":
                    show(f"{app_id}: {_describe(msg.get('event'))}")
                    continue
                results.append(_outcome(app_id, action, msg))
                break
            if not as_json:
                _report(results[-1])
    if as_json:
        print(json.dumps({"action": action, "results": results}, indent=2))
    return OK if all(r["ok"] for r in results) else FAILED


def _outcome(app_id: str, action: str, msg: dict[str, Any]) -> dict[str, Any]:
    if not msg.get("ok"):
        return {"app": app_id, "ok": False, "state": None, "message": safe(msg.get("message") or msg.get("error"))}
    data = msg.get("data")
    app = data.get("app") if isinstance(data, dict) else None
    app = app if isinstance(app, dict) else {}
    state = app.get("state")
    if action in ("enable", "disable"):  # done when the unit's start at boot is as asked
        result = data.get("result") if isinstance(data, dict) else None
        enabled = result.get("enabled") if isinstance(result, dict) else None
        ok = enabled is (action == "enable")
        why = "" if ok else f"{app_id} is {'not ' if action == 'enable' else ''}enabled"
        return {"app": app_id, "ok": ok, "state": state, "enabled": enabled, "message": why}
    ok = state not in ("install_failed",) if action == "install" else state in DONE.get(action, (state,))
    why = "" if ok else safe(app.get("last_error") or f"{app_id} is {state}")
    return {"app": app_id, "ok": ok, "state": state, "message": why}


def _report(r: dict[str, Any]) -> None:
    if r["ok"] and "enabled" in r:
        print(f"{r['app']}: {'starts' if r['enabled'] else 'does not start'} at boot ({r['state']})")
    elif r["ok"]:
        print(f"{r['app']}: {r['state']}")
    else:
        where = f" ({r['state']})" if r["state"] else ""
        print(f"{r['app']}: failed{where}: {r['message']}", file=sys.stderr)


def _describe(event: Any) -> str:
    if not isinstance(event, dict):
        return "…"
    if "step" in event:  # install progress: venv, requirements, setup i/n, pip's lines, done
        return safe(f"{event['step']} {str(event.get('detail') or '')[:70]}".strip())
    if "state" in event:
        return safe(event["state"])
    return safe(event.get("kind", "…"))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A live line on stderr in a terminal (rich: spinner, pulsing bar, elapsed time); silent when piped."""
    if not enabled:
        yield lambda text: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}", markup=False),
                  console=Console(stderr=True), transient=True,
                  redirect_stdout=sys.stdout.isatty()) as bar:  # piped results go to the pipe
        task = bar.add_task("", total=None)
        yield lambda text: bar.update(task, description=text, refresh=True)  # each step is seen


# --- status ---------------------------------------------------------------------------------------
def status(server: Server, app_id: str | None, as_json: bool) -> int:
    if app_id is None:
        data = server.get("/api/apps")
        apps = data.get("apps") if isinstance(data, dict) else data
    else:
        apps = [server.get(f"/api/apps/{quote(app_id, safe='')}")]
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise Failed(f"{server.base} answered, but not with apps: is --port right?")
    if as_json:
        print(json.dumps(apps if app_id is None else apps[0], indent=2))
        return OK
    print(f"{'ID':<24} {'TYPE':<10} {'STATE':<18} {'PORT':<6} {'CPU':<6} {'MEMORY':<9} LAST ERROR")
    for a in apps:
        res = a.get("resources") if isinstance(a.get("resources"), dict) else {}
        cpu = res.get("cpu_percent")
        mem = res.get("memory")  # bytes (homehelper.monitor.apps)
        print(f"{safe(a.get('id')):<24} {safe(a.get('type') or '-'):<10} {safe(a.get('state') or '-'):<18} "
              f"{a.get('port') or '-':<6} {_num(cpu, '%'):<6} {_bytes(mem):<9} {safe(a.get('last_error') or '')[:80]}")
    return OK


def _num(value: Any, unit: str) -> str:
    return f"{value:.0f}{unit}" if isinstance(value, (int, float)) else "-"


def _bytes(value: Any) -> str:
    return f"{value / 2**20:.1f}M" if isinstance(value, (int, float)) else "-"


# --- logs -----------------------------------------------------------------------------------------


def since_arg(text: str) -> datetime:
    """`10m`, `2h`, `1d`, `30s`, or an ISO time (local time when it names no zone)."""
    try:
        return logsearch.parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 10m, 2h, 1d, 30s or an ISO time") from None


class LineFilter(logsearch.LineFilter):
    """--since and --grep as the server applies them (homehelper.backends.logsearch): a line without
    a timestamp goes with the dated line above it; before any dated line, it is kept."""

    def __init__(self, since: datetime | None, grep: str | None) -> None:
        super().__init__(logsearch.Query(grep=grep, since=since))


def logs(server: Server, args: argparse.Namespace) -> int:
    # The server searches (every rotated file, or the journal) and sends the last N matches.
    search = {"grep": args.grep, "since": args.since.isoformat() if args.since else None}
    search = {k: v for k, v in search.items() if v}
    out = _printer(args.app, args.json)
    if not args.follow:
        data = server.get(f"/api/apps/{quote(args.app, safe='')}/logs", lines=args.lines, **search)
        lines = data.get("lines") if isinstance(data, dict) else None
        for line in [str(ln) for ln in lines or ()][-args.lines:]:
            out(line)
        return OK
    with server.websocket() as ws:
        ws.send({"type": "logs.follow", "id": 1, "app": args.app, "lines": args.lines, **search})
        while True:
            msg = ws.recv(timeout=None)  # the server pings every 25 s; a dead one closes the socket
            if msg.get("id") != 1:
                continue
            if msg.get("type") == "error":
                raise Failed(safe(msg.get("message")))
            if msg.get("type") == "reply":
                data = msg.get("data")
                first = data.get("lines") if isinstance(data, dict) else None
                for line in [str(ln) for ln in first or ()][-args.lines:]:
                    out(line)
            elif msg.get("type") == "log":
                batch = msg.get("lines")
                for line in map(str, batch if isinstance(batch, list) else ()):
                    out(line)


def _printer(app_id: str, as_json: bool) -> Callable[[str], None]:
    def out(line: str) -> None:
        # --json: one object per line (NDJSON), so a follow can be read as it comes.
        print(json.dumps({"app": app_id, "line": line}) if as_json else safe(line), flush=True)

    return out
