"""What a service app may reach under systemd: the default sandbox, the walls around
HomeHelper's state, and what each approved permission or device adds.

docs/services.md has the same table for people. Each directive here was checked on
systemd 252 (`systemd-analyze verify` and a real start). Two choices matter:

- Devices go through the mount namespace: `PrivateDevices=yes` always, and each allowed
  node is bound into the private /dev (`BindPaths=`) besides `DeviceAllow=`. A user
  manager cannot attach the cgroup device filter (systemd/systemd#23198: DevicePolicy= is
  ignored there), so `PrivateDevices=no` + `DeviceAllow=` would show an app every node
  its user's groups open. Nodes are found when the unit is written, at each start.
- The walls are mounts too: `TemporaryFileSystem=` over the state root and the apps
  folder, then the app's own folders bound back. Network filters (`IPAddressDeny=`,
  `SocketBindDeny=`) are cgroup BPF: enforced by a system manager on cgroup v2 (a Pi's
  PID 1), ignored by user managers; they are written anyway so system scope gets them.
"""

from __future__ import annotations

import glob
import grp
import ipaddress
import os
import site
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from ..errors import DeviceMissing
from .base import AppSpec

BASE = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=tmpfs",  # the user's files and session (/home, /root, /run/user): an empty tmpfs
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "DevicePolicy=closed",
    "PrivateUsers=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "KeyringMode=private",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "UMask=0077",
    # MemoryDenyWriteExecute is left out: libffi and some wheels need W+X pages.
)

