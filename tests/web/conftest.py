"""`serve`'s actor tree (serve.build_tree) over a real apps folder of service apps, and the real web app
served by Hypercorn on a real port.

With `service=True` (`live_services`, or a test's own backend) the apps are the real ServiceApp (a venv
each, a /health server polled). Otherwise they run through `ProcApp` (the one override of `serve`'s
wiring here): an AppActor that spawns its program and is `running` once it is spawned, which the REST
tests' replies expect until REST acts and settles like the websocket (issue 13.3).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from homehelper.actors import Broadcast, Supervisor
from homehelper.actors.app import AppActor
from homehelper.backends.process import ProcessBackend
from homehelper.config import Config
from homehelper.errors import Conflict
from homehelper.messages import AppProcessChanged, AppStarted, AppStopped, ScanApplied
from homehelper.serve import Overrides, Runtime, web_deps
from homehelper.serve import build_tree as build_tree_of
from homehelper.web import WebDeps, create_app
from homehelper.web.auth import Auth, auth_file
from homehelper.web.listener import serve_app
from tests.fixtures.systemd import _stop_processes
from tests.fixtures.tree import Recorder

PASSWORD = "correct horse battery"

APP_MAIN = """\
import sys, time
print("hello from", sys.argv[0], flush=True)
n = 0
while True:
    n += 1
    print("tick", n, flush=True)
    time.sleep(0.2)
