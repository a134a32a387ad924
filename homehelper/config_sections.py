"""The sections of the configuration (`streamlit`, `monitor`, `auth`, `notify`, `backup`,
`history`): their keys and defaults. homehelper.config reads, checks and re-exports them."""

from __future__ import annotations

import attrs


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
    redis_memory: tuple[float, float, float] = (70.0, 85.0, 95.0)  # % of Redis's maxmemory
    redis_latency_ms: tuple[float, float, float] = (50.0, 200.0, 1000.0)  # the bridge's publish p99
    redis_drops: tuple[float, float, float] = (1.0, 1.0, 1000.0)  # events the bridge dropped since the last sample


@attrs.frozen
class AuthConfig:
    loopback_without_login: bool = False
    session_hours: float = 12.0  # sliding expiry


@attrs.frozen
class NotifyConfig:
    """Notifications outside the dashboard (apprise URLs); read at start. See docs/operations.md."""

    urls: tuple[str, ...] = ()  # apprise URLs, each optionally "tag1,tag2=URL"
    routes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (event kind, tags): a kind listed goes to those tags only
    dedup_window: float = 600.0  # repeats of one (kind, app) within it become one summary
    rate_limit: int = 10  # messages per rate_window, then one "N held back" summary
    rate_window: float = 600.0
    min_level: str = "warning"  # machine alerts below this level do not notify


@attrs.frozen
class BackupConfig:
    """Backups (docs/operations.md); read at start."""

    dir: str = ""  # where archives go; "" = <root>/backups (a USB disk or network mount: an absolute path)
    schedule: str = ""  # "" = none; "every 6h", "daily 03:00", "weekly sun 03:00" (homehelper/backup/schedule.py)
    keep: int = 7  # archives kept in `dir`; older ones HomeHelper wrote are removed
    passphrase_file: str = ""  # when set, secrets are included, encrypted with this file's passphrase


@attrs.frozen
class HistoryConfig:
    """Metrics history on disk (`<root>/history.sqlite`); read at start. See docs/operations.md."""

    enabled: bool = True  # false: charts cover this run only, nothing is written
    step: int = 30  # seconds per point of the fine history
    keep_hours: float = 24.0  # of the fine history
    coarse_step: int = 600  # seconds per point of the long history
    keep_days: float = 30.0  # of the long history
    flush_every: float = 300.0  # seconds between batch writes (and at a clean stop)


@attrs.frozen
class FleetConfig:
    """Several HomeHelpers over one Redis (docs/fleet.md); read at start."""

    interval: float = 5.0  # seconds between presence refreshes
    ttl: float = 15.0  # a node that stops refreshing is shown offline after this many seconds
    command_timeout: float = 30.0  # how long an action on another node waits for its answer (then it expires)
    address: str = ""  # the dashboard URL other nodes link to; "" = the one this node listens on