# Device nodes each permission opens, found under /dev when the unit is written.
NODES: dict[str, tuple[str, ...]] = {
    "gpio": ("/dev/gpiochip*", "/dev/gpiomem*"),
    "i2c": ("/dev/i2c-*",),
    "spi": ("/dev/spidev*",),
    "usb": ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/bus/usb/*/*"),
    "video": ("/dev/video*", "/dev/media*", "/dev/v4l-subdev*", "/dev/dma_heap/*"),
}
# Groups that own those nodes on Raspberry Pi OS; a system-scope unit joins the ones that exist.
GROUPS: dict[str, tuple[str, ...]] = {
    "gpio": ("gpio",), "i2c": ("i2c",), "spi": ("spi",), "usb": ("dialout", "plugdev"), "video": ("video", "render"),
    "bluetooth": ("bluetooth",),
}
FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6")
LAN = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "link-local", "multicast")
# Under systemd's private /tmp these would not be the folders HomeHelper wrote.
PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))
# What ProtectHome=tmpfs hides; HomeHelper's own files there are bound back like those in PRIVATE_TMP.
HOMES = (Path("/home"), Path("/root"), Path("/run/user"))
# Never walled off, whatever the layout says: an app could not run without them.
SYSTEM = frozenset(Path(p) for p in ("/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/sys", "/dev",
                                     "/run", "/var", "/home", "/root", "/opt", "/srv", "/mnt", "/media"))


def _own_paths() -> tuple[Path, ...]:
    """HomeHelper's interpreter (the base one too: app venvs link to it), its packages and its
    checkout: app venvs import from them (a .pth)."""
    paths = [Path(sys.base_prefix), Path(sys.prefix), *(Path(p) for p in site.getsitepackages()),
             Path(__file__).resolve().parents[1]]
    return tuple(dict.fromkeys(p for p in paths if p.is_dir()))


OWN_PATHS = _own_paths()


@attrs.frozen
class Node:
    """A device node an app may open: `node` is the real one, `at` where the app asked for it."""

    node: Path
    at: Path


def _is_device(path: Path) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def resolve_devices(spec: AppSpec) -> list[Node]:
    """The nodes `spec` may open. Blocking (globs /dev): call it in a thread.

    A device the manifest names that is not there is an error naming it; a permission's
    pattern that matches nothing is not (the hardware may be absent or unplugged)."""
    found: dict[Path, Node] = {}
    missing: list[str] = []
    for asked in spec.devices:
        paths = sorted(glob.glob(asked)) if any(c in asked for c in "*?") else [asked]
        nodes = [(Path(p), Path(os.path.realpath(p))) for p in paths]
        good = [(p, real) for p, real in nodes if real.parts[:2] == ("/", "dev") and _is_device(real)]
        if not good:
            missing.append(asked)
        for p, real in good:
            found.setdefault(p, Node(real, p))
            found.setdefault(real, Node(real, real))
    if missing:
        raise DeviceMissing(f"device {', '.join(missing)} not found: plug it in (or fix the manifest's devices) "
                            "and start the app again", devices=missing)
    for permission in spec.permissions:
        for pattern in NODES.get(permission, ()):
            for match in sorted(glob.glob(pattern)):
                if _is_device(Path(match)):
                    node = Path(os.path.realpath(match))
                    found.setdefault(node, Node(node, node))
    return list(found.values())


def groups_for(permissions: Iterable[str]) -> list[str]:
    """The permission's groups that exist on this machine."""
    out: list[str] = []
    for p in permissions:
        for g in GROUPS.get(p, ()):
            try:
                grp.getgrnam(g)
            except KeyError:
                continue
            if g not in out:
                out.append(g)
    return out


def private_tmp_problem(*paths: Path) -> str | None:
    """Why units cannot use `paths`, or None: systemd gives every app its own /tmp and /var/tmp."""
    for path in paths:
        for tmp in PRIVATE_TMP:
            if path == tmp or tmp in path.parents:
                return (f"{path} is under {tmp}, which every systemd unit replaces with a private one "
                        f"(PrivateTmp=yes): the apps would not find their folders. Move the state root "
                        f"(HOMEHELPER_ROOT) and apps folder outside /tmp and /var/tmp, or set backend to 'process'")
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def walls(spec: AppSpec, own: tuple[Path, ...] = OWN_PATHS) -> tuple[list[Path], list[Path], list[Path]]:
    """(hidden, bound read-write, bound read-only): HomeHelper's state root and the apps folder are
    hidden; the app's data and logs come back writable, its venv, its folder and HomeHelper's own
    packages (shared into app venvs by a .pth) readable."""
    # The layout (config.py): <root>/data/<id>, <root>/logs/<id>, <root>/venvs/<id>; apps/<folder>.
    tops = [spec.data_dir.parent.parent, spec.log_dir.parent.parent, spec.cwd.parent]
    hidden: list[Path] = []
    for top in sorted(set(tops), key=lambda p: len(p.parts)):
        if top not in SYSTEM and len(top.parts) > 1 and not any(_inside(top, h) for h in hidden):
            hidden.append(top)
    venv = Path(spec.argv[0]).parent.parent
    # Never bind back a folder holding what the walls hide (HomeHelper's venv made in the root itself).
    private = [*hidden, *(h / name for h in hidden for name in ("config", "run", "registry", "data", "logs", "venvs"))]
    # A private /tmp and ProtectHome=tmpfs hide more: HomeHelper run from a checkout in a home
    # folder or /tmp (its interpreter under ~/.pyenv) is bound back the same way.
    out_of_sight = [*hidden, *PRIVATE_TMP, *HOMES]
    readonly: list[Path] = []
    for path in (venv, spec.cwd, *own):
        # Not /home/pi itself (or /root, /tmp): that would bring back the user's files.
        if (any(_inside(path, h) for h in out_of_sight) and not {path, path.parent} & {*PRIVATE_TMP, *HOMES}
                and not any(_inside(p, path) for p in private) and not any(_inside(path, r) for r in readonly)):
            readonly = [r for r in readonly if not _inside(r, path)] + [path]
    return hidden, [spec.data_dir, spec.log_dir], readonly


def _port(spec: AppSpec) -> int | None:
    value = dict(spec.env).get("HH_PORT", "")
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else None


def _redis_ip(spec: AppSpec) -> str | None:
    """The Redis server's address when it is an IP elsewhere: the app may always reach it."""
    url = dict(spec.secrets).get("HH_REDIS_URL") or dict(spec.env).get("HH_REDIS_URL")  # secrets: its own user
    try:
        host = urlsplit(url).hostname if url else None
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


def walled(spec: AppSpec) -> bool:
    """True when the app gets a network of its own (netwall.py): it asked for neither `lan` nor `internet`."""
    return not {"lan", "internet"} & set(spec.permissions)


def network(spec: AppSpec) -> list[str]:
    """Address families, addresses and the one port an app may bind."""
    perms = set(spec.permissions)
    families = [*FAMILIES, *(["AF_BLUETOOTH"] if "bluetooth" in perms else [])]
    lines = [f"RestrictAddressFamilies={' '.join(families)}"]
    if walled(spec):  # only its own loopback: no other app's port, no HomeHelper API (netwall.py)
        lines.append("PrivateNetwork=yes")
    if "internet" not in perms:  # only this machine (and with `lan` the local network)
        allow = ["localhost", *(LAN if "lan" in perms else ()), *filter(None, [_redis_ip(spec)])]
        lines += ["IPAddressDeny=any", f"IPAddressAllow={' '.join(allow)}"]
    port = _port(spec)
    lines += [*([f"SocketBindAllow=tcp:{port}"] if port else []),
              *(["SocketBindAllow=udp"] if "lan" in perms else []),  # discovery: mDNS, SSDP
              "SocketBindDeny=any"]
    return lines


def proc(spec: AppSpec) -> list[str]:
    if "host-metrics" in spec.permissions:  # /proc/stat, /proc/meminfo, other processes' stats
        return ["ProtectProc=default", "ProcSubset=all"]
    return ["ProtectProc=invisible", "ProcSubset=pid"]
