"""The composition root: build the actor tree, serve the web app, stop cleanly.

root supervisor: ports, ttl, eventlog, sensors, slots, registry, bridge, scanner
apps supervisor: one actor per app (ServiceApp or StreamlitApp), named by app id
backend: systemd when a manager answers, else supervised subprocesses
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import attrs
import trio

from .actors import Actor, Broadcast, ChildSpec, RestartPolicy, Supervisor
from .actors.app import AppActor, AppContext
from .actors.backup import BackupActor
from .actors.bridge import RedisBridge
from .actors.eventlog import EventLog
from .actors.fleet import FleetActor, FleetLink, node_summary
from .actors.history import HistoryActor
from .actors.job import JobApp
from .actors.machineview import MachineView
from .actors.notifier import Notifier
from .actors.ports import PortAllocator
from .actors.readmodel import AppsView
from .actors.registry import Registry
from .actors.scanner import Scanner
from .actors.sensors import SensorActor
from .actors.service import ServiceApp
from .actors.settings import Settings
from .actors.streamlit import StreamlitApp
from .actors.streamlit_slots import StreamlitSlots
from .actors.ttl import TTLClock
from .actors.updater import Updater
from .approvals import ApprovalStore
from .backends import SystemdBackend, choose_backend
from .backends.base import Backend
from .backends.exposure import ExposureMeter
from .backends.installer import Installer
from .bus.acl import AppIdentities
from .config import Config
from .errors import HomeHelperError
from .manifest import Manifest
from .messages import ChangeConfig, Event, ServerStarted, SetMonitorConfig
from .monitor import ProcessTable
from .stateroot import RootLock, lock_root, prepare_root
from .web import WebDeps, create_app, serve_app
from .web.auth import Auth, open_auth
from .web.fleet import performer
from .web.logs import log_sources

log = logging.getLogger("homehelper")

SHUTDOWN_GRACE = 4.0  # `homehelper serve` must be gone within 5 s of SIGTERM
CONFIG_TIMEOUT = 60.0  # changes queue behind each other; each is one small fsync'd write


@attrs.define
class Runtime:
    """Handles on a running tree, for tests and the CLI."""

    config: Config
    broadcast: Broadcast
    root: Supervisor
    apps: Supervisor
    refs: dict[str, Any]
    ctx: AppContext
    settings: Settings  # the live config's one owner: `settings.current`, ChangeConfig to its ref
    instances: dict[str, Any] = attrs.field(factory=dict)  # the latest instance of root actors (introspection)
    deps: WebDeps | None = None
    url: str = ""
    cancel_scope: trio.CancelScope | None = None

    def stop(self) -> None:
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()


def app_factory(ctx: AppContext) -> Callable[[Manifest], AppActor]:
    def make(manifest: Manifest) -> AppActor:
        if manifest.type == "streamlit":
            return StreamlitApp(manifest, ctx)
        if manifest.type == "job":
            return JobApp(manifest, ctx)
        return ServiceApp(manifest, ctx)

    return make


@attrs.frozen(kw_only=True)
class Overrides:
    """What a test or a benchmark changes in the tree `build_tree` makes; the defaults are `serve`'s.

    Everything else (ports from `config.service_ports`/`streamlit_ports`, the TTL clock on trio's
    clock, so a `MockClock` drives it) comes from the config and the running trio loop."""

    backend: Backend | None = None  # None: `choose_backend(config)`, systemd when a manager answers
    broadcast: Broadcast | None = None  # a broadcast the caller subscribed to before the first event
    app_factory: Callable[[AppContext], Callable[[Manifest], Actor]] | None = None  # None: ServiceApp/StreamlitApp
    policy: RestartPolicy | None = None  # both supervisors' restart policy; None: the runtime's default
    scan: bool = True  # False: no scanner; the caller starts app actors under `Runtime.apps` itself
    scanner_follows: bool = True  # the scanner hands a restarted registry the apps again
    watch: bool = True  # the scanner watches apps/ (inotify): folders appear without a rescan
    sensors: bool = True  # False: no sensor actor (no background sampling)
    ui_memory: Callable[[], float] | None = None  # the Streamlit slots's reading of available memory (MB)
    ui_memory_check: float | None = None  # below this many MB it refuses to open another app


def _remembered(instances: dict[str, Any], name: str, make: Callable[[], Any]) -> Callable[[], Any]:
    def factory() -> Any:
        instances[name] = actor = make()
        return actor

    return factory


async def build_tree(config: Config, nursery: trio.Nursery, overrides: Overrides | None = None) -> Runtime:
    """Start every actor under `nursery`; returns once they are running (the first scan may still run:
    wait for `ScanApplied` on a bus passed in `overrides`)."""
    o = overrides if overrides is not None else Overrides()
    broadcast = o.broadcast if o.broadcast is not None else Broadcast()
    # Recording from the first event on; the same instance across restarts keeps the ring.
    eventlog = EventLog(broadcast, config.event_history)
    notifier = Notifier(config.notify, broadcast)  # the same: following from the first event; notify.* read at start
    # The live config's owner; actors restarted later are built from its current value.
    settings = Settings(config, broadcast.publish)
    live = lambda: settings.current  # noqa: E731
    instances: dict[str, Any] = {}
    root = Supervisor("root", o.policy, emit=broadcast.publish)
    await nursery.start(root.run)
    apps = Supervisor("apps", o.policy, emit=broadcast.publish)
    await nursery.start(apps.run)
    settings_ref = root.start_child(ChildSpec("settings", lambda: settings))
    ranges = {"service": config.service_ports, "streamlit": config.streamlit_ports}
    ports = root.start_child(ChildSpec("ports", lambda: PortAllocator(ranges, config.registry_dir / "ports.json",
                                                                     broadcast.publish)))
    ttl = root.start_child(ChildSpec("ttl", TTLClock))
    root.start_child(ChildSpec("eventlog", lambda: eventlog))
    notifier_ref = root.start_child(ChildSpec("notifier", lambda: notifier))
    # Before any app actor starts, so the sensors see every AppProcessChanged.
    procs = ProcessTable.following(broadcast)
    machine = MachineView()  # the sensors' and the history's read model, read by the web; one across restarts
    sensors = root.start_child(ChildSpec("sensors", _remembered(instances, "sensors", lambda: SensorActor(
        live(), broadcast.publish, broadcast, procs, view=machine)))) if o.sensors else None
    backend = o.backend if o.backend is not None else await choose_backend(config)  # says which at start
    await nursery.start(backend.run)  # batches systemctl calls; up before any app actor
    installer = Installer(config, sandbox=backend if isinstance(backend, SystemdBackend) else None)
    approvals = await ApprovalStore.open(config.registry_dir)  # the one writer of approvals.json
    # Each app's Redis credentials: made by the bridge's side, handed to app actors through ctx.
    identities = AppIdentities(config.redis_url, config.node_id, config.redis_acl)
    # ctx.config is the live config as app actors read it; the settings actor keeps it current.
    ctx = AppContext(config=config, emit=broadcast.publish, ports=ports, ttl=ttl, identities=identities,
                     apps=apps, backend=backend, installer=installer, approvals=approvals,
                     exposure=ExposureMeter(config.registry_dir / "exposure.json"))
    ui_kw: dict[str, Any] = {} if o.ui_memory is None else {"memory": o.ui_memory}
    if o.ui_memory_check is not None:
        ui_kw["memory_check"] = o.ui_memory_check
    slots = root.start_child(ChildSpec("slots", _remembered(
        instances, "slots", lambda: StreamlitSlots(live(), apps=apps, live=lambda: ctx.config, **ui_kw))))
    ctx.slots = slots
    factory = (o.app_factory or app_factory)(ctx)
    view = AppsView()  # the registry's read model, read by the web; one across registry restarts
    registry = root.start_child(ChildSpec("registry", lambda: Registry(apps, factory, broadcast,
                                                                       config.registry_dir / "apps.json",
                                                                       approvals=approvals, view=view)))
    # The bridge subscribes before the first scan, so discovery reaches Redis too. It follows
    # redis_url from ConfigChanged; a restarted bridge starts from the current value.
    bridge = root.start_child(ChildSpec("bridge", _remembered(instances, "bridge", lambda: RedisBridge(
        broadcast, live().redis_url, config.node_id, history=config.event_history, registry=registry,
        identities=identities))))
    # Keeps the sensors' samples and Redis's figures in <root>/history.sqlite (batched writes).
    history = root.start_child(ChildSpec("history", _remembered(instances, "history", lambda: HistoryActor(
        live(), broadcast.publish, broadcast, bridge, view=machine))))
    scanner = root.start_child(ChildSpec("scanner", lambda: Scanner(
        config.apps_dir, registry, broadcast.publish, follow=broadcast if o.scanner_follows else None,
        watch=o.watch))) if o.scan else None
    backup = root.start_child(ChildSpec("backup", lambda: BackupActor(config, broadcast.publish, apps, installer)))
    updater = root.start_child(ChildSpec("updater", lambda: Updater(config, broadcast, apps, scanner)))  # add/update
    # Presence in the fleet's Redis, and commands from other nodes acted on like the web's own.
    fleet_link = FleetLink(config.redis_url, config.node_id, timeout=config.fleet.command_timeout)
    fleet_link.address = config.fleet.address
    fleet = root.start_child(ChildSpec("fleet", _remembered(instances, "fleet", lambda: FleetActor(
        fleet_link, partial(node_summary, fleet_link, view, sensors), performer(view, apps, sensors, machine),
        broadcast.publish, interval=config.fleet.interval, ttl=config.fleet.ttl))))

    async def follow(old: Config, new: Config) -> None:
        ctx.config = new  # app actors and the Streamlit slots read streamlit.* (and redis_url at a start) here
        installer.config = new  # monitor.min_free_disk_mb
        fleet_link.set_url(new.redis_url)  # the fleet moves with the bridge (a no-op when unchanged)
        logging.getLogger().setLevel(new.log_level)
        if new.monitor != old.monitor and sensors is not None:
            await sensors.tell(SetMonitorConfig(new.monitor))
            await history.tell(SetMonitorConfig(new.monitor))  # the Redis alert levels

    settings.follow(follow)
    refs = dict(backend=backend, slots=slots, bridge=bridge, ports=ports, ttl=ttl, registry=registry, scanner=scanner,
                sensors=sensors, eventlog=eventlog, settings=settings_ref, notifier=notifier_ref, view=view,
                machine=machine, backup=backup, history=history, updater=updater,
                fleet=fleet, fleet_link=fleet_link)
    return Runtime(config, broadcast, root, apps, refs, ctx, settings, instances)


def web_deps(rt: Runtime, auth: Auth | None) -> WebDeps:
    """What the web app talks to in the tree `rt`, following the live config; sets `rt.deps`.

    serve and the tests' web fixtures both call it: a new dependency of the web goes here."""
    config = rt.config
    deps = WebDeps(config=config, broadcast=rt.broadcast, apps=rt.apps,
                   scanner=rt.refs["scanner"], view=rt.refs["view"], sensors=rt.refs["sensors"],
                   event_log=rt.refs["eventlog"], bridge=rt.refs["bridge"], auth=auth,
                   notifier=rt.refs["notifier"], logs=log_sources(rt.refs["backend"]),
                   backup=rt.refs["backup"], history=rt.refs["history"], updater=rt.refs.get("updater"),
                   fleet=rt.refs["fleet_link"], machine=rt.refs["machine"],
                   bus_state=lambda: rt.instances["bridge"].state())  # plain reads: no hop per refresh
    settings_ref = rt.refs["settings"]

    async def set_config(changes: dict[str, Any]) -> Config:
        new: Config = await settings_ref.ask(ChangeConfig(changes), timeout=CONFIG_TIMEOUT)
        return new

    def follow_web(old: Config, new: Config) -> None:
        deps.config = new  # auth.loopback_without_login, what GET /api/config shows
        if deps.auth is not None:
            deps.auth.session_seconds = new.auth.session_hours * 3600.0

    deps.set_config = set_config
    rt.settings.follow(follow_web)
    rt.deps = deps
    return deps


