"""Network walls between apps under systemd: an app without `lan` or `internet` runs in a
network namespace of its own (`PrivateNetwork=yes`): only its own loopback, so it cannot
connect to another app's port, to HomeHelper's API or to anything else.

Address filters alone could not do this: `IPAddressDeny=` (cgroup BPF, and ignored by a user
manager or on a cgroup v1/v2 hybrid) cannot tell one local port from another. Two ways in stay
open, both made by HomeHelper:

- its HTTP port: a socket unit `hh-<id>.proxy.socket` listens on 127.0.0.1:<port> on the host and
  starts `systemd-socket-proxyd` (`hh-<id>.proxy.service`), which forwards to a Unix socket in the
  app's http folder `<root>/run/http/<id>/`; inside the app's namespace a second
  systemd-socket-proxyd, forked by portshim.py before it execs the app, forwards that to the
  app's own 127.0.0.1:<port>. The app binds HH_HOST:HH_PORT as before; the dashboard's proxy and
  health checks reach it as before. The app requires its socket: a port another program holds
  fails the app's start.

  Why not the pattern of systemd-socket-proxyd(8) (the proxy unit `JoinsNamespaceOf=` the app)?
  Under a user manager that is not root (a Pi's), every unit gets its own user namespace
  (`PrivateUsers=`, implied by `PrivateNetwork=`), and systemd 252 cannot join a network
  namespace owned by another unit's: it logs "ignoring" and runs the proxy on the host's
  network, where it only reaches itself. A fork inside the app's unit shares both namespaces.
- the bus: HomeHelper relays a Unix socket in the app's own folder `<root>/run/bus/<id>/`,
  bound into the app, to Redis (homehelper.bus.relay); HH_REDIS_URL becomes a `unix://` URL
  with the app's own Redis credentials.

The companions' names hold a `.`, which an app id never does: no app can own them. They
are bound to the app's unit (`BindsTo=`): a stop or crash of the app takes them down and
frees the port.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from ..errors import BackendError
from .base import AppSpec
from .sandbox import walled, walls
from .units import UNIT_PREFIX, _description, _qpath, unit_name

SHIM = Path(__file__).with_name("portshim.py")
PROXYD = (Path("/usr/lib/systemd/systemd-socket-proxyd"), Path("/lib/systemd/systemd-socket-proxyd"))
# What the proxy itself may do: forward bytes between two local sockets.
PROXY_SANDBOX = (
    "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=tmpfs", "PrivateTmp=yes", "PrivateDevices=yes",
    "PrivateUsers=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes", "ProtectProc=invisible", "ProcSubset=pid",
    "RestrictNamespaces=yes", "RestrictRealtime=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service", "SystemCallFilter=~@privileged @resources", "CapabilityBoundingSet=",
    "UMask=0077", "MemoryMax=32M", "TasksMax=8",
)


def port(spec: AppSpec) -> int | None:
    value = dict(spec.env).get("HH_PORT", "")
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else None


def socket_unit(app_id: str, prefix: str = UNIT_PREFIX) -> str:
    return f"{prefix}{app_id}.proxy.socket"


def proxy_unit(app_id: str, prefix: str = UNIT_PREFIX) -> str:
    return f"{prefix}{app_id}.proxy.service"


def companions(app_id: str, prefix: str = UNIT_PREFIX) -> tuple[str, str]:
    return socket_unit(app_id, prefix), proxy_unit(app_id, prefix)


def is_companion(name: str) -> bool:
    return name.endswith((".proxy.socket", ".proxy.service"))


def unit_lines(spec: AppSpec, prefix: str = UNIT_PREFIX) -> list[str]:
    """[Unit] lines of the app: it starts only with its port's socket listening (a port another
    program holds fails the start, rather than leaving the app unreachable)."""
    if not walled(spec) or not port(spec):
        return []
    sock = socket_unit(spec.app_id, prefix)
    return [f"Requires={sock}", f"After={sock}"]


def service_lines(spec: AppSpec, bus: Path | None, http: Path | None = None) -> list[str]:
    """[Service] lines of the app: its relay folder `bus`, bound back (read-only: connecting needs
    no write access) under the hidden state root, and its http folder (where portshim listens)."""
    if not walled(spec):
        return []
    lines = [f"BindReadOnlyPaths={_qpath(bus, 'bus folder')}"] if bus is not None else []
    if http is not None and port(spec) is not None:
        lines.append(f"BindPaths={_qpath(http, 'http folder')}")
    return lines


def http_socket(http: Path) -> Path:
    return http / "http.sock"


def wrapped(spec: AppSpec, http: Path, program: Path | None = None) -> AppSpec:
    """`spec` with its program started by portshim.py (a walled app with a port), else as it was."""
    p = port(spec)
    if not walled(spec) or p is None:
        return spec
    python = spec.argv[0] if Path(spec.argv[0]).name.startswith("python") else sys.executable
    argv = (python, "-I", str(SHIM), str(http_socket(http)), str(p), str(program or proxyd()), "--", *spec.argv)
    return attrs.evolve(spec, argv=argv)


def proxyd() -> Path:
    for path in PROXYD:
        if path.exists():
            return path
    raise BackendError("systemd-socket-proxyd is missing (it comes with the systemd package): "
                       "apps without the lan or internet permission cannot be reached without it")


def render_socket(spec: AppSpec, prefix: str = UNIT_PREFIX) -> str:
    app = unit_name(spec.app_id, prefix)
    return "\n".join([
        "# Written by HomeHelper; edits are overwritten. The app's manifest is the source.",
        "[Unit]",
        f"Description={_description(f'HomeHelper way into {spec.app_id}')}",
        f"BindsTo={app}",
        "",
        "[Socket]",
        f"ListenStream=127.0.0.1:{_checked_port(spec)}",
        "",
    ])


def render_proxy(spec: AppSpec, http: Path, prefix: str = UNIT_PREFIX, program: Path | None = None) -> str:
    """The host side: from the socket unit's port to the app's http socket. It sees nothing but
    that folder (the app could make http.sock a symlink: it would lead nowhere)."""
    app = unit_name(spec.app_id, prefix)
    exe = program or proxyd()
    _checked_port(spec)
    hidden, _, _ = walls(spec)
    return "\n".join([
        "# Written by HomeHelper; edits are overwritten. The app's manifest is the source.",
        "[Unit]",
        f"Description={_description(f'HomeHelper proxy into {spec.app_id}')}",
        f"BindsTo={app}",
        f"After={app}",
        "",
        "[Service]",
        f"ExecStart={_qpath(exe, 'proxy')} {_qpath(http_socket(http), 'http socket')}",
        "PrivateNetwork=yes",
        *PROXY_SANDBOX,
        *(f"TemporaryFileSystem={_qpath(h, 'state root')}:ro" for h in (Path("/run"), *hidden)),
        f"BindReadOnlyPaths={_qpath(http, 'http folder')}",
        "",
    ])


def _checked_port(spec: AppSpec) -> int:
    p = port(spec)
    if p is None:
        raise BackendError(f"{spec.app_id} has no port to proxy")
    return p


def companion_texts(spec: AppSpec, http: Path, prefix: str = UNIT_PREFIX) -> dict[str, str | None]:
    """Unit name -> text for the app's socket and proxy units; None: the app has none (remove them)."""
    names = companions(spec.app_id, prefix)
    if not walled(spec) or port(spec) is None:
        return dict.fromkeys(names)
    return {names[0]: render_socket(spec, prefix), names[1]: render_proxy(spec, http, prefix)}


