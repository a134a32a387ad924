"""The scanner: reads apps/ at start, on Rescan and (with `watch`) whenever a folder copied in or
a manifest changed has settled (actors/watcher.py), and reports what changed.

Each folder is judged alone: a broken manifest (bad JSON, nested too deeply,
a FIFO, a folder or a device in its place, any error at all) marks that one
app invalid with the reason and the scan carries on. The file reads run in a worker thread so a slow SD card
never stalls the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from ..errors import BadRequest, ManifestError
from ..manifest import MANIFEST_NAME, Manifest, load_manifest
from ..messages import AppDiscovered, AppInvalid, ApplyScan, AppRemoved, ManifestChanged, Rescan
from . import Actor, ActorRef, Broadcast, ChildRestarting
from .watcher import QUIET, AppsWatcher

log = logging.getLogger(__name__)


def scan_folder(apps_dir: Path) -> tuple[list[Manifest], dict[str, tuple[str, ...]]]:
    """Every valid manifest under `apps_dir`, and the errors of each invalid folder."""
    candidates: list[Manifest] = []
    invalid: dict[str, tuple[str, ...]] = {}
    try:
        entries = sorted(apps_dir.iterdir())
    except FileNotFoundError:
        return [], invalid
    for folder in entries:
        if folder.name.startswith((".", "_")) or not folder.is_dir():
            continue
        if not (folder / MANIFEST_NAME).exists() and not (folder / MANIFEST_NAME).is_symlink():
            continue  # not an app (yet): a folder being copied in, say
        try:
            candidates.append(load_manifest(folder, apps_dir))
        except ManifestError as exc:
            invalid[folder.name] = tuple(exc.errors)
        except Exception as exc:  # whatever one folder does, it stays that folder's problem
            log.warning("apps/%s: reading its manifest failed", folder.name, exc_info=True)
            invalid[folder.name] = (f"{MANIFEST_NAME} could not be read: {type(exc).__name__}: {exc}"[:300],)
    # A duplicated id belongs to the folder named after it, else to the first folder.
    owner: dict[str, Manifest] = {}
    for m in sorted(candidates, key=lambda m: (m.path.name != m.id, m.path.name)):
        if m.id in owner:
            invalid[m.path.name] = (f"id: {m.id!r} is already used by {owner[m.id].path.name}/",)
        else:
            owner[m.id] = m
    manifests = sorted(owner.values(), key=lambda m: m.id)
    return manifests, invalid


class Scanner(Actor):
    name = "scanner"
    read_folder = staticmethod(scan_folder)  # what runs in the worker thread

    def __init__(self, apps_dir: Path, registry: ActorRef[Any], emit: Any, follow: Broadcast | None = None,
                 watch: bool = False, quiet: float = QUIET) -> None:
        self.apps_dir = apps_dir
        # watch: scan when apps/ changes (inotify, actors/watcher.py), once each copied folder is quiet
        self.watcher = AppsWatcher(apps_dir, self._scan_settled, quiet=quiet) if watch else None
        self._lock = trio.Lock()  # one scan at a time: the watcher's and a Rescan's
        self.registry = registry
        self.emit = emit
        self.follow = follow  # the bus: a restarted registry starts empty and needs the apps again
        self.known: dict[str, Manifest] = {}
        self.invalid: dict[str, tuple[str, ...]] = {}

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.follow is not None:
            restarts = self.follow.subscribe(maxlen=4, accept=lambda e: isinstance(e, ChildRestarting)
                                             and e.child == self.registry.name)
            nursery.start_soon(self._resend_on_restart, restarts)
        if self.watcher is not None:
            self.watcher.busy.clear()
            await nursery.start(self.watcher.run)  # watching before the first scan: no copy slips by
        await self.scan()

    async def _resend_on_restart(self, restarts: Any) -> None:
        with restarts:
            async for _ in restarts:
                # Told before the new registry runs: its mailbox outlives the crash, so this is the
                # first thing it reads.
                await self.registry.tell(ApplyScan(tuple(self.known.values()), tuple(sorted(self.invalid.items()))))

    async def handle(self, msg: Any) -> Any:
        match msg:
            case Rescan():
                return await self.scan()
            case _:
                raise BadRequest(f"scanner: unknown message {type(msg).__name__}")

    async def _scan_settled(self, busy: frozenset[str]) -> None:
        await self.scan()

    async def scan(self) -> dict[str, list[str]]:
        async with self._lock:
            return await self._scan()

    async def _scan(self) -> dict[str, list[str]]:
        # abandon_on_cancel: a read that hangs (a stalled SD card, some special file) must not
        # hold up a shutdown; the thread ends on its own and its result is dropped.
        manifests, invalid = await trio.to_thread.run_sync(self.read_folder, self.apps_dir, abandon_on_cancel=True)
        busy = await self.watcher.catch_up() if self.watcher is not None else frozenset()
        if busy:
            manifests, invalid = self._hold(busy, manifests, invalid)
        found = {m.id: m for m in manifests}
        summary: dict[str, list[str]] = {"discovered": [], "changed": [], "removed": [], "invalid": []}
        for app_id, m in found.items():
            old = self.known.get(app_id)
            if old is None:
                summary["discovered"].append(app_id)
                self.emit(AppDiscovered(app_id, m.name, m.type, str(m.path)))
            elif old.digest != m.digest or old.path != m.path:
                summary["changed"].append(app_id)
                self.emit(ManifestChanged(app_id, m.digest))
        for app_id in self.known.keys() - found.keys():
            summary["removed"].append(app_id)
            self.emit(AppRemoved(app_id))
        for folder, errors in invalid.items():
            summary["invalid"].append(folder)
            if self.invalid.get(folder) != errors:
                log.warning("apps/%s is invalid: %s", folder, "; ".join(errors))
                self.emit(AppInvalid(folder, errors))
        self.known, self.invalid = found, invalid
        await self.registry.tell(ApplyScan(tuple(manifests), tuple(sorted(invalid.items()))))
        return summary

    def _hold(self, busy: frozenset[str], manifests: list[Manifest], invalid: dict[str, tuple[str, ...]]
              ) -> tuple[list[Manifest], dict[str, tuple[str, ...]]]:
        """What a folder still being copied held before (nothing, for a new one): it is read once quiet."""
        kept = [m for m in manifests if m.path.name not in busy]
        ids = {m.id for m in kept}
        for m in self.known.values():
            if m.path.name in busy and m.id not in ids:
                kept.append(m)
                ids.add(m.id)
        held = {f: e for f, e in invalid.items() if f not in busy}
        held.update({f: e for f, e in self.invalid.items() if f in busy})
        return sorted(kept, key=lambda m: m.id), held
