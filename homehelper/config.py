"""Configuration: defaults, then `config/config.json` under the state root, then
`HOMEHELPER_*` environment variables, then CLI flags. A bad value is an error
at start that names its key.

The state root holds everything HomeHelper writes: `config/`, `data/<app>/`,
`logs/<app>/`, `registry/`, `venvs/<app>/`, `run/`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .config_sections import (  # the sections' classes, re-exported: import them from here
    AuthConfig,
    BackupConfig,
    FleetConfig,
    HistoryConfig,
    MonitorConfig,
    NotifyConfig,
    StreamlitConfig,
)
from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None
SYSTEM_ROOT = Path("/var/lib/homehelper")  # installed for root (a system service)


@attrs.frozen
class Config:
    root: Path
    apps_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    apps_port: int = 0  # app pages' own origin (a second listener): 0 = port + 1
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides localhost, IPs, this machine's name
    service_ports: tuple[int, int] = (8100, 8199)
    streamlit_ports: tuple[int, int] = (8501, 8599)
    backend: str = "auto"  # auto | systemd | process
    systemd_scope: str = "user"  # user | system
    redis_url: str | None = None  # None: the in-process bus alone
    redis_acl: str = "auto"  # auto: one Redis ACL user per app when allowed | off: apps share HomeHelper's
    node_id: str = "main"
    log_level: str = "INFO"
    event_history: int = 1000
    # Apps run at this nice value (0-19), below HomeHelper: booting or busy apps, however many, then
    # cannot starve the dashboard and the supervision of the CPU. 0: the same as HomeHelper.
    app_nice: int = 10
    streamlit: StreamlitConfig = attrs.field(factory=StreamlitConfig)
    monitor: MonitorConfig = attrs.field(factory=MonitorConfig)
    auth: AuthConfig = attrs.field(factory=AuthConfig)
    notify: NotifyConfig = attrs.field(factory=NotifyConfig)
    backup: BackupConfig = attrs.field(factory=BackupConfig)
    history: HistoryConfig = attrs.field(factory=HistoryConfig)
    fleet: FleetConfig = attrs.field(factory=FleetConfig)

    # --- layout ---
    @property
    def config_file(self) -> Path:
        return self.root / "config" / "config.json"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def history_file(self) -> Path:
        return self.root / "history.sqlite"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def data_dir(self, app_id: str) -> Path:
        return self.root / "data" / app_id

    def logs_dir(self, app_id: str) -> Path:
        return self.root / "logs" / app_id

    def venv_dir(self, app_id: str) -> Path:
        return self.root / "venvs" / app_id

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda i, f, v: str(v) if isinstance(v, Path) else v)


_CHOICES = {"backend": ("auto", "systemd", "process"), "systemd_scope": ("user", "system"),
            "redis_acl": ("auto", "off"), "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
            "notify.min_level": ("careful", "warning", "critical")}
# The keys a running HomeHelper follows (see homehelper/actors/settings.py for who follows each);
# every other key is read once at start, so changing it at run time would be a silent no-op.
EDITABLE = frozenset({"redis_url", "log_level", "streamlit", "monitor", "auth"})
_PORT = (1, 65535)
_PERCENT = (0.0, 100.0)
# Inclusive bounds of numbers, by dotted key ([i] items of a list by the list's key).
_BOUNDS: dict[str, tuple[float, float]] = {
    "port": _PORT, "service_ports": _PORT, "streamlit_ports": _PORT,
    "event_history": (1, 100_000), "app_nice": (0, 19),
    "streamlit.ttl": (1, 7 * 86400), "streamlit.max_lifetime": (1, 30 * 86400), "streamlit.max_running": (1, 64),
    "streamlit.min_available_mb": (0, 1 << 20), "streamlit.start_timeout": (1, 3600),
    "streamlit.stop_grace": (0.1, 300), "streamlit.busy_window": (0, 86400),
    "monitor.interval": (0, 86400), "monitor.history": (1, 100_000), "monitor.min_duration": (0, 86400),
    "monitor.cpu": _PERCENT, "monitor.memory": _PERCENT, "monitor.swap": _PERCENT, "monitor.disk": _PERCENT,
    "monitor.temperature": (0.0, 150.0), "monitor.hysteresis": _PERCENT, "monitor.min_free_disk_mb": (0, 1 << 30),
    "auth.session_hours": (0.01, 24 * 366),
    "backup.keep": (1, 1000),
    "monitor.redis_memory": _PERCENT, "monitor.redis_latency_ms": (0, 600_000), "monitor.redis_drops": (0, 1e9),
    "history.step": (1, 3600), "history.keep_hours": (1, 24 * 31), "history.coarse_step": (60, 86400),
    "history.keep_days": (1, 3660), "history.flush_every": (1, 3600),
    "notify.dedup_window": (0, 7 * 86400), "notify.rate_limit": (1, 1000), "notify.rate_window": (1, 86400),
    "fleet.interval": (0.05, 3600), "fleet.ttl": (0.1, 86400), "fleet.command_timeout": (0.5, 3600),
}
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_NODE_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")  # it names Redis channels


def default_root(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """Where state lives when neither --root nor HOMEHELPER_ROOT says: `./state` inside a checkout
    (git ignores it); installed, /var/lib/homehelper for root (a system service) and the XDG state
    directory (~/.local/state/homehelper) for anyone else, who cannot write to /var/lib."""
    if CHECKOUT is not None:
        return CHECKOUT / "state"
    env = os.environ if environ is None else environ
    if (os.geteuid() if euid is None else euid) == 0:
        return SYSTEM_ROOT
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "homehelper"


def redact_url(url: str | None) -> str | None:
    """A Redis URL without its password (`redis://user:***@host:6379/0`), fit for logs and events."""
    if not url or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{host}"


def _bounded(key: str, number: float) -> None:
    lo, hi = _BOUNDS.get(re.sub(r"\[\d+\]$", "", key), (0, math.inf))
    if not lo <= number <= hi:
        span = f"from {lo:g} to {hi:g}" if hi != math.inf else f"at least {lo:g}"
        raise ConfigError(f"config key {key!r} must be {span}, got {number!r}", key=key)


def _check_string(key: str, value: str) -> str | None:
    if key == "redis_url":
        if not value.strip() or value.strip().lower() == "none":
            return None  # the CLI's spelling of "no Redis"
        if not value.startswith(REDIS_SCHEMES) or len(value) > 2048 or any(c.isspace() for c in value):
            raise ConfigError(f"config key 'redis_url' must be a URL starting with {', '.join(REDIS_SCHEMES)} "
                              f"(redis://[user:password@]host:port/db), got {value[:80]!r}", key=key)
        return value
    if key == "node_id" and not _NODE_ID.fullmatch(value):
        raise ConfigError(f"config key 'node_id' must be 1-40 letters, digits, '.', '_' or '-', got {value[:80]!r}",
                          key=key)
    if key == "host" and (not value or len(value) > 255 or any(c.isspace() for c in value)):
        raise ConfigError(f"config key 'host' must be a host name or address, got {value[:80]!r}", key=key)
    if key in ("backup.dir", "backup.passphrase_file") and value and not value.startswith(("/", "~/")):
        raise ConfigError(f"config key {key!r} must be an absolute path, got {value[:80]!r}", key=key)
    if key == "backup.schedule":
        from .backup.schedule import parse_schedule  # pure, imports nothing of HomeHelper

        try:
            parse_schedule(value)
        except ValueError as exc:
            raise ConfigError(f"config key 'backup.schedule': {exc}", key=key) from None
    return value


def _convert(key: str, value: Any, default: Any) -> Any:
    """`value` from JSON or the environment, checked against the type of `default`."""
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}", key=key)
    if isinstance(default, (int, float)):
        try:
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            if number is None and isinstance(value, str):
                number = float(value) if isinstance(default, float) else int(value)
            if number is None or (isinstance(default, int) and number != int(number)):
                raise ValueError
        except ValueError:
            kind = "an integer" if isinstance(default, int) else "a number"
            raise ConfigError(f"config key {key!r} must be {kind}, got {value!r}", key=key) from None
        if not math.isfinite(number):
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}", key=key)
        if number < 0:
            raise ConfigError(f"config key {key!r} must not be negative, got {value!r}", key=key)
        _bounded(key, number)
        return type(default)(number)
    if key == "allowed_hosts":  # names (".example.org" also allows its subdomains)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v and " " not in v for v in value):
            raise ConfigError(f"config key {key!r} must be a list of host names, got {value!r}", key=key)
        return tuple(v.lower().rstrip(".") for v in value)
    if key in ("notify.urls", "notify.routes"):
        return _notify_value(key, value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in value.replace("-", ",").split(",") if v]
        if not isinstance(value, list) or len(value) != len(default):
            raise ConfigError(f"config key {key!r} must be a list of {len(default)} numbers, got {value!r}", key=key)
        items = tuple(_convert(f"{key}[{i}]", v, d) for i, (v, d) in enumerate(zip(value, default, strict=True)))
        if list(items) != sorted(items):
            raise ConfigError(f"config key {key!r} must be in increasing order, got {list(items)}", key=key)
        return items
    if isinstance(default, Path):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config key {key!r} must be a path, got {value!r}", key=key)
        return Path(value).expanduser()
    # strings, optional strings
    if value is None and key.endswith("redis_url"):
        return None
    if not isinstance(value, str):
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}", key=key)
    choices = _CHOICES.get(key)
    if choices and value not in choices:
        raise ConfigError(f"config key {key!r} must be one of {', '.join(choices)}, got {value!r}", key=key)
    return _check_string(key, value)


def _notify_value(key: str, value: Any) -> Any:
    """notify.urls: a list of apprise URLs ("tag1,tag2=URL" tags one); notify.routes: {event kind: [tags]}.

    From the environment: a JSON list / object, or for urls, URLs separated by spaces.
    """
    from .notify_rules import KINDS, TAG_RE, split_url  # pure, imports nothing of HomeHelper

    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip()[:1] in ("[", "{") else value.split()
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config key {key!r} is not valid JSON: {exc}", key=key) from None
    if key == "notify.urls":
        if not isinstance(value, list) or len(value) > 32:
            raise ConfigError(f"config key {key!r} must be a list of at most 32 apprise URLs", key=key)
        for i, entry in enumerate(value):
            if not isinstance(entry, str) or len(entry) > 2048 or any(c.isspace() for c in entry):
                raise ConfigError(f"config key '{key}[{i}]' must be a URL without spaces", key=key)
            tags, url = split_url(entry)
            if "://" not in url or not all(TAG_RE.fullmatch(t) for t in tags):
                raise ConfigError(f"config key '{key}[{i}]' must be an apprise URL (ntfy://..., json://...), "
                                  "optionally tagged as tag1,tag2=URL (tags: a-z 0-9 _ -)", key=key)
        return tuple(value)
    if not isinstance(value, dict) and not isinstance(value, list):
        raise ConfigError(f"config key {key!r} must map event kinds to lists of tags", key=key)
    pairs = value.items() if isinstance(value, dict) else value  # a list of pairs: what to_json() wrote
    out: list[tuple[str, tuple[str, ...]]] = []
    for pair in pairs:
        kind, tags = pair if isinstance(pair, (tuple, list)) and len(pair) == 2 else (None, None)  # type: ignore[assignment]
        if kind not in KINDS:
            raise ConfigError(f"config key {key!r}: {str(kind)[:40]!r} is not a kind that notifies; "
                              f"one of {', '.join(KINDS)}", key=key)
        if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.fullmatch(t) for t in tags):
            raise ConfigError(f"config key '{key}.{kind}' must be a list of tags (a-z 0-9 _ -)", key=key)
        out.append((kind, tuple(tags)))
    return tuple(out)


def _apply(obj: Any, changes: dict[str, Any], prefix: str = "") -> Any:
    fields = {f.name: f for f in attrs.fields(type(obj))}
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key {dotted!r}", key=dotted)
        current = getattr(obj, key)
        if attrs.has(type(current)):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted!r} must be an object", key=dotted)
            updates[key] = _apply(current, value, f"{dotted}.")
        else:
            default = current if current is not None else ""
            updates[key] = _convert(dotted, value, default)
    new = attrs.evolve(obj, **updates)
    for port_key in ("port", "apps_port"):
        if prefix == "" and port_key in updates and not (port_key == "apps_port" and new.apps_port == 0) \
                and not 1 <= getattr(new, port_key) <= 65535:
            raise ConfigError(f"config key {port_key!r} must be from 1 to 65535, got {getattr(new, port_key)}",
                              key=port_key)
    if prefix == "" and {"port", "apps_port", "service_ports", "streamlit_ports"} & set(updates):
        _check_ports(new)
    return new


def _check_ports(config: Config) -> None:
    """The dashboard's port and the two app ranges must not overlap: an app would take the other's port."""
    s, t = config.service_ports, config.streamlit_ports
    if s[0] <= t[1] and t[0] <= s[1]:
        raise ConfigError(f"config keys 'service_ports' {list(s)} and 'streamlit_ports' {list(t)} overlap",
                          key="service_ports")
    apps_port = config.apps_port or config.port + 1
    for key, (lo, hi) in (("service_ports", s), ("streamlit_ports", t)):
        for what, port in (("dashboard's port", config.port), ("app pages' port (apps_port)", apps_port)):
            if lo <= port <= hi:
                raise ConfigError(f"config key {key!r} {[lo, hi]} holds the {what} {port}", key=key)


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    """HOMEHELPER_PORT=8001, HOMEHELPER_STREAMLIT__TTL=60 -> nested changes."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("HOMEHELPER_") or name in ("HOMEHELPER_ROOT", "HOMEHELPER_PASSWORD"):
            continue
        parts = name[len("HOMEHELPER_"):].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def resolve_root(root: Path | str | None = None, environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The state root, and what chose it (said at start): --root, HOMEHELPER_ROOT, or the default."""
    env = os.environ if environ is None else environ
    if root:
        return Path(root).expanduser().resolve(), "--root"
    if env.get("HOMEHELPER_ROOT"):
        return Path(env["HOMEHELPER_ROOT"]).expanduser().resolve(), "HOMEHELPER_ROOT"
    if CHECKOUT is not None:
        why = "inside the checkout"
    elif os.geteuid() == 0:
        why = "the system default, running as root"
    else:
        why = "the user's XDG state directory"
    return default_root(env).expanduser().resolve(), why


def load_config(root: Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Defaults < config.json < environment < `overrides` (CLI flags)."""
    env = dict(os.environ if environ is None else environ)
    root, _ = resolve_root(root, env)
    apps_default = CHECKOUT / "apps" if CHECKOUT is not None and root == default_root(env).resolve() else root / "apps"
    config = Config(root=root, apps_dir=apps_default)
    path = config.config_file
    data = read_config_file(path)
    if data is not None:
        try:
            config = _apply(config, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", key=exc.detail.get("key")) from None
    config = _apply(config, _from_env(env))
    if overrides:
        config = _apply(config, {k: v for k, v in overrides.items() if v is not None})
    return config


def read_config_file(path: Path) -> dict[str, Any] | None:
    """config.json's object, None when there is none. A file that is not a JSON object (damaged, or
    never JSON) raises ConfigError with detail `damaged`: what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        what = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError(f"{path} is {what}", damaged=what) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        what = f"not valid JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else "not valid JSON: nested too deep"
        raise ConfigError(f"{path} is {what}", damaged=what) from None
    if not isinstance(data, dict):
        what = f"not a JSON object but {type(data).__name__}"
        raise ConfigError(f"{path} must hold a JSON object, it is {what}", damaged=what)
    return data


def change_config(config: Config, changes: dict[str, Any]) -> Config:
    """Apply a change made at run time (API); refuse keys that need a restart."""
    for key in changes:
        if key not in EDITABLE:
            raise ConfigError(f"config key {key!r} cannot be changed while running; edit {config.config_file}", key=key)
    return _apply(config, changes)
