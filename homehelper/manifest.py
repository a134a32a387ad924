"""The app manifest `homehelper.json`: parsing and validation.

Validation collects every problem, each naming its field, so a person fixes a
manifest in one pass. The JSON Schema beside this file documents the same
fields for editors; `tests/test_manifest.py` keeps the two in step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

import attrs

from .backupspec import BackupSpec, parse_backup
from .errors import ManifestError
from .oncalendar import JobSpec, job_fields
from .options import Option, parse_schema

MANIFEST_NAME = "homehelper.json"
MAX_MANIFEST_BYTES = 64 * 1024
# Used with fullmatch: `$` alone would accept a trailing newline, which splits a unit's lines.
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# C0 and C1 controls, DEL, and Unicode line breaks: any of them in a value that reaches a unit
# file, a path or a command line could start a new directive or hide one.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")

AppType = Literal["service", "streamlit", "job"]
HealthType = Literal["http", "process", "watchdog"]

# What an app may ask for beyond the default sandbox; each needs the user's approval.
# docs/services.md says what each one lets an app do and which unit directives it sets.
PERMISSIONS = ("gpio", "i2c", "spi", "usb", "video", "bluetooth", "host-metrics", "lan", "internet")
DEVICE_RE = re.compile(r"/dev/[A-Za-z0-9._:+@/*?-]{1,200}")


@attrs.frozen
class Health:
    # http: poll `path`; process: alive means healthy (the default without a `health` section);
    # watchdog: the app speaks sd_notify (READY=1, then WATCHDOG=1 at least every `interval`).
    type: HealthType = "process"
    path: str = "/health"
    interval: float = 30.0  # seconds between polls
    timeout: float = 5.0
    failures: int = 3  # consecutive failed polls before the app counts as unhealthy
    grace: float = 30.0  # start-up time during which failures do not count


STREAMLIT_MEMORY_MB = 512  # a Streamlit app's memory cap when its manifest sets none


@attrs.frozen
class Resources:
    memory_mb: int = 256
    cpu_percent: int = 50  # of one core
    tasks: int = 64


@attrs.frozen
class RestartSpec:
    policy: Literal["always", "on-failure", "no"] = "on-failure"
    backoff_max: float = 300.0
    intensity: int = 5  # restarts within `period` before quarantine
    period: float = 600.0


@attrs.frozen
class Manifest:
    id: str
    name: str
    type: AppType
    path: Path  # the app's folder
    version: str = "0.0.0"
    description: str = ""
    entry: str = "main.py"
    requirements: str | None = None
    setup: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    health: Health = Health()
    resources: Resources = Resources()
    restart: RestartSpec = RestartSpec()
    ttl: float = 300.0  # Streamlit idle TTL
    ui: str | None = None  # a service app's own UI path, proxied by the dashboard
    autostart: bool = False  # services: start with HomeHelper
    permissions: tuple[str, ...] = ()  # from PERMISSIONS, sorted, no repeats
    devices: tuple[str, ...] = ()  # /dev paths or /dev/serial/by-id/ globs, as written
    options: tuple[Option, ...] = ()  # what the user may set (homehelper.options), in the manifest's order
    digest: str = ""  # sha256 of the manifest bytes, to notice changes
    backup: BackupSpec = attrs.field(factory=BackupSpec)  # what a backup leaves out, and how it is taken
    job: JobSpec | None = None  # type job: its schedule and timeout (homehelper.oncalendar)

    @property
    def grants(self) -> tuple[str, ...]:
        """What the user must approve before the app starts: permissions, then devices."""
        return self.permissions + self.devices

    @property
    def entry_path(self) -> Path:
        return self.path / self.entry

    @property
    def requirements_path(self) -> Path | None:
        return None if self.requirements is None else self.path / self.requirements

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True)
        data["path"] = str(self.path)
        data["env"] = dict(self.env)
        data["setup"] = list(self.setup)
        return data


class _Checker:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.errors: list[str] = []

    def err(self, field: str, why: str) -> None:
        self.errors.append(f"{field}: {why}")

    def get(self, obj: dict[str, Any], field: str, kind: type | tuple[type, ...], default: Any, where: str = "") -> Any:
        name = f"{where}{field}"
        if field not in obj:
            return default
        value = obj[field]
        # bool is an int in Python; a manifest's `true` is never a number.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.err(name, f"must be {_kind_name(kind)}, got {json.dumps(value)}")
            return default
        if not isinstance(value, kind):
            self.err(name, f"must be {_kind_name(kind)}, got {json.dumps(value)[:60]}")
            return default
        return value

    def number(
        self, obj: dict[str, Any], field: str, default: float, lo: float, hi: float, where: str = "",
        integer: bool = False,
    ) -> Any:
        value = self.get(obj, field, int if integer else (int, float), default, where)
        if value is not default and not lo <= value <= hi:
            self.err(f"{where}{field}", f"must be between {lo:g} and {hi:g}, got {value}")
            return default
        return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             dict: "an object", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if kinds == (int, float):
        return "a number"
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_TOP = {"id", "name", "version", "description", "type", "entry", "requirements", "setup", "env", "health",
        "resources", "restart", "ttl", "ui", "autostart", "permissions", "devices", "backup", "options",
        "schedule", "timeout"}


def _inside(folder: Path, rel: str) -> bool:
    """`rel` names something inside `folder`, even through symlinks."""
    parts = Path(rel).parts
    if Path(rel).is_absolute():
        return False
    if ".." not in parts:  # the common case: a few lstats instead of a full resolve
        cur = folder
        for part in parts:
            cur = cur / part
            if cur.is_symlink():
                break
        else:
            return True
    real = folder.resolve()
    target = (folder / rel).resolve()
    return target == real or real in target.parents


def parse_manifest(data: bytes, folder: Path) -> Manifest:
    """Validate manifest bytes from `folder`; raise ManifestError naming every bad field."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_NAME} is {len(data)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
    except RecursionError:  # 30,000 nested `[` fit in the size limit
        raise ManifestError(f"{MANIFEST_NAME} is nested too deeply to be a manifest") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{MANIFEST_NAME} must hold a JSON object")
    c = _Checker(raw)
    for key in sorted(set(raw) - _TOP):
        c.err(key, "unknown field")
    for field, ch in _control_chars(raw):
        c.err(field, f"contains the control character U+{ord(ch):04X}; values must be printable text")
    app_id = c.get(raw, "id", str, None)
    if app_id is None and "id" not in raw:
        c.err("id", "is required")
    elif app_id is not None and not ID_RE.fullmatch(app_id):
        c.err("id", "must be 1-40 lowercase letters, digits or '-', starting with a letter or digit")
        app_id = None
    app_type = c.get(raw, "type", str, None)
    if "type" not in raw:
        c.err("type", "is required ('service', 'streamlit' or 'job')")
    elif app_type is not None and app_type not in ("service", "streamlit", "job"):
        c.err("type", f"must be 'service', 'streamlit' or 'job', got {app_type!r}")
        app_type = None
    name = c.get(raw, "name", str, app_id or "")
    entry = c.get(raw, "entry", str, "app.py" if app_type == "streamlit" else "main.py")
    if not entry or not _inside(folder, entry):
        c.err("entry", f"{entry!r} must be a file inside the app folder")
    elif not (folder / entry).is_file():
        c.err("entry", f"{entry!r} does not exist in {folder.name}/")
    requirements = c.get(raw, "requirements", str, None)
    if requirements is None and "requirements" not in raw and (folder / "requirements.txt").is_file():
        requirements = "requirements.txt"
    if requirements is not None and not _inside(folder, requirements):
        c.err("requirements", f"{requirements!r} must be a file inside the app folder")
    elif requirements is not None and not (folder / requirements).is_file():
        c.err("requirements", f"{requirements!r} does not exist in {folder.name}/")
    setup = c.get(raw, "setup", list, [])
    if not all(isinstance(s, str) and s.strip() for s in setup):
        c.err("setup", "must be a list of non-empty command strings")
        setup = []
    env = c.get(raw, "env", dict, {})
    for key, value in env.items():
        if not ENV_RE.fullmatch(key):
            c.err(f"env.{key}", "is not a valid environment variable name")
        elif not isinstance(value, str):
            c.err(f"env.{key}", "must be a string")
    health = _section(c, raw, "health", Health, {
        # A `health` section without a type keeps its old meaning: HTTP polls.
        "type": lambda o, w: _choice(c, o, "type", ("http", "process", "watchdog"),
                                     "http" if "health" in raw else "process", w),
        "path": lambda o, w: _path(c, o, "path", "/health", w),
        "interval": lambda o, w: c.number(o, "interval", 30.0, 1, 3600, w),
        "timeout": lambda o, w: c.number(o, "timeout", 5.0, 0.1, 120, w),
        "failures": lambda o, w: c.number(o, "failures", 3, 1, 100, w, integer=True),
        "grace": lambda o, w: c.number(o, "grace", 30.0, 0, 3600, w),
    })
    resources = _section(c, raw, "resources", Resources, {
        # Streamlit (tornado, pandas, charts) needs more than a small service to serve a few sessions.
        "memory_mb": lambda o, w: c.number(o, "memory_mb", STREAMLIT_MEMORY_MB if app_type == "streamlit" else 256,
                                           16, 65536, w, integer=True),
        "cpu_percent": lambda o, w: c.number(o, "cpu_percent", 50, 1, 400, w, integer=True),
        "tasks": lambda o, w: c.number(o, "tasks", 64, 4, 4096, w, integer=True),
    })
    restart = _section(c, raw, "restart", RestartSpec, {
        "policy": lambda o, w: _choice(c, o, "policy", ("always", "on-failure", "no"), "on-failure", w),
        "backoff_max": lambda o, w: c.number(o, "backoff_max", 300.0, 1, 3600, w),
        "intensity": lambda o, w: c.number(o, "intensity", 5, 1, 100, w, integer=True),
        "period": lambda o, w: c.number(o, "period", 600.0, 10, 86400, w),
    })
    ttl = c.number(raw, "ttl", 300.0, 10, 86400)
    ui = _path(c, raw, "ui", None) if "ui" in raw else None
    autostart = c.get(raw, "autostart", bool, False)
    permissions = c.get(raw, "permissions", list, [])
    for p in permissions:
        if p not in PERMISSIONS:
            c.err("permissions", f"unknown permission {json.dumps(p)[:60]}; known: {', '.join(PERMISSIONS)}")
    devices = c.get(raw, "devices", list, [])
    for d in devices:
        if not isinstance(d, str) or not DEVICE_RE.fullmatch(d) or "/../" in d or d.endswith("/.."):
            c.err("devices", f"{json.dumps(d)[:60]} must be a path under /dev/ (globs only under /dev/serial/by-id/)")
        elif any(ch in d for ch in "*?") and not d.startswith("/dev/serial/by-id/"):
            c.err("devices", f"{d!r}: globs are allowed only under /dev/serial/by-id/")
    backup = parse_backup(raw, c.err)
    options = parse_schema(raw.get("options"), c.err)
    job = job_fields(raw, app_type, c.err)
    version = c.get(raw, "version", str, "0.0.0")
    description = c.get(raw, "description", str, "")
    for field, text in (("name", name), ("description", description)):
        # A unit line ending in a backslash continues on the next line: it would swallow a directive.
        if isinstance(text, str) and text.rstrip().endswith("\\"):
            c.err(field, "must not end with a backslash")
    if c.errors:
        raise ManifestError(f"{MANIFEST_NAME} has {len(c.errors)} error(s): " + "; ".join(c.errors), c.errors)
    return Manifest(
        id=app_id,
        name=name or app_id,
        type=app_type,
        path=folder,
        version=version,
        description=description,
        entry=entry,
        requirements=requirements,
        setup=tuple(setup),
        env=tuple(sorted(env.items())),
        health=health,
        resources=resources,
        restart=restart,
        ttl=float(ttl),
        ui=ui,
        autostart=autostart,
        permissions=tuple(sorted(set(permissions))),
        devices=tuple(dict.fromkeys(devices)),
        options=options,
        digest=hashlib.sha256(data).hexdigest(),
        backup=backup,
        job=job,
    )


