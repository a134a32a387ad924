"""How exposed a service app's unit is, by `systemd-analyze security`.

systemd scores a unit's sandbox from 0.0 (walled in) to 10.0 (exposed) and
names the level (SAFE, OK, MEDIUM, EXPOSED, UNSAFE). HomeHelper asks once per unit
file it writes: the score is cached by the file's content, so starts and
restarts of an unchanged unit cost nothing, and a refresh of the dashboard
never runs it. With a cache file the scores outlive a restart of HomeHelper
(an app adopted at start shows its score without a new run); it is written
only when a score is new. It runs as a subprocess (the trio thread never waits on it),
one at a time (twenty apps starting at boot must not fork twenty analyzers on
a Pi).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import trio

from ..storage import atomic_write_json

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OVERALL = re.compile(r"Overall exposure level for (?P<unit>\S+?):\s+(?P<score>\d+(?:\.\d+)?)\s+(?P<level>[A-Z]+)")
TIMEOUT = 30.0


def parse_exposure(output: str, unit: str | None = None) -> tuple[float, str] | None:
    """(score, level) from `systemd-analyze security UNIT`'s output; None when it has no overall line."""
    for m in _OVERALL.finditer(_ANSI.sub("", output)):
        if unit is None or m["unit"] == unit:
            return float(m["score"]), m["level"]
    return None


def _load(path: Path | None) -> dict[str, tuple[str, tuple[float, str]]]:
    """The cache file's entries; a damaged file or entry is measured again, nothing worse."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.info("exposure cache %s unreadable (%s): units are measured again", path, exc)
        return {}
    out: dict[str, tuple[str, tuple[float, str]]] = {}
    for unit, e in (data.items() if isinstance(data, dict) else ()):
        if (isinstance(e, dict) and isinstance(e.get("digest"), str) and isinstance(e.get("level"), str)
                and isinstance(e.get("exposure"), (int, float)) and not isinstance(e.get("exposure"), bool)):
            out[str(unit)] = (e["digest"], (float(e["exposure"]), e["level"]))
    return out


def command(unit: str, scope: str = "user") -> list[str]:
    return ["systemd-analyze", *(["--user"] if scope == "user" else []), "security", "--no-pager", unit]


class ExposureMeter:
    """Measures units on request and remembers each score by the unit file's content."""

    def __init__(self, cache_file: Path | None = None) -> None:
        self.cache_file = cache_file
        self._cache: dict[str, tuple[str, tuple[float, str]]] = {}  # unit -> (content digest, result)
        self._loaded = cache_file is None
        self._one_at_a_time = trio.Lock()
        self.runs = 0  # analyzer runs, for the record (and the tests)

    async def measure(self, backend: Any, app_id: str) -> tuple[float, str] | None:
        """The exposure of `app_id`'s unit on a SystemdBackend; None when it cannot be told."""
        unit: str = backend.unit(app_id)
        path: Path = backend.unit_dir / unit
        try:
            text = await trio.to_thread.run_sync(path.read_bytes)
        except OSError:
            return None
        digest = hashlib.sha256(text).hexdigest()
        async with self._one_at_a_time:
            if not self._loaded:
                self._loaded = True
                self._cache = await trio.to_thread.run_sync(_load, self.cache_file)
            cached = self._cache.get(unit)
            if cached is not None and cached[0] == digest:
                return cached[1]
            result = await self._run(unit, backend.scope, backend.environ)
            if result is not None:
                self._cache[unit] = (digest, result)
                if self.cache_file is not None:
                    data = {u: {"digest": d, "exposure": r[0], "level": r[1]} for u, (d, r) in self._cache.items()}
                    await trio.to_thread.run_sync(atomic_write_json, self.cache_file, data)
            return result

    async def _run(self, unit: str, scope: str, environ: dict[str, str]) -> tuple[float, str] | None:
        if shutil.which("systemd-analyze") is None:
            return None
        self.runs += 1
        try:
            with trio.fail_after(TIMEOUT):
                proc = await trio.run_process(command(unit, scope), capture_stdout=True, capture_stderr=True,
                                              check=False, env=environ)
        except (OSError, trio.TooSlowError) as exc:
            log.info("systemd-analyze security %s: %s", unit, exc)
            return None
        result = parse_exposure(proc.stdout.decode(errors="replace"), unit)
        if result is None:
            log.info("systemd-analyze security %s gave no score: %s", unit,
                     proc.stderr.decode(errors="replace").strip()[-300:])
        return result
