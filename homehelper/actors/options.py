"""An app's options and secrets, as its actor handles them: the actor is the one writer of
`<root>/options/<app>.json` and `<root>/secrets/<app>.json` (its mailbox orders the writes; each
is atomic, on a worker thread). A change is checked in full before anything is written, so a bad
value changes nothing and the running app keeps running; a good one restarts a running app,
whose new run gets the files of backends/delivery.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .. import options as opts
from ..manifest import Manifest
from ..messages import AppOptionsChanged, GetOptions, SetOptions, StateFileDamaged

if TYPE_CHECKING:
    from .app import AppActor

RUNNING = ("starting", "running", "backoff")
Damaged = list[tuple[Path, Path | None]]  # (a values file found damaged, where it was set aside)


def view(root: Path, manifest: Manifest, damaged: Damaged | None = None) -> dict[str, Any]:
    """What the dashboard, API and CLI show: the schema, the values the app gets, and for each
    password only whether it is set. Blocking (reads two small files)."""
    schema = manifest.options
    values = opts.effective(schema, opts.read_values(opts.values_path(root, manifest.id), damaged))
    secret_names = [o.name for o in schema if o.secret]
    stored = opts.read_values(opts.secrets_path(root, manifest.id), damaged) if secret_names else {}
    return {"app": manifest.id, "options": [o.to_json() for o in schema], "values": values,
            "secrets": {n: "set" if isinstance(stored.get(n), str) else "not set" for n in secret_names}}


def _merge(path: Path, changes: dict[str, Any], secret: bool, damaged: Damaged | None) -> None:
    """Apply `changes` (None removes a key) to one values file; written only if it changed."""
    if not changes:
        return
    current = opts.read_values(path, damaged)
    new = dict(current)
    for name, value in changes.items():
        if value is None:
            new.pop(name, None)
        else:
            new[name] = value
    if new != current or (secret and path.exists() and path.stat().st_mode & 0o077):
        opts.write_values(path, new, secret=secret)


def save(root: Path, manifest: Manifest, checked: dict[str, Any], damaged: Damaged | None = None) -> None:
    """Blocking: write the checked changes, secrets apart from the rest."""
    secret_names = {o.name for o in manifest.options if o.secret}
    plain = {k: v for k, v in checked.items() if k not in secret_names}
    _merge(opts.values_path(root, manifest.id), plain, False, damaged)
    _merge(opts.secrets_path(root, manifest.id), {k: v for k, v in checked.items() if k in secret_names}, True, damaged)


async def handle_options(actor: AppActor, msg: GetOptions | SetOptions) -> dict[str, Any]:
    root = actor.ctx.config.root
    damaged: Damaged = []
    restarted = False
    if isinstance(msg, SetOptions):
        checked = opts.validate(actor.manifest.options, msg.changes)  # raises, naming each bad option
        if checked:
            await trio.to_thread.run_sync(save, root, actor.manifest, checked, damaged)
            _say_damaged(actor, damaged)
            restarted = actor.state in RUNNING
            # Said before the restart: the values are saved even if the new run then fails to start.
            actor.ctx.emit(AppOptionsChanged(actor.app_id, tuple(sorted(checked)), restarted))
            if restarted:
                await actor.restart("options changed")
    shown = await trio.to_thread.run_sync(view, root, actor.manifest, damaged)
    _say_damaged(actor, damaged)
    return {**shown, "restarted": restarted} if isinstance(msg, SetOptions) else shown


def _say_damaged(actor: AppActor, damaged: Damaged) -> None:
    for path, aside in damaged:
        actor.ctx.emit(StateFileDamaged(str(path), str(aside) if aside else None,
                                        f"{actor.app_id}'s options are back to their defaults: set them again"))
    damaged.clear()
