"""The systemd backend: one `hh-<id>.service` unit per app, driven with systemctl.

Commands from many app actors arriving together are coalesced into one
systemctl call per verb (`systemctl start a b c`), so starting twenty apps costs
about what one `systemctl start` of twenty units costs. State comes from
`systemctl show`; between shows, a crash is noticed through a pidfd on the
main PID, which costs no process spawn and no timer.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import trio

from ..errors import BackendError, DeviceMissing
from ..storage import atomic_write_text
from .base import AppSpec, UnitStatus, env_file_text, probe_delays, wait_pid_exit, writable_dir, write_secrets
from .sandbox import resolve_devices
from .units import UNIT_PREFIX, render_unit, unit_name

log = logging.getLogger(__name__)

SHOW_PROPS = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainCode",
              "ExecMainStatus", "Result", "ControlGroup", "UnitFileState")
VERBS = ("start", "stop", "show")  # the calls worth batching; the rest are rare and go alone
COALESCE_QUIET = 0.002  # gather requests of one verb until none came for this long...
COALESCE_MAX = 0.02  # ...or this long at most: small beside one systemctl call


def unit_dir(scope: str, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if scope == "system":
        return Path("/etc/systemd/system")
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config_home) / "systemd" / "user"


def cgroup_root() -> Path:
    """Where the unified (v2) cgroup hierarchy is mounted: /sys/fs/cgroup on a Pi."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return Path(parts[1])
    except OSError:
        pass
    return Path("/sys/fs/cgroup")


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show` of several units: blocks of Key=Value separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def to_status(props: Mapping[str, str], cgroot: Path | None = None) -> UnitStatus:
    pid = int(props.get("MainPID") or 0) or None
    code = props.get("ExecMainCode", "0")  # 1 exited (status = exit code), 2 killed, 3 dumped (status = signal)
    cg = props.get("ControlGroup") or None
    return UnitStatus(
        active=props.get("ActiveState", "inactive"),
        sub=props.get("SubState", "dead"),
        pid=pid,
        restarts=int(props.get("NRestarts") or 0),
        exit_status=int(props.get("ExecMainStatus") or 0) if code != "0" else None,
        result=props.get("Result", "success"),
        cgroup=str((cgroot or cgroup_root()) / cg.lstrip("/")) if cg else None,
        loaded=props.get("LoadState") == "loaded",
        enabled=props.get("UnitFileState") in ("enabled", "enabled-runtime", "linked", "alias"),
    )


class _Batch:
    """Requests for one systemctl verb, gathered while the previous call runs."""

    def __init__(self) -> None:
        self.units: list[str] = []
        self.done = trio.Event()
        self.error: dict[str, str] = {}
        self.output = ""


class SystemdBackend:
    name = "systemd"

    def __init__(self, scope: str = "user", environ: Mapping[str, str] | None = None,
                 prefix: str = UNIT_PREFIX, units_at: Path | None = None, run_as: str | None = None,
                 secrets_at: Path | None = None) -> None:
        self.scope = scope
        self.environ = dict(os.environ if environ is None else environ)
        self.prefix = prefix
        self.unit_dir = units_at or unit_dir(scope, self.environ)
        self.secrets_dir = secrets_at or self.unit_dir.parent / "homehelper-secrets"  # serve: <root>/run/secrets
        self.run_as = run_as if scope == "system" else None  # system units must not run apps as root
        self.cgroot = cgroup_root()
        self._pending: dict[str, _Batch] = {}
        self._wakes = {verb: trio.Event() for verb in VERBS}
        self._written: dict[str, str] = {}
        self._unstartable: dict[str, DeviceMissing] = {}  # app id -> why its last prepare could not finish
        self._notify: set[str] = set()  # apps whose units are Type=notify (watchdog health)
        self._reload_lock = trio.Lock()
        self._reloads_asked = self._reloads_done = 0
        self.reloads = 0  # daemon-reloads run, for the record
        self._running = False

    def __repr__(self) -> str:
        return f"<SystemdBackend {self.scope} {self.unit_dir}>"

    def unit(self, app_id: str) -> str:
        return unit_name(app_id, self.prefix)

    def _cmd(self, *args: str) -> list[str]:
        return ["systemctl", "--user" if self.scope == "user" else "--system", "--no-ask-password", *args]

    async def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = await trio.run_process(self._cmd(*args), capture_stdout=True, capture_stderr=True, check=False,
                                      env=self.environ)
        if check and proc.returncode != 0:
            err = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            raise BackendError(f"systemctl {' '.join(args)} failed: {err[-500:]}", output_tail=err[-2000:])
        return proc

    async def available(self) -> bool:
        """True when a manager of this scope answers."""
        try:
            with trio.fail_after(10):
                proc = await self.systemctl("is-system-running", check=False)
        except (OSError, trio.TooSlowError):
            return False
        state = proc.stdout.decode().strip()
        return state in ("running", "degraded", "starting", "initializing", "maintenance")

    # --- coalescing ---------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One worker per verb: a `stop` never waits behind a slow `show`, and requests of one
        verb that arrive while its call runs go together in the next call."""
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                for verb in VERBS:
                    nursery.start_soon(self._worker, verb)
                task_status.started()
        finally:
            self._running = False

    async def _worker(self, verb: str) -> None:
        wake = self._wakes[verb]
        while True:
            await wake.wait()
            # Apps asked together arrive a few scheduler rounds apart: wait for the burst to end.
            deadline = trio.current_time() + COALESCE_MAX
            seen = 0
            while len(self._pending[verb].units) > seen and trio.current_time() < deadline:
                seen = len(self._pending[verb].units)
                await trio.sleep(COALESCE_QUIET)
            wake = self._wakes[verb] = trio.Event()
            batch = self._pending.pop(verb)
            await self._run_batch(verb, batch)

    async def _run_batch(self, verb: str, batch: _Batch) -> None:
        try:
            args = ("show", "-p", ",".join(SHOW_PROPS)) if verb == "show" else (verb,)
            proc = await self.systemctl(*args, *batch.units, check=False)
            batch.output = proc.stdout.decode(errors="replace")
            if proc.returncode != 0 and verb != "show":
                # Find out which unit failed: one call each, so each gets its own error.
                for unit in batch.units:
                    one = await self.systemctl(verb, unit, check=False)
                    if one.returncode != 0:
                        batch.error[unit] = one.stderr.decode(errors="replace").strip()
        except BaseException as exc:
            for unit in batch.units:
                batch.error[unit] = repr(exc)
            raise
        finally:
            batch.done.set()

    async def _do(self, verb: str, unit: str) -> _Batch:
        if not self._running:  # no run() task (a one-off CLI call): just call systemctl
            batch = _Batch()
            batch.units.append(unit)
            await self._run_batch(verb, batch)
        else:
            batch = self._pending.setdefault(verb, _Batch())
            batch.units.append(unit)
            self._wakes[verb].set()
            await batch.done.wait()
        if unit in batch.error:
            err = batch.error[unit]
            raise BackendError(f"systemctl {verb} {unit} failed: {err[-500:]}", output_tail=err[-2000:])
        return batch

    # --- Backend ----------------------------------------------------------------
    async def prepare(self, spec: AppSpec) -> None:
        writable_dir(spec.app_id, spec.data_dir, "data")  # a wrong folder is named, not a 226/NAMESPACE
        writable_dir(spec.app_id, spec.log_dir, "log")
        unit = self.unit(spec.app_id)
        (self._notify.add if spec.notify else self._notify.discard)(spec.app_id)
        # Devices are looked up at each start: a USB adapter plugged in since the last one counts.
        try:
            text = await trio.to_thread.run_sync(self._render, spec)  # globs /dev, looks up groups
        except DeviceMissing as exc:
            # `start` raises it: the app actor shows a BackendError from start as config_error,
            # one clear state until the device is there, not a restart loop.
            self._unstartable[spec.app_id] = exc
            return
        self._unstartable.pop(spec.app_id, None)
        secrets_file = self.secrets_dir / f"{spec.app_id}.env"
        secret_text = env_file_text(spec.secrets) if spec.secrets else None
        await trio.to_thread.run_sync(write_secrets, secrets_file, secret_text)
        path = self.unit_dir / unit
        if self._written.get(unit) == text:
            return
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        if current != text:
            atomic_write_text(path, text)
            await self.daemon_reload()
        self._written[unit] = text

    def _render(self, spec: AppSpec) -> str:
        return render_unit(spec, user=self.run_as, nodes=resolve_devices(spec),
                           secrets_file=self.secrets_dir / f"{spec.app_id}.env",
                           wanted_by="multi-user.target" if self.scope == "system" else "default.target")

    async def daemon_reload(self) -> None:
        """One reload for every unit file written before it began: twenty apps prepared together
        cost two reloads, not twenty (a reload takes a Pi's manager tens of milliseconds)."""
        self._reloads_asked += 1
        mine = self._reloads_asked
        async with self._reload_lock:
            if self._reloads_done >= mine:
                return  # a reload that began after this caller's write has run
            covers = self._reloads_asked
            await self.systemctl("daemon-reload")
            self._reloads_done = covers
            self.reloads += 1

    async def start(self, app_id: str) -> None:
        if app_id in self._unstartable:
            raise self._unstartable[app_id]
        unit = self.unit(app_id)
        if app_id not in self._notify:
            await self._do("start", unit)
            return
        # A Type=notify start job lasts until READY=1: not waited for here (nor in a batch with other
        # apps); the actor waits with wait_ready. Like a plain start, return once the job has run the
        # program (MainPID known) or has ended, so that a status read next is not stale.
        await self.systemctl("start", "--no-block", unit)
        for delay in probe_delays():
            proc = await self.systemctl("show", "-p", "MainPID,Job", unit, check=False)
            props = (parse_show(proc.stdout.decode(errors="replace")) or [{}])[0]
            if props.get("MainPID", "0") not in ("", "0") or not props.get("Job"):
                return
            await trio.sleep(delay)

    async def wait_ready(self, app_id: str) -> bool:
        """Return True once the unit is active (a Type=notify unit: its app said READY=1), False
        once it is not starting any more. Polled, fast then slower, only while it starts up."""
        for delay in probe_delays(cap=1.0):
            status = await self.status(app_id)
            if status.active == "active":
                return True
            if status.active != "activating":
                return False
            await trio.sleep(delay)
        raise AssertionError("unreachable")

    async def missed_heartbeat(self, app_id: str, interval: float) -> str:
        """Never returns: systemd enforces WatchdogSec= itself (SIGABRT, Result=watchdog)."""
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def stop(self, app_id: str) -> None:
        try:
            await self._do("stop", self.unit(app_id))
        except BackendError as exc:
            if "not loaded" not in exc.message:  # a unit that does not exist is stopped enough
                raise

    async def enable(self, app_id: str, enabled: bool) -> None:
        if enabled and app_id in self._unstartable:
            raise self._unstartable[app_id]
        await self.systemctl("enable" if enabled else "disable", self.unit(app_id))

    async def status(self, app_id: str) -> UnitStatus:
        unit = self.unit(app_id)
        batch = await self._do("show", unit)
        # Ask for a unit's properties, then find its block by Id: the order is systemctl's.
        for block in parse_show(batch.output):
            if block.get("Id") == unit:
                return to_status(block, self.cgroot)
        return UnitStatus(loaded=False)

    async def statuses(self, app_ids: list[str]) -> dict[str, UnitStatus]:
        """Every app's status in one systemctl call (adoption at start, benchmarks)."""
        if not app_ids:
            return {}
        units = {self.unit(a): a for a in app_ids}
        proc = await self.systemctl("show", "-p", ",".join(SHOW_PROPS), *units)
        blocks = parse_show(proc.stdout.decode())
        out = {units[b["Id"]]: to_status(b, self.cgroot) for b in blocks if b.get("Id") in units}
        return {a: out.get(a, UnitStatus(loaded=False)) for a in app_ids}

    async def wait_exit(self, status: UnitStatus) -> None:
        if status.pid is not None:
            await wait_pid_exit(status.pid)

    async def remove(self, app_id: str) -> None:
        unit = self.unit(app_id)
        await self.systemctl("disable", "--now", unit, check=False)
        self._written.pop(unit, None)
        await trio.to_thread.run_sync(write_secrets, self.secrets_dir / f"{app_id}.env", None)
        self._unstartable.pop(app_id, None)
        try:
            (self.unit_dir / unit).unlink()
        except FileNotFoundError:
            return
        await self.daemon_reload()
        await self.systemctl("reset-failed", unit, check=False)

    async def managed(self) -> list[str]:
        """App ids whose unit files this backend wrote (for adoption and clean-up)."""
        try:
            names = os.listdir(self.unit_dir)
        except FileNotFoundError:
            return []
        return sorted(n[len(self.prefix):-len(".service")] for n in names
                      if n.startswith(self.prefix) and n.endswith(".service"))