def _control_chars(value: Any, field: str = "") -> list[tuple[str, str]]:
    """(field, first bad character) for every string, key included, holding a control character."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        m = CONTROL_RE.search(value)
        if m:
            found.append((field or "manifest", m.group()))
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            m = CONTROL_RE.search(str(key))
            if m:
                found.append((f"{field}.{key!r}" if field else repr(key), m.group()))
                continue
            found.extend(_control_chars(item, name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_control_chars(item, f"{field}[{i}]"))
    return found


def _section(c: _Checker, raw: dict[str, Any], field: str, cls: type, readers: dict[str, Any]) -> Any:
    obj = c.get(raw, field, dict, {})
    for key in sorted(set(obj) - set(readers)):
        c.err(f"{field}.{key}", "unknown field")
    return cls(**{k: read(obj, f"{field}.") for k, read in readers.items()})


def _path(c: _Checker, obj: dict[str, Any], field: str, default: str | None, where: str = "") -> Any:
    value = c.get(obj, field, str, default, where)
    if value is not None and (not value.startswith("/") or ".." in value.split("/")):
        c.err(f"{where}{field}", f"must be an absolute URL path like /health, got {value!r}")
        return default
    return value


def _choice(c: _Checker, obj: dict[str, Any], field: str, choices: tuple[str, ...], default: str, where: str) -> Any:
    value = c.get(obj, field, str, default, where)
    if value not in choices:
        c.err(f"{where}{field}", f"must be one of {', '.join(choices)}, got {value!r}")
        return default
    return value


def load_manifest(folder: Path, apps_root: Path | None = None) -> Manifest:
    """Read and validate `folder/homehelper.json`, refusing paths that leave `apps_root`."""
    path = folder / MANIFEST_NAME
    # Only a symlink (or a folder that is not a direct child) can lead out of apps/.
    if apps_root is not None and (folder.parent != apps_root or folder.is_symlink() or path.is_symlink()):
        root = apps_root.resolve()
        for p in (folder, path):
            real = p.resolve()
            if real != root and root not in real.parents:
                raise ManifestError(f"{p.name} resolves to {real}, outside {root}: symlinks out of apps/ are refused")
    try:
        data = _read_regular(path, MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(f"{folder.name}/ has no {MANIFEST_NAME}") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    return parse_manifest(data, folder)


def _read_regular(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of a regular file. O_NONBLOCK: opening a FIFO must not wait for a writer;
    the fstat of the opened file then refuses anything else (FIFO, device, folder), race-free."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{MANIFEST_NAME} is {_file_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size < limit and (chunk := os.read(fd, min(65536, limit - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"