async def serve(config: Config, *, lock: RootLock | None = None, notices: Sequence[Event] = (),
                overrides: Overrides | None = None,
                task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED) -> None:
    """Run HomeHelper until cancelled. Reports the Runtime once the server listens.

    The state root is locked first (Conflict naming the holder when another HomeHelper has it),
    unless the caller holds `lock` already; `notices` are published once the event log records.
    """
    own = lock is None
    held = await trio.to_thread.run_sync(lock_root, config.root) if lock is None else lock
    try:
        await trio.to_thread.run_sync(prepare_root, config.root)
        await _serve(config, notices, overrides, task_status)
    finally:
        if own:
            held.release()


async def _serve(config: Config, notices: Sequence[Event], overrides: Overrides | None,
                 task_status: trio.TaskStatus[Runtime]) -> None:
    # before any task: a damaged auth.json stops the start as one plain error
    auth = await trio.to_thread.run_sync(open_auth, config)
    async with trio.open_nursery() as nursery:
        rt = await build_tree(config, nursery, overrides)
        for notice in notices:
            rt.broadcast.publish(notice)
        rt.cancel_scope = nursery.cancel_scope
        web = create_app(web_deps(rt, auth))
        # the dashboard, and app pages on their own port (apps_port); stopped by cancellation
        bound: list[str] = await nursery.start(partial(serve_app, web, config.host, config.port, trio.Event(),
                                                       graceful=2.0))
        rt.url = bound[0] if bound else f"http://{config.host}:{config.port}"
        rt.refs["fleet_link"].address = config.fleet.address or rt.url  # what the other nodes' cards link to
        rt.broadcast.publish(ServerStarted(rt.url, backend=rt.refs["backend"].name))
        log.info("HomeHelper serving %s (apps in %s, state in %s)", rt.url, config.apps_dir, config.root)
        task_status.started(rt)


def settle_heap() -> None:
    """Once the server listens: what start-up made (modules, the actor tree, the web app; ~90,000
    objects) lives as long as the process, so it leaves the cyclic collector's generations. A full
    collection then walks only what came since: 15-60 ms pauses that stalled every websocket reply
    at once become a few milliseconds (benchmarks/dashboard.py). Collected first, so no garbage of
    start-up is kept for ever."""
    gc.collect()
    gc.freeze()


def run_forever(config: Config, lock: RootLock | None = None, notices: Sequence[Event] = ()) -> int:
    """`homehelper serve`: run until Ctrl-C or SIGTERM, then stop within SHUTDOWN_GRACE."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            rt: Runtime = await nursery.start(partial(serve, config, lock=lock, notices=notices))
            settle_heap()
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
