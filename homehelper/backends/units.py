"""systemd unit files for service apps, written for systemd 252 (Debian 12 and
Raspberry Pi OS bookworm): no `RestartSteps`, `StartLimit*` in `[Unit]`.

systemd never restarts an app itself (`Restart=no`): HomeHelper's actor owns
the policy (backoff, quarantine), so both backends behave alike. The sandbox
(sandbox.py) gives an app its own data and log folders to write and nothing else.
Every value is escaped for the directive it lands in, or refused: no value can add,
drop or change a directive.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import UnsafeUnitValue
from ..manifest import ID_RE
from .base import AppSpec, cpu_weight
from .sandbox import BASE, Node, groups_for, network, private_tmp_problem, proc, walls

UNIT_PREFIX = "hh-"


def unit_name(app_id: str, prefix: str = UNIT_PREFIX) -> str:
    return f"{prefix}{app_id}.service"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise UnsafeUnitValue(f"log identifier {name!r} is not valid", field="journal")
    return name


# Control characters and Unicode line breaks: a unit file is line-based, so any of these in a
# value would begin a directive of the app's choosing. The manifest refuses them; this is the
# second wall, for values that come from elsewhere (folder names, config).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters a path may not hold here: `:` separates BindPaths= fields, quotes and backslashes
# mean something in some directives and nothing in others (WorkingDirectory= takes its value raw).
_PATH_BAD = re.compile(r"[:\"'\\]")


def _text(value: str, what: str) -> str:
    """A value with no line of its own: control characters refused, specifiers kept literal."""
    m = _CONTROL.search(value)
    if m:
        raise UnsafeUnitValue(f"{what} holds the control character U+{ord(m.group()):04X}", field=what)
    return value.replace("%", "%%")


def _quote(value: str, what: str) -> str:
    """A double-quoted word, for directives that unquote (Environment=, ExecStart=, *Paths=)."""
    return '"' + _text(value, what).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape_exec(arg: str, what: str = "ExecStart") -> str:
    """One ExecStart word: specifiers and variables kept literal, quoted when needed."""
    if re.fullmatch(r"[A-Za-z0-9/._=,+@-]+", arg) and not arg.startswith(("-", "+", "@", ":", "!")):
        return arg
    return _quote(arg, what).replace("$", "$$")


def _escape_env(key: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise UnsafeUnitValue(f"environment variable name {key!r} is not valid", field="env")
    return "Environment=" + _quote(f"{key}={value}", f"env.{key}")


def _path(path: Path, what: str) -> str:
    """A path as a raw value (WorkingDirectory=, StandardOutput=append:)."""
    text = str(path)
    if not path.is_absolute() or _PATH_BAD.search(text) or text != text.strip():
        raise UnsafeUnitValue(f"{what} {text!r} must be an absolute path without quotes, backslashes, "
                              "':' or surrounding spaces", field=what)
    return _text(text, what)


def _qpath(path: Path, what: str) -> str:
    """A path as one word of a list directive (BindPaths=, ReadWritePaths=)."""
    text = _path(path, what)
    return f'"{text}"' if re.search(r"\s", text) else text


def _description(text: str) -> str:
    # Description= is taken raw and trimmed: a trailing backslash would continue onto the next line.
    text = _text(text, "description").strip()
    if text.rstrip().endswith("\\"):
        raise UnsafeUnitValue("description must not end with a backslash", field="description")
    return text


def render_unit(spec: AppSpec, user: str | None = None, wanted_by: str = "default.target",
                nodes: Sequence[Node] = (), secrets_file: Path | None = None,
                extra: tuple[Sequence[str], Sequence[str]] = ((), ()), journal: str | None = None) -> str:
    """The unit text for `spec`. `user`: whom a system-scope unit runs as (user units run as their
    manager's user). `nodes`: the device nodes it may open (sandbox.resolve_devices). `extra`:
    ([Unit] lines, [Service] lines) of its network wall (netwall.unit_lines, service_lines). `journal`:
    output to journald under this SyslogIdentifier (the unit's name) (journald stamps and caps it);
    else to logs/<id>/app.log (backends/journal.py)."""
    if not ID_RE.fullmatch(spec.app_id):
        raise UnsafeUnitValue(f"app id {spec.app_id!r} is not valid", field="id")
    if user is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", user):
        raise UnsafeUnitValue(f"user {user!r} is not a valid user name", field="user")
    if not spec.argv or not spec.argv[0].startswith("/"):
        # Absolute, so no `-`, `+`, `!` or `@` prefix can change how systemd runs the program.
        raise UnsafeUnitValue(f"the program {spec.argv[:1]!r} must be an absolute path", field="argv")
    problem = private_tmp_problem(spec.data_dir, spec.log_dir, spec.cwd)
    if problem:
        raise UnsafeUnitValue(problem, field="paths")
    groups = groups_for(spec.permissions) if user else []  # a user manager cannot add groups
    lines = [
        "# Written by HomeHelper; edits are overwritten. The app's manifest is the source.",
        "[Unit]",
        f"Description={_description(spec.description.strip() or spec.app_id)}",
        "After=network.target",
        *extra[0],
        # HomeHelper restarts apps itself; systemd's own rate limit would fight it.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify" if spec.notify else "Type=oneshot" if spec.run_timeout else "Type=exec",
        *([f"TimeoutStartSec={round(spec.run_timeout * 1000)}ms"] if spec.run_timeout else []),  # a job's timeout
        # A watchdog app: only its main process may say READY=1/WATCHDOG=1; silent for WatchdogSec
        # means SIGABRT and Result=watchdog, which HomeHelper's restart policy takes as a crash.
        *(["NotifyAccess=main"] if spec.notify else []),
        *([f"WatchdogSec={round(spec.watchdog_sec * 1000)}ms"] if spec.notify and spec.watchdog_sec else []),
        *([f"TimeoutStartSec={round(spec.start_timeout * 1000)}ms"] if spec.notify and spec.start_timeout else []),
        "ExecStart=" + " ".join(_escape_exec(a) for a in spec.argv),
        f"WorkingDirectory={_path(spec.cwd, 'cwd')}",
        *(_escape_env(k, v) for k, v in spec.env),
        # Secrets by file, read by the manager: `systemctl show` prints Environment=, not this file.
        *([f"EnvironmentFile={str(secrets_file).replace('%', '%%')}"] if secrets_file and spec.secrets else []),
        *_credentials(spec),
        "Restart=no",
        "TimeoutStopSec=10",
        "KillMode=control-group",
        *([f"User={user}"] if user else []),
        *([f"SupplementaryGroups={' '.join(groups)}"] if groups else []),
        *(["StandardOutput=journal", f"SyslogIdentifier={_ident(journal)}"] if journal is not None
          else [f"StandardOutput=append:{_path(spec.log_file, 'log file')}"]),
        "StandardError=inherit",
        *exec_properties(spec, nodes),
        *extra[1],
        "",
        "[Install]",
        f"WantedBy={wanted_by}",
        "",
    ]
    return "\n".join(lines)


def _credentials(spec: AppSpec) -> list[str]:
    """The options file bound back through the walls, and each secret loaded as a credential: the
    manager reads the file and the app finds it in $CREDENTIALS_DIRECTORY; only the path is in the unit."""
    lines = [f"BindReadOnlyPaths={_qpath(spec.options_file, 'options file')}"] if spec.options_file else []
    folder = spec.credentials_dir
    for name in spec.credentials:
        if folder is None or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise UnsafeUnitValue(f"credential name {name!r} is not valid", field="credentials")
        lines.append(f"LoadCredential={name}:{_path(folder / name, 'credential')}")
    return lines


def _devices(nodes: Sequence[Node]) -> list[str]:
    """Each node bound into the private /dev (and allowed where the manager enforces DeviceAllow=)."""
    lines: list[str] = []
    for n in nodes:
        node = _path(n.node, "device")
        if n.at == n.node:
            lines += [f"BindPaths={node}", f"DeviceAllow={node} rw"]
        elif not _PATH_BAD.search(str(n.at)) and not re.search(r"\s", str(n.at)):
            lines.append(f"BindPaths={node}:{_path(n.at, 'device')}")  # /dev/serial/by-id/... as asked
    return lines


def systemd_version() -> int | None:
    """The running systemd's major version (252 on bookworm), None without systemd."""
    try:
        out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else None


def exec_properties(spec: AppSpec, nodes: Sequence[Node] = (), setup: bool = False) -> list[str]:
    """The limit, sandbox and wall lines of the app's unit, as "Key=Value" strings: render_unit writes
    them, and a transient unit (`systemd-run -p`) gets the same, so the app's setup commands run
    under the same rules as the app. `setup`: its venv and folder are writable too (an install step)."""
    hidden, writable, readonly = walls(spec)
    if setup:
        venv = Path(spec.argv[0]).parent.parent
        writable += [p for p in (venv, spec.cwd) if p in readonly]
        readonly = [p for p in readonly if p not in writable]
    return [
        "CPUAccounting=yes",
        "MemoryAccounting=yes",
        "TasksAccounting=yes",
        f"MemoryMax={spec.memory_mb}M",
        f"MemoryHigh={max(spec.memory_mb * 9 // 10, 1)}M",
        f"CPUQuota={spec.cpu_percent}%",
        f"TasksMax={spec.tasks}",
        f"Nice={spec.nice}",
        f"CPUWeight={cpu_weight(spec.nice)}",
        *BASE,
        *proc(spec),
        *network(spec),
        # The walls: HomeHelper's state and the apps folder hidden, the app's own folders bound back.
        *(f"TemporaryFileSystem={_qpath(h, 'state root')}:ro" for h in hidden),
        "BindPaths=" + " ".join(_qpath(w, "data and log folders") for w in writable),
        *(["BindReadOnlyPaths=" + " ".join(_qpath(r, "venv and app folder") for r in readonly)] if readonly else []),
        *_devices(nodes),
    ]
