"""The updater: adds apps from a source (after a preview), checks for and installs new versions, and
rolls an update back when the new version fails its health check within its grace period.

One operation at a time (a lock), so it is the one writer of registry/sources.json. git, copying and
file moves run on worker threads. An update: fetch and check the new version into
apps/.versions/<id>/<version>, stop the app, copy its data aside, switch apps/<id> to the new version,
rescan (the app actor takes the new manifest), start it and watch its events on the broadcast until
its grace period has passed healthy. A crash, a config error, an unhealthy verdict or a failed install
before then: stop, put the data copy back, switch back, start the previous version again.

Auto-update (per app, off by default) checks at most once a day; with none on, no timer runs.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..config import Config
from ..errors import BadRequest, Conflict, HomeHelperError, NotFound
from ..manifest import Manifest, load_manifest
from ..messages import (
    AppAdded,
    AppAwaitingApproval,
    AppConfigError,
    AppCrashed,
    AppDiscovered,
    AppHealthChanged,
    AppInstallFailed,
    AppQuarantined,
    AppUpdateAvailable,
    AppUpdated,
    AppUpdateFailed,
    CheckUpdate,
    ConfirmAdd,
    GetApp,
    GetSource,
    ManifestChanged,
    PreviewSource,
    Rescan,
    ScanApplied,
    SetAutoUpdate,
    StartApp,
    StopApp,
    UpdateApp,
)
from ..sources import fetch, git
from ..sources import versions as v
from . import Actor, ActorRef, Broadcast, Supervisor

log = logging.getLogger(__name__)

MAX_PREVIEWS = 4  # fetched sources waiting for a confirmation; the oldest is dropped
DAY = 86400.0
STOP_TIMEOUT = 120.0
START_TIMEOUT = 3600.0  # a start may rebuild the venv
RUNNING = ("running", "starting")
SETTLE_TIMEOUT = 90.0  # the watcher scans a folder busy for its MAX_WAIT (60 s) all the same
FAILURES = (AppCrashed, AppConfigError, AppInstallFailed, AppQuarantined)


class Updater(Actor):
    name = "updater"

    def __init__(self, config: Config, broadcast: Broadcast, apps: Supervisor, scanner: ActorRef[Any] | None,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.broadcast = broadcast
        self.apps = apps
        self.scanner = scanner
        self.wall = wall
        self.sources: dict[str, dict[str, Any]] = {}
        self.previews: dict[str, fetch.Staged] = {}
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._auto_running = False
        self.staging = config.apps_dir / ".versions" / ".staging"
        self.home = config.run_dir / "git-home"  # git's HOME: empty, nothing of the user's setup

    async def on_start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.sources = await trio.to_thread.run_sync(v.read_sources, self.config)
        await trio.to_thread.run_sync(self._clean_staging)
        self._arm_auto()

    def _clean_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # previews of an earlier run
        self.home.mkdir(parents=True, exist_ok=True)

    async def handle(self, msg: Any) -> Any:
        match msg:
            case PreviewSource(source, subdir, ref):
                return await self.preview(source, subdir, ref)
            case ConfirmAdd(token):
                async with self._lock:
                    return await self.add(token)
            case CheckUpdate(app_id):
                async with self._lock:
                    return await self.check(app_id)
            case UpdateApp(app_id, to):
                async with self._lock:
                    return await self.update(app_id, to)
            case GetSource(app_id):
                return await self.get_source(app_id)
            case SetAutoUpdate(app_id, enabled):
                async with self._lock:
                    self._record(app_id)["auto_update"] = bool(enabled)
                    await self._save()
                self._arm_auto()
                return await self.get_source(app_id)
            case _:
                raise BadRequest(f"updater: unknown message {type(msg).__name__}")

    # --- adding ------------------------------------------------------------------
    async def preview(self, source: str, subdir: str, ref: str | None) -> dict[str, Any]:
        token = secrets.token_hex(12)
        work = self.staging / token
        try:
            staged = await trio.to_thread.run_sync(self._stage, source, subdir, ref, work)
            await self._check_free(staged.manifest.id)
        except BaseException:
            await trio.to_thread.run_sync(shutil.rmtree, work, True)
            raise
        self.previews[token] = staged
        while len(self.previews) > MAX_PREVIEWS:
            old = self.previews.pop(next(iter(self.previews)))
            await trio.to_thread.run_sync(shutil.rmtree, old.folder.parent, True)
        m = staged.manifest
        return {"token": token, "app_id": m.id, "name": m.name, "type": m.type, "version": m.version,
                "description": m.description, "permissions": list(m.permissions), "devices": list(m.devices),
                "source": git.redact(staged.url), "kind": staged.kind, "subdir": staged.subdir,
                "ref": staged.ref, "commit": staged.version}

    def _stage(self, source: str, subdir: str, ref: str | None, work: Path) -> fetch.Staged:
        work.mkdir(parents=True)
        return fetch.stage(source, subdir, ref, work, self.home)

    async def _check_free(self, app_id: str) -> None:
        if app_id in self.apps:
            raise Conflict(f"an app {app_id!r} already exists: update it with `homehelper update {app_id}`",
                           app=app_id)
        await trio.to_thread.run_sync(v.check_new_app, self.config, app_id)

    async def add(self, token: str) -> dict[str, Any]:
        staged = self.previews.pop(token, None) if isinstance(token, str) else None
        if staged is None:
            raise NotFound("no such preview (it expired or was used): preview the source again")
        app_id = staged.manifest.id
        try:
            await self._check_free(app_id)
            await trio.to_thread.run_sync(v.install_version, self.config, staged)
            await trio.to_thread.run_sync(v.switch, self.config, app_id, staged.version)
        finally:
            await trio.to_thread.run_sync(shutil.rmtree, staged.folder.parent, True)
        now = self.wall()
        self.sources[app_id] = {"kind": staged.kind, "url": staged.url, "subdir": staged.subdir, "ref": staged.ref,
                                "version": staged.version, "previous": None, "added_at": now, "updated_at": now,
                                "auto_update": False}
        await self._save()
        await self._rescan(app_id, AppDiscovered)
        self.broadcast.publish(AppAdded(app_id, git.redact(staged.url), staged.version))
        return {"app_id": app_id, "version": staged.version}

    # --- checking and updating ---------------------------------------------------------
    def _record(self, app_id: str) -> dict[str, Any]:
        rec = self.sources.get(app_id)
        if rec is None:
            raise Conflict(f"{app_id} was not added from a source (`homehelper add`): there is nothing to "
                           "update it from", app=app_id)
        return rec

    async def check(self, app_id: str) -> dict[str, Any]:
        rec = self._record(app_id)
        if rec.get("kind") != "git":
            raise Conflict(f"{app_id} came from a {rec.get('kind')}: `homehelper update {app_id}` re-reads it",
                           app=app_id)
        if rec.get("ref") and git.is_commit(rec["ref"]):
            raise Conflict(f"{app_id} was added at commit {rec['ref'][:12]}, not a branch or tag: nothing to "
                           f"follow (`homehelper update {app_id} --to COMMIT` fetches another)", app=app_id)
        latest = await trio.to_thread.run_sync(git.remote_commit, rec["url"], rec.get("ref"), self.home)
        rec["last_check"] = self.wall()
        rec["available"] = latest if latest != rec.get("version") else None
        await self._save()
        if rec["available"]:
            self.broadcast.publish(AppUpdateAvailable(app_id, str(rec.get("version")), latest))
        return {"app_id": app_id, "current": rec.get("version"), "latest": latest,
                "update_available": bool(rec["available"])}

    async def update(self, app_id: str, to: str | None) -> dict[str, Any]:
        rec = self._record(app_id)
        current = await trio.to_thread.run_sync(v.current_version, self.config, app_id)
        if current is None:  # restored from a backup, or replaced by hand: not ours to switch
            raise Conflict(f"{self.config.apps_dir / app_id} is not a version HomeHelper installed (a plain folder, "
                           f"or gone): move it away and `homehelper add` the source again", app=app_id)
        installed = {x["version"] for x in await trio.to_thread.run_sync(v.list_versions, self.config, app_id)}
        if to is not None and to not in installed:
            if rec.get("kind") != "git":
                raise NotFound(f"{app_id} has no version {to!r} (installed: {', '.join(sorted(installed))})")
            git.check_ref(to)
        if to is not None and to in installed:
            target = to
        else:
            try:
                target = await self._fetch(app_id, rec, to)
            except HomeHelperError as exc:  # nothing changed; said on the event log (and notified)
                self.broadcast.publish(AppUpdateFailed(app_id, to or "", exc.message, None))
                raise
        if target == current:
            return {"app_id": app_id, "updated": False, "version": current, "message": f"{app_id} is at {current}"}
        return await self._switch_over(app_id, rec, current, target)

    async def _fetch(self, app_id: str, rec: dict[str, Any], to: str | None) -> str:
        work = self.staging / secrets.token_hex(12)
        try:
            staged = await trio.to_thread.run_sync(self._stage, rec["url"], rec.get("subdir", ""),
                                                   to if to is not None else rec.get("ref"), work)
            if staged.manifest.id != app_id:
                raise BadRequest(f"the new version's manifest says id {staged.manifest.id!r}, not {app_id!r}: "
                                 "refused")
            await trio.to_thread.run_sync(v.install_version, self.config, staged)
            return staged.version
        finally:
            await trio.to_thread.run_sync(shutil.rmtree, work, True)

    async def _switch_over(self, app_id: str, rec: dict[str, Any], current: str, target: str) -> dict[str, Any]:
        was_running = await self._running(app_id)
        if was_running:
            await self.apps.ref(app_id).ask(StopApp(app_id, reason="update"), timeout=STOP_TIMEOUT)
        try:
            copy = await trio.to_thread.run_sync(v.copy_data, self.config, app_id, target)
        except OSError as exc:  # a full disk, say: nothing switched; the app runs on as it was
            if was_running:
                await self._ask_app(app_id, StartApp(app_id, reason="update"), START_TIMEOUT)
            self.broadcast.publish(AppUpdateFailed(app_id, target, f"copying its data failed: {exc}", None))
            raise Conflict(f"{app_id}: copying its data before the update failed ({exc}); nothing changed",
                           app=app_id) from None
        await self._switch(app_id, current, target)
        error = await self._start_and_watch(app_id) if was_running else None
        if error is None:
            rec.update(previous=current, version=target, updated_at=self.wall(), available=None)
            await self._save()
            await trio.to_thread.run_sync(v.prune, self.config, app_id, (current, target))
            self.broadcast.publish(AppUpdated(app_id, current, target))
            return {"app_id": app_id, "updated": True, "version": target, "previous": current}
        log.warning("%s: version %s failed (%s); rolling back to %s", app_id, target, error, current)
        await self._ask_app(app_id, StopApp(app_id, reason="update"), STOP_TIMEOUT)
        if copy is not None:
            await trio.to_thread.run_sync(v.restore_data, self.config, app_id, copy)
        await self._switch(app_id, target, current)
        await self._ask_app(app_id, StartApp(app_id, reason="rollback"), START_TIMEOUT)
        self.broadcast.publish(AppUpdateFailed(app_id, target, error, current))
        raise Conflict(f"{app_id}: version {target} failed ({error}); rolled back to {current}, data restored",
                       app=app_id, version=target, rolled_back_to=current)

    async def _switch(self, app_id: str, old: str | None, new: str) -> None:
        changed = old is None or await trio.to_thread.run_sync(v.manifests_differ, self.config, app_id, old, new)
        await trio.to_thread.run_sync(v.switch, self.config, app_id, new)
        await self._rescan(app_id, ManifestChanged if changed else None)

    async def _start_and_watch(self, app_id: str) -> str | None:
        """None when the app came up healthy and stayed so for its grace period, else what went wrong."""
        with self.broadcast.subscribe(64, accept=lambda e: getattr(e, "app_id", None) == app_id and isinstance(
                e, (*FAILURES, AppHealthChanged, AppAwaitingApproval))) as sub:
            try:
                await self.apps.ref(app_id).ask(StartApp(app_id, reason="update"), timeout=START_TIMEOUT)
            except HomeHelperError as exc:
                return exc.message
            manifest = await self._manifest(app_id)
            h = manifest.health
            grace = max(float(h.grace), 1.0)
            window = grace + h.interval * h.failures + h.timeout + 30
            start, healthy = trio.current_time(), False
            while True:
                with trio.move_on_at(start + grace if healthy else start + window):
                    ev = await sub.receive()
                    if isinstance(ev, FAILURES):
                        return _said(ev)
                    if isinstance(ev, AppAwaitingApproval):
                        return None  # it asks for more: the user approves it; no health to judge yet
                    if isinstance(ev, AppHealthChanged):
                        if not ev.healthy:
                            return f"unhealthy: {ev.detail}"
                        healthy = True
                    continue
                return None if healthy else f"not healthy within {window:g} s"

    async def _manifest(self, app_id: str) -> Manifest:
        return await trio.to_thread.run_sync(load_manifest, self.config.apps_dir / app_id, self.config.apps_dir)

    async def _running(self, app_id: str) -> bool:
        if app_id not in self.apps:
            return False
        snap = await self.apps.ref(app_id).ask(GetApp(app_id), timeout=10)
        return isinstance(snap, dict) and snap.get("state") in RUNNING

    async def _ask_app(self, app_id: str, msg: Any, timeout: float) -> None:
        try:
            await self.apps.ref(app_id).ask(msg, timeout=timeout)
        except HomeHelperError as exc:  # a rollback carries on: the previous version is what matters
            log.warning("%s: %s during a rollback: %s", app_id, type(msg).__name__, exc.message)

    async def get_source(self, app_id: str) -> dict[str, Any]:
        rec = self.sources.get(app_id)
        if rec is None:
            return {"app_id": app_id, "source": None, "versions": []}
        found = await trio.to_thread.run_sync(v.list_versions, self.config, app_id)
        return {"app_id": app_id, "source": v.shown(rec), "versions": found}

    async def _rescan(self, app_id: str, wanted: type | None) -> None:
        """Rescan; with `wanted` (AppDiscovered for a new app, ManifestChanged for a new manifest), return once
        the registry applied it. The watcher holds back a folder changed a moment ago until it is quiet
        (actors/watcher.py): then its own scan, a second later, brings it."""
        if self.scanner is None:
            return
        seen = wanted is None

        def accept(e: Any) -> bool:
            return isinstance(e, ScanApplied) or (wanted is not None and isinstance(e, wanted)
                                                  and getattr(e, "app_id", None) == app_id)

        with self.broadcast.subscribe(64, accept=accept) as sub:
            await self.scanner.ask(Rescan(), timeout=60)
            with trio.move_on_after(SETTLE_TIMEOUT):
                while True:
                    ev = await sub.receive()
                    if not isinstance(ev, ScanApplied):
                        seen = True
                    elif seen:
                        return
            log.warning("%s: the scan did not take the new folder within %g s", app_id, SETTLE_TIMEOUT)

    async def _save(self) -> None:
        await trio.to_thread.run_sync(v.write_sources, self.config, dict(self.sources))

    # --- auto-update -----------------------------------------------------------------
    def _arm_auto(self) -> None:
        if self._nursery is not None and not self._auto_running and any(
                r.get("auto_update") for r in self.sources.values()):
            self._auto_running = True
            self._nursery.start_soon(self._auto)

    async def _auto(self) -> None:
        try:
            while auto := {a: r for a, r in self.sources.items() if r.get("auto_update") and r.get("kind") == "git"}:
                due_at = min(float(r.get("last_check") or 0) + DAY for r in auto.values())
                if due_at > self.wall():
                    await trio.sleep(due_at - self.wall())
                    continue
                for app_id, rec in auto.items():
                    if float(rec.get("last_check") or 0) + DAY <= self.wall():
                        await self._auto_one(app_id)
        finally:
            self._auto_running = False

    async def _auto_one(self, app_id: str) -> None:
        async with self._lock:
            self.sources[app_id]["last_check"] = self.wall()  # a failing check waits a day too
            try:
                if (await self.check(app_id))["update_available"]:
                    await self.update(app_id, None)
            except HomeHelperError as exc:  # said by AppUpdateFailed, or retried tomorrow
                log.warning("%s: auto-update: %s", app_id, exc.message)


def _said(ev: Any) -> str:
    if isinstance(ev, AppCrashed):
        return f"crashed (exit status {ev.exit_status}){': ' + ev.error if ev.error else ''}"
    if isinstance(ev, AppInstallFailed):
        return f"install failed: {ev.error}"
    if isinstance(ev, AppQuarantined):
        return "quarantined after repeated crashes"
    return f"config error: {ev.error}"
