"""Configuration: defaults, then `config/config.json` under the state root, then
`HOMEHELPER_*` environment variables, then CLI flags. A bad value is an error
at start that names its key.

The state root holds everything HomeHelper writes: `config/`, `data/<app>/`,
`logs/<app>/`, `registry/`, `venvs/<app>/`, `run/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None
PRODUCTION_ROOT = Path("/opt/homehelper")


@attrs.frozen
class StreamlitConfig:
    ttl: float = 300.0  # idle seconds before a Streamlit app is stopped (a manifest may override)
    max_lifetime: float = 4 * 3600.0
    max_running: int = 3
    min_available_mb: int = 256  # below this, idle Streamlit apps are evicted
    start_timeout: float = 30.0
    stop_grace: float = 5.0
    busy_window: float = 30.0  # an app used within this many seconds is never evicted for another


@attrs.frozen
class MonitorConfig:
    interval: float = 30.0  # background sampling, for alerts and history
    history: int = 240  # samples kept in memory
    min_duration: float = 60.0  # a level must hold this long before an alert
    cpu: tuple[float, float, float] = (65.0, 75.0, 85.0)  # careful, warning, critical
    memory: tuple[float, float, float] = (50.0, 70.0, 90.0)
    swap: tuple[float, float, float] = (50.0, 70.0, 90.0)
    disk: tuple[float, float, float] = (50.0, 70.0, 90.0)
    temperature: tuple[float, float, float] = (45.0, 65.0, 80.0)
    hysteresis: float = 5.0  # points below a threshold before its alert clears
    min_free_disk_mb: int = 2048  # installs are refused below this


@attrs.frozen
class AuthConfig:
    loopback_without_login: bool = False
    session_hours: float = 12.0  # sliding expiry


@attrs.frozen
class Config:
    root: Path
    apps_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    service_ports: tuple[int, int] = (8100, 8199)
    streamlit_ports: tuple[int, int] = (8501, 8599)
    backend: str = "auto"  # auto | systemd | process
    systemd_scope: str = "user"  # user | system
    redis_url: str | None = None  # None: the in-process bus alone
    redis_acl: str = "auto"  # auto: one Redis ACL user per app when allowed | off: apps share HomeHelper's
    node_id: str = "main"
    log_level: str = "INFO"
    event_history: int = 1000
    streamlit: StreamlitConfig = StreamlitConfig()
    monitor: MonitorConfig = MonitorConfig()
    auth: AuthConfig = AuthConfig()

    # --- layout ---
    @property
    def config_file(self) -> Path:
        return self.root / "config" / "config.json"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

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
            "redis_acl": ("auto", "off"), "log_level": ("DEBUG", "INFO", "WARNING", "ERROR")}
EDITABLE = frozenset({"redis_url", "log_level", "event_history", "streamlit", "monitor", "auth"})


def default_root() -> Path:
    """Inside the checkout while developing (git ignores it), else /opt/homehelper."""
    return CHECKOUT / "state" if CHECKOUT is not None else PRODUCTION_ROOT


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
        if number < 0:
            raise ConfigError(f"config key {key!r} must not be negative, got {value!r}", key=key)
        return type(default)(number)
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
    return value


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
    for port_key in ("port",):
        if prefix == "" and port_key in updates and not 1 <= new.port <= 65535:
            raise ConfigError(f"config key 'port' must be from 1 to 65535, got {new.port}", key="port")
    return new


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


def load_config(root: Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Defaults < config.json < environment < `overrides` (CLI flags)."""
    env = dict(os.environ if environ is None else environ)
    root = Path(root or env.get("HOMEHELPER_ROOT") or default_root()).expanduser().resolve()
    apps_default = CHECKOUT / "apps" if CHECKOUT is not None and root == default_root() else root / "apps"
    config = Config(root=root, apps_dir=apps_default)
    path = config.config_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    if text is not None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object")
        try:
            config = _apply(config, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", key=exc.detail.get("key")) from None
    config = _apply(config, _from_env(env))
    if overrides:
        config = _apply(config, {k: v for k, v in overrides.items() if v is not None})
    return config


def change_config(config: Config, changes: dict[str, Any]) -> Config:
    """Apply a change made at run time (API); refuse keys that need a restart."""
    for key in changes:
        if key not in EDITABLE:
            raise ConfigError(f"config key {key!r} cannot be changed while running; edit {config.config_file}", key=key)
    return _apply(config, changes)
