"""systemd unit files for service apps, written for systemd 252 (Debian 12 and
Raspberry Pi OS bookworm): no `RestartSteps`, `StartLimit*` in `[Unit]`.

systemd never restarts an app itself (`Restart=no`): HomeHelper's actor owns
the policy (backoff, quarantine), so both backends behave alike. The sandbox
gives an app its own data and log folders to write and nothing else.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .base import AppSpec

UNIT_PREFIX = "hh-"

# Each line was checked with `systemd-analyze verify` and a real start on systemd 252.
# MemoryDenyWriteExecute is left out: libffi and some wheels need W+X pages.
SANDBOX = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "KeyringMode=private",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "UMask=0077",
)


def unit_name(app_id: str, prefix: str = UNIT_PREFIX) -> str:
    return f"{prefix}{app_id}.service"


def _escape_exec(arg: str) -> str:
    """One ExecStart word: specifiers and variables kept literal, quoted when needed."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r'[\s"\'\\;]', arg):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _escape_env(key: str, value: str) -> str:
    value = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'Environment="{key}={value}"'


def _escape_path(path: Path) -> str:
    text = str(path).replace("%", "%%")
    return f'"{text}"' if re.search(r"\s", text) else text


def render_unit(spec: AppSpec, user: str | None = None, wanted_by: str = "default.target") -> str:
    """The unit text for `spec`. `user`: whom a system-scope unit runs as (user units run as their
    manager's user). Logs go to logs/<id>/app.log, journald or not, so tail, follow and rotation
    work alike on every machine."""
    lines = [
        "# Written by HomeHelper; edits are overwritten. The app's manifest is the source.",
        "[Unit]",
        f"Description={spec.description or spec.app_id}",
        "After=network.target",
        # HomeHelper restarts apps itself; systemd's own rate limit would fight it.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify" if spec.notify else "Type=exec",
        # A watchdog app: only its main process may say READY=1/WATCHDOG=1; silent for WatchdogSec
        # means SIGABRT and Result=watchdog, which HomeHelper's restart policy takes as a crash.
        *(["NotifyAccess=main"] if spec.notify else []),
        *([f"WatchdogSec={round(spec.watchdog_sec * 1000)}ms"] if spec.notify and spec.watchdog_sec else []),
        *([f"TimeoutStartSec={round(spec.start_timeout * 1000)}ms"] if spec.notify and spec.start_timeout else []),
        "ExecStart=" + " ".join(_escape_exec(a) for a in spec.argv),
        f"WorkingDirectory={_escape_path(spec.cwd)}",
        *(_escape_env(k, v) for k, v in spec.env),
        "Restart=no",
        "TimeoutStopSec=10",
        "KillMode=control-group",
        *([f"User={user}"] if user else []),
        f"StandardOutput=append:{_escape_path(spec.log_file)}",
        "StandardError=inherit",
        "CPUAccounting=yes",
        "MemoryAccounting=yes",
        "TasksAccounting=yes",
        f"MemoryMax={spec.memory_mb}M",
        f"MemoryHigh={max(spec.memory_mb * 9 // 10, 1)}M",
        f"CPUQuota={spec.cpu_percent}%",
        f"TasksMax={spec.tasks}",
        *SANDBOX,
        f"ReadWritePaths={_escape_path(spec.data_dir)} {_escape_path(spec.log_dir)}",
        "",
        "[Install]",
        f"WantedBy={wanted_by}",
        "",
    ]
    return "\n".join(lines)


def systemd_version() -> int | None:
    """The running systemd's major version (252 on bookworm), None without systemd."""
    try:
        out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else None
