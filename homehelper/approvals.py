"""Which permissions and devices the user approved for each app.

An app whose manifest asks for any (`Manifest.grants`) starts only once the
user approved that exact list; a changed list asks again. The store keeps, per
app, the sorted list approved, in `<root>/registry/approvals.json`.
One store per server (the app actors share it): it is the file's only writer,
each write atomic and off the trio thread. A damaged file loses its bad
entries, never the server: an app whose entry is gone simply asks again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

from .storage import atomic_write_json

log = logging.getLogger(__name__)

FILE_NAME = "approvals.json"
_MAX_BYTES = 1 << 20  # a file this big is not ours


def normalize(grants: Iterable[str]) -> tuple[str, ...]:
    """The form approvals are compared in: sorted, each once."""
    return tuple(sorted(set(grants)))


def describe(grants: Iterable[str]) -> str:
    """What an app asks for, for a person: 'gpio, i2c, /dev/ttyUSB0'."""
    return ", ".join(grants) or "nothing"


def load(path: Path) -> dict[str, tuple[str, ...]]:
    """{app_id: approved grants} from `path`; what is damaged is skipped, with a log line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("approvals: cannot read %s (%s); every app asking for permissions asks again", path, exc)
        return {}
    try:
        if len(raw) > _MAX_BYTES:
            raise ValueError(f"over {_MAX_BYTES} bytes")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("approvals: %s is damaged (%s); every app asking for permissions asks again", path, exc)
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for app_id, entry in data.items():
        grants = entry.get("grants") if isinstance(entry, dict) else None
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
            log.warning("approvals: entry %r in %s is damaged; that app asks again", str(app_id)[:80], path)
            continue
        out[str(app_id)] = normalize(grants)
    return out


class ApprovalStore:
    """The approvals of one state root, in memory and on disk."""

    def __init__(self, path: Path, approved: dict[str, tuple[str, ...]] | None = None) -> None:
        self.path = path
        self._approved: dict[str, tuple[str, ...]] = dict(approved or {})
        self._lock = trio.Lock()  # one write at a time, in the order asked

    @classmethod
    async def open(cls, registry_dir: Path) -> ApprovalStore:
        path = registry_dir / FILE_NAME
        return cls(path, await trio.to_thread.run_sync(load, path))

    def approved(self, app_id: str) -> tuple[str, ...] | None:
        return self._approved.get(app_id)

    def is_approved(self, app_id: str, grants: Iterable[str]) -> bool:
        """True when nothing needs approving, or this exact list was approved."""
        wanted = normalize(grants)
        return not wanted or self._approved.get(app_id) == wanted

    async def approve(self, app_id: str, grants: Iterable[str]) -> None:
        """Record the approval, on disk before this returns (an approval is never lost to a power cut)."""
        wanted = normalize(grants)
        async with self._lock:
            if self._approved.get(app_id) == wanted:
                return
            self._approved[app_id] = wanted
            data = self._to_json()
            await trio.to_thread.run_sync(atomic_write_json, self.path, data)

    def _to_json(self) -> dict[str, Any]:
        return {app_id: {"grants": list(grants)} for app_id, grants in sorted(self._approved.items())}
