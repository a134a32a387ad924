"""What HomeHelper gives an app: its settings (from the environment it starts the app with), its
data folder, and the sd_notify socket a watchdog app reports to (ready(), heartbeat())."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..bus.channels import APP_RE, check_name

log = logging.getLogger("homehelper.sdk")


@dataclass(frozen=True)
class Settings:
    """What HomeHelper tells an app about itself (`settings()` reads it from the environment)."""

    app_id: str
    port: int | None  # None when HomeHelper gave the app no port
    host: str
    data_dir: Path
    log_dir: Path
    redis_url: str | None  # None: no bus
    node_id: str


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The app's settings from the environment HomeHelper starts it with.

    Run by hand (no HH_* variables) an app gets workable defaults: its folder's
    name as id, ./data and ./logs, and no bus.
    """
    env = os.environ if environ is None else environ
    app_id = env.get("HH_APP_ID") or _default_id()
    if not APP_RE.fullmatch(app_id):
        raise ValueError(f"HH_APP_ID must be 1-40 lowercase letters, digits or '-', got {app_id!r}")
    port: int | None = None
    raw_port = env.get("HH_PORT", "")
    if raw_port and raw_port != "0":  # "0": no port (a job gets one)
        try:
            port = int(raw_port)
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise ValueError(f"HH_PORT must be an integer from 1 to 65535, got {raw_port!r}") from None
    node_id = env.get("HH_NODE_ID") or "main"
    check_name("HH_NODE_ID", node_id)
    return Settings(
        app_id=app_id, port=port, host=env.get("HH_HOST") or "127.0.0.1",
        data_dir=Path(env.get("HH_DATA_DIR") or "data").expanduser(),
        log_dir=Path(env.get("HH_LOG_DIR") or "logs").expanduser(),
        redis_url=env.get("HH_REDIS_URL") or None, node_id=node_id,
    )


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The app's own data folder ($HH_DATA_DIR; ./data when run by hand), made if missing.

    Under systemd's sandbox it is the one place (with the log folder) the app may write; it is
    kept across restarts and updates, and backed up with the app."""
    folder = settings(environ).data_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send an sd_notify message ("READY=1", "WATCHDOG=1", "STATUS=...") to $NOTIFY_SOCKET, a path
    or an abstract name ('@...'). False when there is no socket (run by hand) or it cannot be
    reached (HomeHelper restarting): never raises, so health reporting cannot end the app."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind of address HomeHelper never gives (vsock)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("homehelper.sdk: notify %r to %s failed: %s", state, env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """Tell HomeHelper the app is set up and running (READY=1); a watchdog app is 'starting' until then."""
    return notify("READY=1", environ)


def heartbeat(environ: Mapping[str, str] | None = None) -> bool:
    """Tell HomeHelper the app is alive (WATCHDOG=1). A watchdog app silent for longer than its
    manifest's health.interval is restarted as if it had crashed."""
    return notify("WATCHDOG=1", environ)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which heartbeat() must be called ($WATCHDOG_USEC), None when nobody watches."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        if env.get("WATCHDOG_PID") and int(env["WATCHDOG_PID"]) != os.getpid():
            return None  # inherited by a child: the watchdog means the main process
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _default_id() -> str:
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path.cwd()
    name = (script.parent if script.is_file() else script).name.lower()
    return name if APP_RE.fullmatch(name) else "app"