# --- the bus through the relay --------------------------------------------------------------

def relay_target(url: str) -> tuple[str, int] | str:
    """Where the relay forwards to: (host, port) of a redis:// URL, or the path of a unix:// one."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return unquote(parts.path)
    if parts.scheme != "redis":  # rediss: TLS would have to end in the relay
        raise BackendError(f"the bus relay speaks redis:// and unix:// only, not {parts.scheme}://: give apps "
                           "that need the bus the lan permission, or point HomeHelper at a plain Redis")
    return parts.hostname or "127.0.0.1", parts.port or 6379


def relay_url(url: str, sock: Path) -> str:
    """The app's URL through its relay: the same user, password and database on `sock`."""
    parts = urlsplit(url)
    db = dict(parse_qsl(parts.query)).get("db") or (parts.path.strip("/") if parts.scheme != "unix" else "")
    db = db if re.fullmatch(r"\d{1,5}", db) else ""
    cred = ""
    if parts.username is not None:
        cred = quote(unquote(parts.username), safe="")
        if parts.password is not None:
            cred += ":" + quote(unquote(parts.password), safe="")
        cred += "@"
    elif parts.password is not None:
        cred = ":" + quote(unquote(parts.password), safe="") + "@"
    return f"unix://{cred}{quote(str(sock))}" + (f"?db={db}" if db else "")


def same_netns(pid: int) -> bool | None:
    """True when process `pid` shares HomeHelper's network namespace (the wall did not hold: a
    manager without the right to make namespaces says so only in its log), None if it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
