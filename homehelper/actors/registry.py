"""The registry: which apps exist, what state each is in, and their actors.

It turns scans into app actors (one per valid app, under the `apps`
supervisor) and owns the read model of every app (readmodel.AppsView), which the
events the app actors publish update as they are published: the web reads it
directly (the app list, the proxy's ports, the time an opened UI has left). What must
survive a restart (the app's folder, type, manifest digest, whether the user
left it running) is written atomically, and only when it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..approvals import ApprovalStore
from ..errors import BadRequest, HomeHelperError
from ..manifest import Manifest
from ..messages import ApplyManifest, ApplyScan, GetApp, ListApps, ScanApplied, StartApp, StopApp
from ..storage import LatestWriter
from . import Actor, ActorError, Broadcast, ChildSpec, Supervisor
from .readmodel import AppRecord, AppsView
from .statefile import check_mapping, is_port, read_state

log = logging.getLogger(__name__)

AppFactory = Callable[[Manifest], Actor]
TAKEOVER_TIMEOUT = 2.0  # seconds an actor that outlived a crashed registry has to say its state


def _saved_entry(app_id: str, rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"must be an object, found {type(rec).__name__}"
    for key in ("name", "folder", "digest"):
        if not isinstance(rec.get(key), str):
            return f"{key} must be a string"
    if rec.get("type") not in ("service", "streamlit", "job"):
        return "type must be 'service', 'streamlit' or 'job'"
    if rec.get("desired") not in ("running", "stopped"):
        return "desired must be 'running' or 'stopped'"
    if rec.get("port") is not None and not is_port(rec["port"]):
        return "port must be a port number or null"
    if not isinstance(rec.get("user_stopped", False), bool):
        return "user_stopped must be true or false"
    return None


def check_saved(value: Any) -> tuple[dict[str, Any], list[str]]:
    """registry/apps.json: app id -> the persisted fields; bad entries are dropped (their apps rebuilt)."""
    return check_mapping(value, _saved_entry)


class Registry(Actor):
    name = "registry"

    def __init__(self, apps: Supervisor, factory: AppFactory, broadcast: Broadcast, state_file: Path | None,
                 approvals: ApprovalStore | None = None, view: AppsView | None = None) -> None:
        self.apps = apps
        self.factory = factory
        self.broadcast = broadcast
        self.state_file = state_file
        # Made by the composition root and handed to the web too, so it outlives a restart of this
        # actor (the web holds the same object); each registry starts it afresh from a scan.
        self.view = view if view is not None else AppsView()
        self.view.clear()
        self.records = self.view.records
        self.saved: dict[str, Any] = {}  # what the file holds (read in on_start)
        self.first_scan = True
        self.approvals = approvals
        # written on a worker thread, a burst of changes folded into one write
        self.writer = LatestWriter(state_file) if state_file is not None else None

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.state_file is not None:
            self.saved, damaged = await trio.to_thread.run_sync(
                read_state, self.state_file, check_saved, {},
                "apps rebuilt from a scan and what the backend reports running; the others stay stopped")
            if damaged is not None:
                self.broadcast.publish(damaged)
        # Applied inside publish (the filter queues nothing): current before the publisher goes on.
        nursery.start_soon(self._follow, self.broadcast.subscribe(maxlen=1, accept=self._on_event))
        if self.writer is not None:
            await nursery.start(self.writer.run)

    async def on_stop(self) -> None:
        self._save()
        if self.writer is not None:
            await self.writer.flush()

    async def handle(self, msg: Any) -> Any:
        match msg:
            case ApplyScan(manifests, invalid):
                await self._apply_scan(manifests, dict(invalid))
            case ListApps():
                return self.view.apps()
            case GetApp(app_id):
                return self.view.app(app_id)
            case _:
                raise BadRequest(f"registry: unknown message {type(msg).__name__}")

    async def _apply_scan(self, manifests: tuple[Manifest, ...], invalid: dict[str, tuple[str, ...]]) -> None:
        self.view.invalid = invalid
        found = {m.id: m for m in manifests}
        for app_id in self.records.keys() - found.keys():
            await self._remove(app_id)
        boot: list[str] = []
        for app_id, m in found.items():
            rec = self.records.get(app_id)
            if rec is not None and rec.type != m.type:
                await self._remove(app_id)
                rec = None
            if rec is None:
                saved = self.saved.get(app_id, {})
                rec = AppRecord(app_id, m.name, m.type, m.path.name, m.digest,
                                desired=saved.get("desired", "stopped"), port=saved.get("port"),
                                user_stopped=saved.get("user_stopped", False))
                self._fill(rec, m)
                self.records[app_id] = rec
                if app_id in self.apps:  # an actor that outlived a crash of this registry: take it over
                    await self._tell(app_id, ApplyManifest(m))
                    await self._catch_up(rec)
                else:
                    self.apps.start_child(ChildSpec(app_id, self._maker(app_id)))
                autostart = self.first_scan and m.autostart and not rec.user_stopped
                if m.type in ("service", "job") and (rec.desired == "running" or autostart):  # job: armed
                    boot.append(app_id)
            elif rec.digest != m.digest or rec.manifest != m:
                self._fill(rec, m)
                rec.digest = m.digest
                await self._tell(app_id, ApplyManifest(m))
        self.first_scan = False
        self._save()
        if self.writer is not None:
            await self.writer.flush()  # on disk before the boot starts it decided on
        self.broadcast.publish(ScanApplied(len(found), len(invalid)))
        for app_id in boot:  # bring back what was running before (adopted if still up)
            await self._tell(app_id, StartApp(app_id, reason="boot"))

    def _maker(self, app_id: str) -> Callable[[], Actor]:
        """Each (re)start builds the actor from the app's latest manifest."""

        def make() -> Actor:
            rec = self.records[app_id]
            assert rec.manifest is not None
            actor = self.factory(rec.manifest)
            rec.sandbox = getattr(actor, "sandbox", rec.sandbox)
            return actor

        return make

    def _fill(self, rec: AppRecord, m: Manifest) -> None:
        rec.manifest, rec.name, rec.folder = m, m.name, m.path.name
        rec.version, rec.description, rec.ui = m.version, m.description, m.ui
        rec.ttl = m.ttl if m.type == "streamlit" else None
        rec.permissions, rec.devices = m.permissions, m.devices
        rec.job = {**(rec.job or {}), "schedule": m.job.schedule, "timeout": m.job.timeout} if m.job else None
        rec.approved = not m.grants or (self.approvals is not None and self.approvals.is_approved(m.id, m.grants))

    async def _remove(self, app_id: str) -> None:
        """A folder went away: stop its app, then its actor."""
        if app_id in self.apps:
            with trio.move_on_after(15):
                try:
                    await self.apps.ref(app_id).ask(StopApp(app_id, reason="removed"), timeout=15)
                except Exception as exc:  # a stop that fails must not keep a removed app registered
                    log.info("stopping removed app %s: %s", app_id, exc)
            await self.apps.stop_child(app_id)
        self.records.pop(app_id, None)

    async def _catch_up(self, rec: AppRecord) -> None:
        """The events this registry missed while it was down: the actor's own snapshot says where it is."""
        try:
            snap = await self.apps.ref(rec.id).ask(GetApp(rec.id), timeout=TAKEOVER_TIMEOUT)
        except (ActorError, HomeHelperError) as exc:  # busy (a long install) or gone: its next event says
            log.info("taking over %s: %s", rec.id, exc)
            return
        if isinstance(snap, dict):
            rec.state = str(snap.get("state", rec.state))
            rec.port = snap.get("port", rec.port)
            rec.last_error = snap.get("last_error", rec.last_error)

    async def _tell(self, app_id: str, msg: Any) -> None:
        try:
            await self.apps.ref(app_id).tell(msg)
        except ActorError as exc:
            log.warning("cannot reach %s: %s", app_id, exc)

    async def _follow(self, sub: Any) -> None:
        """Hold the subscription while this registry runs: its filter does the work."""
        with sub:
            await trio.sleep_forever()

    def _on_event(self, ev: Any) -> bool:
        """Mirror the app actors' events into the read model (events come up, not asks)."""
        try:
            if self.view.apply(ev):
                self._save()
        except Exception:  # it runs in the publisher's task: a bug here must not take an app actor down
            log.exception("read model: applying %r", ev)
        return False

    def _save(self) -> None:
        """Hand what must survive a restart to the writer, when it changed."""
        data = {app_id: rec.persisted() for app_id, rec in sorted(self.records.items())}
        if data != self.saved and self.writer is not None:
            self.writer.submit(data)
            self.saved = data
