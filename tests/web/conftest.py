"""A real actor tree (supervisors, broadcast, ports, TTL clock, registry, scanner, event log, sensors)
over a real apps folder, and the real web app served by Hypercorn on a real port.

Until the service backend's ServiceApp lands, apps here run through `ProcApp`, an AppActor that
really spawns its program (a Python script) and logs its output to logs/<id>/app.log.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.app import AppActor, AppContext
from homehelper.actors.eventlog import EventLog
from homehelper.actors.ports import PortAllocator
from homehelper.actors.readmodel import AppsView
from homehelper.actors.registry import Registry
from homehelper.actors.scanner import Scanner
from homehelper.actors.sensors import SensorActor
from homehelper.actors.service import ServiceApp
from homehelper.actors.ttl import TTLClock
from homehelper.approvals import ApprovalStore
from homehelper.backends.exposure import ExposureMeter
from homehelper.backends.installer import Installer
from homehelper.backends.process import ProcessBackend
from homehelper.config import Config
from homehelper.errors import Conflict
from homehelper.messages import AppProcessChanged, AppStarted, AppStopped, ListApps
from homehelper.web import WebDeps, create_app
from homehelper.web.auth import Auth, auth_file
from homehelper.web.server import serve_app

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
    bus: Broadcast
    root: Supervisor
    apps: Supervisor
    deps: WebDeps
    app_ids: list[str]


async def build_tree(nursery: trio.Nursery, root: Path, n_apps: int = 3, *, sensors: bool = True,
                     auth: Auth | None = None, backend: Any = None, **config_kw: Any) -> Tree:
    """With `backend` (a ProcessBackend, say) the apps are the real ServiceApp on it; else ProcApp."""
    if backend is not None:
        lo = random.randrange(20000, 29000, 100)  # real apps bind: a range no other test uses now
        config_kw.setdefault("service_ports", (lo, lo + 99))
    config = Config(root=root, apps_dir=root / "apps", **config_kw)
    app_ids = make_apps(config.apps_dir, n_apps, service=backend is not None)
    bus = Broadcast()
    sup = Supervisor("root", emit=bus.publish)
    await nursery.start(sup.run)
    apps = Supervisor("apps", emit=bus.publish)
    await nursery.start(apps.run)
    ranges = {"service": config.service_ports, "streamlit": config.streamlit_ports}
    ports = sup.start_child(ChildSpec("ports", lambda: PortAllocator(ranges, config.registry_dir / "ports.json")))
    ttl = sup.start_child(ChildSpec("ttl", TTLClock))
    events = sup.start_child(ChildSpec("eventlog", lambda: EventLog(bus, config.event_history)))
    approvals = await ApprovalStore.open(config.registry_dir)
    ctx = AppContext(config=config, emit=bus.publish, ports=ports, ttl=ttl, approvals=approvals)
    factory: Any = lambda m: ProcApp(m, ctx)  # noqa: E731
    if backend is not None:
        await nursery.start(backend.run)
        ctx.backend, ctx.installer, ctx.exposure = backend, Installer(config), ExposureMeter()
        factory = lambda m: ServiceApp(m, ctx)  # noqa: E731
    view = AppsView()
    registry = sup.start_child(ChildSpec("registry", lambda: Registry(apps, factory, bus,
                                                                      config.registry_dir / "apps.json",
                                                                      approvals=approvals, view=view)))
    scanner = sup.start_child(ChildSpec("scanner", lambda: Scanner(config.apps_dir, registry, bus.publish)))
    sensor_ref = sup.start_child(ChildSpec("sensors", lambda: SensorActor(config, bus.publish, bus))) if sensors \
        else None
    if auth is None:
        auth = Auth(auth_file(root), config.auth.session_hours)
        auth.ensure_password({"HOMEHELPER_PASSWORD": PASSWORD})
    deps = WebDeps(config=config, bus=bus, registry=registry, apps=apps, scanner=scanner, view=view, sensors=sensor_ref,
                   event_log=events, ttl=ttl, auth=auth)
    with trio.fail_after(10):
        while len(await registry.ask(ListApps())) < n_apps:  # noqa: ASYNC110 - no event says "scan applied"
            await trio.sleep(0.01)
    return Tree(config, bus, sup, apps, deps, app_ids)


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
async def live_services(nursery: trio.Nursery, state_root: Path) -> AsyncIterator[Live]:
    """The live server over real ServiceApps on the process backend (a venv each, /health polled)."""
    from tests.fixtures.systemd import _stop_processes

    backend = ProcessBackend(state_root / "run" / "procs")
    try:
        yield await start_live(nursery, state_root, backend=backend)
    finally:
        _stop_processes(backend)  # the process backend's apps outlive their HomeHelper, by design