"""


class ProcApp(AppActor):
    """Runs the app's entry point as a real child process (stdout and stderr to logs/<id>/app.log)."""

    proc: trio.Process | None = None

    async def start(self, reason: str) -> Any:
        if self.proc is not None:
            raise Conflict(f"{self.app_id} is already running", app=self.app_id)
        self.set_state("starting", reason)
        await self.allocate_port()
        log_dir = self.ctx.config.logs_dir(self.app_id)
        log_dir.mkdir(parents=True, exist_ok=True)
        out = os.open(log_dir / "app.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            self.proc = await trio.lowlevel.open_process(
                [sys.executable, "-u", str(self.manifest.entry_path)], stdout=out, stderr=out,
                cwd=self.manifest.path)
        finally:
            os.close(out)
        self.ctx.emit(AppProcessChanged(self.app_id, self.proc.pid))  # the sensor actor measures it from now on
        await trio.sleep(0.05)  # a real start takes a moment: lets progress be seen
        self.ctx.emit(AppStarted(self.app_id, self.port, reason))
        self.set_state("running", reason)
        return self.snapshot()

    async def stop(self, reason: str) -> Any:
        if self.proc is None:
            raise Conflict(f"{self.app_id} is not running", app=self.app_id)
        self.set_state("stopping", reason)
        status = await self._kill()
        self.ctx.emit(AppStopped(self.app_id, reason, status))
        self.set_state("stopped", reason)
        return self.snapshot()

    async def _kill(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        proc.terminate()
        with trio.move_on_after(3):
            return await proc.wait()
        proc.kill()
        return await proc.wait()

    async def on_stop(self) -> None:
        await self._kill()


# For the real ServiceApp: a /health server on HH_PORT that also logs a line now and then.
SERVICE_MAIN = """\
import http.server, os, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
def ticks():
    n = 0
    while True:
        n += 1
        print("tick", n, flush=True)
        time.sleep(0.2)
print("hello from", os.environ["HH_APP_ID"], "on port", os.environ["HH_PORT"], flush=True)
threading.Thread(target=ticks, daemon=True).start()
http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H).serve_forever()
"""


def make_apps(apps_dir: Path, n: int, prefix: str = "app", service: bool = False) -> list[str]:
    ids = []
    for i in range(n):
        app_id = f"{prefix}-{i:02d}"
        folder = apps_dir / app_id
        folder.mkdir(parents=True)
        manifest: dict[str, Any] = {"id": app_id, "name": f"App {i}", "type": "service"}
        if service:
            manifest["health"] = {"interval": 5, "timeout": 1, "failures": 2, "grace": 10}
        (folder / "homehelper.json").write_text(json.dumps(manifest))
        (folder / "main.py").write_text(SERVICE_MAIN if service else APP_MAIN)
        ids.append(app_id)
    return ids


@attrs.define
class Tree:
    config: Config
    broadcast: Broadcast
    root: Supervisor
    apps: Supervisor
    deps: WebDeps
    app_ids: list[str]
    rt: Runtime
    recorder: Recorder  # every event since the tree started: wait on them (recorder.wait)


async def _stop_apps_at_the_end(backend: ProcessBackend) -> None:
    """The process backend's apps outlive their HomeHelper, by design: a test's end kills them."""
    try:
        await trio.sleep_forever()
    finally:
        _stop_processes(backend)


async def build_tree(nursery: trio.Nursery, root: Path, n_apps: int = 3, *, sensors: bool = True,
                     auth: Auth | None = None, backend: Any = None, service: bool | None = None,
                     **config_kw: Any) -> Tree:
    """`serve`'s tree (serve.build_tree) over `n_apps` real service apps, the first scan applied.

    The apps run on `backend`, else on a process backend under the state root (killed at the end);
    `service=True` (the default with a `backend`): real ServiceApps with a /health server (SERVICE_MAIN),
    else ProcApps that print (APP_MAIN)."""
    lo = random.randrange(20000, 29000, 100)  # real apps bind: a range no other test uses now
    config_kw.setdefault("service_ports", (lo, lo + 99))
    config = Config(root=root, apps_dir=root / "apps", **config_kw)
    service = backend is not None if service is None else service
    app_ids = make_apps(config.apps_dir, n_apps, service=service)
    if backend is None:
        backend = ProcessBackend(config.run_dir / "procs")
        nursery.start_soon(_stop_apps_at_the_end, backend)
    broadcast = Broadcast()
    recorder = Recorder(broadcast)
    factory = None if service else (lambda ctx: lambda m: ProcApp(m, ctx))
    rt = await build_tree_of(config, nursery, Overrides(backend=backend, broadcast=broadcast, sensors=sensors,
                                                        app_factory=factory))
    if auth is None:
        auth = Auth(auth_file(root), config.auth.session_hours)
        auth.ensure_password({"HOMEHELPER_PASSWORD": PASSWORD})
    deps = web_deps(rt, auth)
    await recorder.wait(ScanApplied, timeout=10)
    return Tree(config, broadcast, rt.root, rt.apps, deps, app_ids, rt, recorder)


@attrs.define
class Live:
    tree: Tree
    url: str
    app: Any
    shutdown: trio.Event

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def origin(self) -> str:
        return self.url

    async def login(self, client: httpx.AsyncClient, password: str = PASSWORD) -> str:
        """Log `client` in; returns the CSRF token."""
        r = await client.post(self.url + "/login", json={"password": password})
        assert r.status_code == 200, r.text
        return r.json()["csrf"]


async def start_live(nursery: trio.Nursery, root: Path, n_apps: int = 3, **kw: Any) -> Live:
    tree = await build_tree(nursery, root, n_apps, **kw)
    app = create_app(tree.deps)
    shutdown = trio.Event()
    urls = await nursery.start(serve_app, app, "127.0.0.1", 0, shutdown)
    return Live(tree, urls[0], app, shutdown)


@pytest.fixture
async def tree(nursery: trio.Nursery, state_root: Path) -> Tree:
    return await build_tree(nursery, state_root)


@pytest.fixture
async def live(nursery: trio.Nursery, state_root: Path) -> Live:
    return await start_live(nursery, state_root)


@pytest.fixture
async def live_services(nursery: trio.Nursery, state_root: Path) -> Live:
    """The live server over service apps with a /health server each (polled)."""
    return await start_live(nursery, state_root, service=True)
