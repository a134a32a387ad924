"""`homehelper install`: HomeHelper itself as a systemd service, so a Pi comes
back up with HomeHelper after a reboot, and HomeHelper with its apps (their
units are enabled on their own and adopted when HomeHelper starts).

User scope (the default) needs lingering, or the user's manager only runs
while someone is logged in. System scope runs HomeHelper as root, since it
manages system units; its apps' units run as the owner of the state root.
The unit names the state root it was installed with (--root): installed
outside a checkout that is ~/.local/state/homehelper for a user and
/var/lib/homehelper for root (which systemd then creates: StateDirectory=).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .backends.systemd import unit_dir
from .config import SYSTEM_ROOT, Config
from .storage import atomic_write_text

UNIT = "homehelper.service"


def _user() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def render_self_unit(config: Config, scope: str, python: str = sys.executable) -> str:
    root = str(config.root)
    lines = [
        "# Written by `homehelper install`.",
        "[Unit]",
        "Description=HomeHelper: supervised home-automation apps",
        "Wants=network-online.target",
        "After=network-online.target redis-server.service",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={python} -m homehelper --root {root} serve",
        f"WorkingDirectory={root}",
        f"Environment=HOMEHELPER_ROOT={root}",
        "Environment=PYTHONUNBUFFERED=1",
        *(["StateDirectory=homehelper", "StateDirectoryMode=0755"] if config.root == SYSTEM_ROOT else []),
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=10",
        # Service apps are units of their own: stopping HomeHelper leaves them running, to be adopted.
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ]
    lines += ["", "[Install]", f"WantedBy={'multi-user.target' if scope == 'system' else 'default.target'}", ""]
    return "\n".join(lines)


def _run(cmd: list[str], environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=dict(environ), capture_output=True, text=True, timeout=60, check=False)


def install(config: Config, scope: str, start: bool = True, environ: Mapping[str, str] | None = None,
            out: Any = sys.stdout) -> int:
    env = dict(os.environ if environ is None else environ)
    if scope == "system" and os.geteuid() != 0:
        print("homehelper install --scope system needs root: run it with sudo", file=sys.stderr)
        return 1
    path = unit_dir(scope, env) / UNIT
    atomic_write_text(path, render_self_unit(config, scope))
    print(f"wrote {path}", file=out)
    ctl = ["systemctl", "--user" if scope == "user" else "--system"]
    steps = [[*ctl, "daemon-reload"], [*ctl, "enable", *(["--now"] if start else []), UNIT]]
    for cmd in steps:
        proc = _run(cmd, env)
        if proc.returncode != 0:
            print(f"homehelper install: {' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()}",
                  file=sys.stderr)
            return 1
    print(f"enabled {UNIT} ({scope} scope){' and started it' if start else ''}", file=out)
    if scope == "user":
        user = _user()
        proc = _run(["loginctl", "enable-linger", user], env)
        if proc.returncode != 0:
            # Not fatal: the unit is in place; without lingering it starts at the user's first login.
            print(f"warning: `loginctl enable-linger {user}` failed ({(proc.stderr or proc.stdout).strip()}); "
                  f"run it as root so HomeHelper starts at boot without a login", file=sys.stderr)
        else:
            print(f"lingering enabled for {user}: the user manager starts at boot", file=out)
    return 0


def install_command(config: Config, args: Any) -> int:
    """The CLI entry: `homehelper install [--scope user|system] [--dry-run] [--no-start]`."""
    scope = getattr(args, "scope", None) or config.systemd_scope
    if getattr(args, "dry_run", False):
        print(render_self_unit(config, scope), end="")
        return 0
    return install(config, scope, start=not getattr(args, "no_start", False))


def unit_path(scope: str, environ: Mapping[str, str] | None = None) -> Path:
    return unit_dir(scope, environ) / UNIT
