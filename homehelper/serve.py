"""The composition root: build the actor tree, serve the web app, stop cleanly.

root supervisor: ports, ttl, eventlog, sensors, ui, registry, bridge, scanner
apps supervisor: one actor per app (ServiceApp or StreamlitApp), named by app id
backend: systemd when a manager answers, else supervised subprocesses
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from .actors import Broadcast, ChildSpec, Supervisor
from .actors.app import AppActor, AppContext
from .actors.bridge import RedisBridge
from .actors.eventlog import EventLog
from .actors.ports import PortAllocator
from .actors.registry import Registry
from .actors.scanner import Scanner
from .actors.sensors import SensorActor
from .actors.service import ServiceApp
from .actors.streamlit import StreamlitApp
from .actors.ttl import TTLClock
from .backends import choose_backend
from .backends.installer import Installer
from .config import Config
from .errors import HomeHelperError
from .manifest import Manifest
from .messages import ServerStarted, SetMonitorConfig
from .monitor import ProcessTable
from .ui import UIManager
from .web import WebDeps, create_app, serve_app
from .web.auth import open_auth
from .web.ops import persist_config_change

log = logging.getLogger("homehelper")

SHUTDOWN_GRACE = 4.0  # `homehelper serve` must be gone within 5 s of SIGTERM


@attrs.define
class Runtime:
    """Handles on a running tree, for tests and the CLI."""

    config: Config
    bus: Broadcast
    root: Supervisor
    apps: Supervisor
    refs: dict[str, Any]
    ctx: AppContext
    url: str = ""
    cancel_scope: trio.CancelScope | None = None

    def stop(self) -> None:
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()


def app_factory(ctx: AppContext) -> Callable[[Manifest], AppActor]:
    def make(manifest: Manifest) -> AppActor:
        if manifest.type == "streamlit":
            return StreamlitApp(manifest, ctx)
        return ServiceApp(manifest, ctx)

    return make


async def build_tree(config: Config, nursery: trio.Nursery) -> Runtime:
    """Start every actor under `nursery`; returns once they are running."""
    bus = Broadcast()
    # Recording from the first event on; the same instance across restarts keeps the ring.
    eventlog = EventLog(bus, config.event_history)
    root = Supervisor("root", emit=bus.publish)
    await nursery.start(root.run)
    apps = Supervisor("apps", emit=bus.publish)
    await nursery.start(apps.run)
    ranges = {"service": config.service_ports, "streamlit": config.streamlit_ports}
    ports = root.start_child(ChildSpec("ports", lambda: PortAllocator(ranges, config.registry_dir / "ports.json",
                                                                     bus.publish)))
    ttl = root.start_child(ChildSpec("ttl", TTLClock))
    root.start_child(ChildSpec("eventlog", lambda: eventlog))
    # Before any app actor starts, so the sensors see every AppProcessChanged.
    procs = ProcessTable.following(bus)
    sensors = root.start_child(ChildSpec("sensors", lambda: SensorActor(config, bus.publish, bus, procs)))
    backend = await choose_backend(config)  # says which at start
    await nursery.start(backend.run)  # batches systemctl calls; up before any app actor
    # ctx.config is the live config: a change made through the API is read from here.
    ctx = AppContext(config=config, emit=bus.publish, ports=ports, ttl=ttl,
                     extra={"apps": apps, "backend": backend, "installer": Installer(config)})
    ui = root.start_child(ChildSpec("ui", lambda: UIManager(config, apps=apps, live=lambda: ctx.config)))
    ctx.extra["ui"] = ui
    factory = app_factory(ctx)
    registry = root.start_child(ChildSpec("registry", lambda: Registry(apps, factory, bus,
                                                                       config.registry_dir / "apps.json")))
    # The bridge subscribes before the first scan, so discovery reaches Redis too.
    bridge = root.start_child(ChildSpec("bridge", lambda: RedisBridge(
        bus, config.redis_url, config.node_id, history=config.event_history, apps=registry)))
    scanner = root.start_child(ChildSpec("scanner", lambda: Scanner(config.apps_dir, registry, bus.publish)))
    refs = dict(backend=backend, ui=ui, bridge=bridge, ports=ports, ttl=ttl, registry=registry, scanner=scanner,
                sensors=sensors, eventlog=eventlog)
    return Runtime(config, bus, root, apps, refs, ctx)


async def serve(config: Config, *, task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED) -> None:
    """Run HomeHelper until cancelled. Reports the Runtime once the server listens."""
    for sub in ("config", "registry", "run", "data", "logs"):
        (config.root / sub).mkdir(parents=True, exist_ok=True)
    auth = open_auth(config)  # before any task: a damaged auth.json stops the start as one plain error
    async with trio.open_nursery() as nursery:
        rt = await build_tree(config, nursery)
        rt.cancel_scope = nursery.cancel_scope
        deps = WebDeps(config=config, bus=rt.bus, registry=rt.refs["registry"], apps=rt.apps,
                       scanner=rt.refs["scanner"], sensors=rt.refs["sensors"], ttl=rt.refs["ttl"],
                       event_log=rt.refs["eventlog"], bridge=rt.refs["bridge"], auth=auth)
        sensors = rt.refs["sensors"]

        async def set_config(changes: dict[str, Any]) -> Config:
            new = await persist_config_change(deps.config, rt.bus, changes)  # announces ConfigChanged
            if new.monitor != deps.config.monitor:
                await sensors.tell(SetMonitorConfig(new.monitor))
            logging.getLogger().setLevel(new.log_level)
            rt.ctx.config = new  # app actors and the UI manager read streamlit.* from here
            return new

        deps.set_config = set_config
        web = create_app(deps)
        # the dashboard, and app pages on their own port (apps_port); stopped by cancellation
        bound: list[str] = await nursery.start(partial(serve_app, web, config.host, config.port, trio.Event(),
                                                       graceful=2.0))
        rt.url = bound[0] if bound else f"http://{config.host}:{config.port}"
        rt.bus.publish(ServerStarted(rt.url, backend=rt.refs["backend"].name))
        log.info("HomeHelper serving %s (apps in %s, state in %s)", rt.url, config.apps_dir, config.root)
        task_status.started(rt)


def run_forever(config: Config) -> int:
    """`homehelper serve`: run until Ctrl-C or SIGTERM, then stop within SHUTDOWN_GRACE."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rt: Runtime = await nursery.start(serve, config)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("%s: stopping", signal.Signals(signum).name)
                    break
            rt.stop()
            nursery.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:  # a start that stopped on one HomeHelperError: that error, plainly
        only = group.exceptions[0] if len(group.exceptions) == 1 else None
        if isinstance(only, HomeHelperError):
            raise only from None
        raise
    return 0
