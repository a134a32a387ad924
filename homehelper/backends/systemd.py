"""The systemd backend: one `hh-<id>.service` unit per app, driven with systemctl.

Commands from many app actors arriving together are coalesced into one
systemctl call per verb (systemctl.py). State comes from `systemctl show`;
between shows, a crash is noticed through a pidfd on the main PID, which costs
no process spawn and no timer.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from ..bus.relay import BusRelay
from ..errors import BackendError, DeviceMissing
from ..storage import atomic_write_text
from . import netwall
from .base import AppSpec, UnitStatus, env_file_text, probe_delays, wait_pid_exit, writable_dir, write_secrets
from .delivery import credentials_wall
from .journal import Journal
from .sandbox import Node, resolve_devices, walled
from .stamping import cgroup_drained, stamped
from .systemctl import SHOW_PROPS, Coalescer, cgroup_root, parse_show, to_status
from .units import UNIT_PREFIX, render_unit, unit_name

log = logging.getLogger(__name__)


def unit_dir(scope: str, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if scope == "system":
        return Path("/etc/systemd/system")
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config_home) / "systemd" / "user"


class SystemdBackend:
    name = "systemd"

    def __init__(self, scope: str = "user", environ: Mapping[str, str] | None = None,
                 prefix: str = UNIT_PREFIX, units_at: Path | None = None, run_as: str | None = None,
                 secrets_at: Path | None = None, bus_at: Path | None = None,
                 journal: Journal | None = None) -> None:
        self.scope = scope
        # Service apps log to journald when it answers (looked at each prepare), else to their files.
        self.journal = journal or Journal(scope)
        self._journal_on = False
        self._journaled: dict[str, bool] = {}  # app id -> does its unit log to the journal
        self.environ = dict(os.environ if environ is None else environ)
        self.prefix = prefix
        self.unit_dir = units_at or unit_dir(scope, self.environ)
        self.secrets_dir = secrets_at or self.unit_dir.parent / "homehelper-secrets"  # serve: <root>/run/secrets
        self.run_as = run_as if scope == "system" else None  # system units must not run apps as root
        # Walled apps reach Redis through a Unix socket relayed by HomeHelper (netwall.py); serve: <root>/run/bus
        self.relay = BusRelay(bus_at or self.unit_dir.parent / "homehelper-bus")
        # ...and are reached on their port through a Unix socket in their http folder: <root>/run/http
        self.http_dir = bus_at.parent / "http" if bus_at else self.unit_dir.parent / "homehelper-http"
        self._walled: set[str] = set()  # apps whose last unit has a network wall
        self._proxied: set[str] = set()  # ...and a port reached through companion units
        self.cgroot = cgroup_root()
        # start, stop and show of many apps: one call per verb, each through self.systemctl as it is now
        self._calls = Coalescer(lambda *args, check=True: self.systemctl(*args, check=check))
        self._written: dict[str, str] = {}
        self._unstartable: dict[str, DeviceMissing] = {}  # app id -> why its last prepare could not finish
        self._notify: set[str] = set()  # apps whose units are Type=notify (watchdog health)
        self._reload_lock = trio.Lock()
        self._reloads_asked = self._reloads_done = 0
        self.reloads = 0  # daemon-reloads run, for the record

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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The coalescing workers (systemctl.py) and the bus relay of walled apps."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._calls.run)
            await nursery.start(self.relay.run)
            task_status.started()

    # --- Backend ----------------------------------------------------------------
    async def prepare(self, spec: AppSpec) -> None:
        writable_dir(spec.app_id, spec.data_dir, "data")  # a wrong folder is named, not a 226/NAMESPACE
        writable_dir(spec.app_id, spec.log_dir, "log")
        unit = self.unit(spec.app_id)
        (self._notify.add if spec.notify else self._notify.discard)(spec.app_id)
        # Devices are looked up at each start: a USB adapter plugged in since the last one counts.
        try:
            nodes = await trio.to_thread.run_sync(resolve_devices, spec)  # globs /dev
        except DeviceMissing as exc:
            # `start` raises it: the app actor shows a BackendError from start as config_error,
            # one clear state until the device is there, not a restart loop.
            self._unstartable[spec.app_id] = exc
            return
        self._unstartable.pop(spec.app_id, None)
        if spec.journal:
            self._journal_on = await trio.to_thread.run_sync(self.journal.answers)
        self._journaled[spec.app_id] = spec.journal and self._journal_on
        spec, bus = await self._bus(spec)
        http = self.http_dir / spec.app_id
        if netwall.unit_lines(spec):  # walled, with a port: portshim listens in its http folder
            await trio.to_thread.run_sync(lambda: http.mkdir(mode=0o700, parents=True, exist_ok=True))
        secrets_file = self.secrets_dir / f"{spec.app_id}.env"
        secret_text = env_file_text(spec.secrets) if spec.secrets else None
        await trio.to_thread.run_sync(write_secrets, secrets_file, secret_text)
        text = await trio.to_thread.run_sync(self._render, spec, nodes, bus, http)  # looks up groups
        changed = await self._write_companions(spec, http)
        changed = await trio.to_thread.run_sync(self._write, unit, text) or changed
        if changed:
            await self.daemon_reload()
        for known, now in ((self._walled, walled(spec)), (self._proxied, bool(netwall.unit_lines(spec)))):
            if now:
                known.add(spec.app_id)
            else:
                known.discard(spec.app_id)

    def _write(self, unit: str, text: str | None) -> bool:
        """Write (None: delete) one unit file when it differs; True when it changed. Blocking."""
        if text is not None and self._written.get(unit) == text:
            return False
        path = self.unit_dir / unit
        try:
            current: str | None = path.read_text()
        except FileNotFoundError:
            current = None
        if current != text:
            if text is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_text(path, text)
        if text is None:
            self._written.pop(unit, None)
        else:
            self._written[unit] = text
        return current != text

    async def _bus(self, spec: AppSpec) -> tuple[AppSpec, Path | None]:
        """A walled app's HH_REDIS_URL through its relay socket; (spec, the folder to bind in)."""
        secrets = dict(spec.secrets)
        url = secrets.get("HH_REDIS_URL")
        if not walled(spec) or not url:
            return spec, None
        sock = await self.relay.open(spec.app_id, netwall.relay_target(url))
        secrets["HH_REDIS_URL"] = netwall.relay_url(url, sock)
        return attrs.evolve(spec, secrets=tuple(secrets.items())), sock.parent

    async def _write_companions(self, spec: AppSpec, http: Path) -> bool:
        """The socket and proxy units of a walled app (netwall.py), or none; a changed one that was
        there is stopped first, so its socket lets go of the old port."""
        texts = netwall.companion_texts(spec, http, self.prefix)
        changed, existed = await trio.to_thread.run_sync(self._changes, texts)
        if existed:
            await self.systemctl("stop", *existed, check=False)
        for name in changed:
            await trio.to_thread.run_sync(self._write, name, texts[name])
        return bool(changed)

    def _changes(self, texts: dict[str, str | None]) -> tuple[list[str], list[str]]:
        """(units whose file differs from `texts`, those of them that have a file now). Blocking."""
        changed: list[str] = []
        existed: list[str] = []
        for unit, text in texts.items():
            if text is not None and self._written.get(unit) == text:
                continue
            try:
                current: str | None = (self.unit_dir / unit).read_text()
            except FileNotFoundError:
                current = None
            if current != text:
                changed.append(unit)
                if current is not None:
                    existed.append(unit)
        return changed, existed

    def _render(self, spec: AppSpec, nodes: list[Node], bus: Path | None, http: Path) -> str:
        journal = self._journaled.get(spec.app_id, False)
        run = netwall.wrapped(spec, http)
        return render_unit(run if journal else stamped(run), user=self.run_as, nodes=nodes,
                           secrets_file=self.secrets_dir / f"{spec.app_id}.env",
                           wanted_by="multi-user.target" if self.scope == "system" else "default.target",
                           extra=(netwall.unit_lines(spec, self.prefix), [*netwall.service_lines(spec, bus, http),
                                                                          *credentials_wall(self.scope, self.environ)]),
                           journal=self.unit(spec.app_id).removesuffix(".service") if journal else None)

    def journal_unit(self, app_id: str) -> str | None:
        """The unit whose journal holds the app's log, or None when its log is its file (blocking:
        an app not prepared in this run is judged by its unit file)."""
        unit = self.unit(app_id)
        if app_id not in self._journaled:
            try:
                text = (self.unit_dir / unit).read_text()
            except OSError:
                return None
            self._journaled[app_id] = "\nStandardOutput=journal\n" in text
        return unit if self._journaled[app_id] else None

    async def drained(self, app_id: str) -> None:
        """Until the unit's stamper has written the app's last lines (its cgroup is empty; 2 s at most)."""
        if self._journaled.get(app_id):
            return
        st = await self.status(app_id)
        if st.cgroup is not None and st.active == "deactivating":  # the app ended, the rest is being ended
            await cgroup_drained(Path(st.cgroup))

    async def output_since(self, app_id: str, since: float) -> str | None:
        """What the app's unit wrote to the journal since `since` (epoch seconds); None when it
        logs to its file instead (read that)."""
        unit = await trio.to_thread.run_sync(self.journal_unit, app_id)
        if unit is None:
            return None
        return await trio.to_thread.run_sync(self.journal.output_since, unit, since)

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
        try:
            if app_id in self._notify:
                await self._start_notify(unit)
            else:
                await self._calls.do("start", unit)
        except BackendError as exc:
            if app_id in self._proxied and "dependency" in exc.message:
                sock = netwall.socket_unit(app_id, self.prefix)
                raise BackendError(f"{app_id}: its port could not be opened for it ({sock} failed): is another "
                                   "program listening on it?",
                                   output_tail=str(exc.detail.get("output_tail", ""))) from exc
            raise
        if app_id in self._walled:
            await self._check_wall(app_id)

    async def _start_notify(self, unit: str) -> None:
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

    async def _check_wall(self, app_id: str) -> None:
        """A manager that may not make a network namespace says so in its log and runs the app on
        the host's network: such an app is stopped again, with the reason."""
        st = await self.status(app_id)
        if st.pid is not None and netwall.same_netns(st.pid):
            await self.stop(app_id)
            raise BackendError(f"{app_id}: systemd could not give it a network of its own (PrivateNetwork=), so "
                               "it was stopped: it could reach other apps' ports. Approve the lan permission "
                               "for it, or run HomeHelper where user namespaces are allowed")

    async def stop(self, app_id: str) -> None:
        units = [self.unit(app_id)]
        known = self.unit(app_id) in self._written  # else an app adopted from an earlier run: look
        if app_id in self._proxied or (not known and await trio.to_thread.run_sync(self._has_companions, app_id)):
            units += netwall.companions(app_id, self.prefix)  # stopped together: the port is free after
        async with trio.open_nursery() as nursery:
            for unit in units:
                nursery.start_soon(self._stop_unit, unit)

    def _has_companions(self, app_id: str) -> bool:
        return (self.unit_dir / netwall.socket_unit(app_id, self.prefix)).exists()

    async def _stop_unit(self, unit: str) -> None:
        try:
            await self._calls.do("stop", unit)
        except BackendError as exc:
            if "not loaded" not in exc.message:  # a unit that does not exist is stopped enough
                raise

    async def enable(self, app_id: str, enabled: bool) -> None:
        if enabled and app_id in self._unstartable:
            raise self._unstartable[app_id]
        await self.systemctl("enable" if enabled else "disable", self.unit(app_id))

    async def status(self, app_id: str) -> UnitStatus:
        unit = self.unit(app_id)
        batch = await self._calls.do("show", unit)
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
        companions = netwall.companions(app_id, self.prefix)
        await self.systemctl("stop", *companions, check=False)
        self._walled.discard(app_id)
        self._proxied.discard(app_id)
        await self.relay.close(app_id)
        await trio.to_thread.run_sync(lambda: shutil.rmtree(self.http_dir / app_id, ignore_errors=True))
        removed = [u for u in (unit, *companions) if await trio.to_thread.run_sync(self._write, u, None)]
        if not removed:
            return
        await self.daemon_reload()
        await self.systemctl("reset-failed", *removed, check=False)

    async def managed(self) -> list[str]:
        """App ids whose unit files this backend wrote (for adoption and clean-up)."""
        try:
            names = os.listdir(self.unit_dir)
        except FileNotFoundError:
            return []
        return sorted(n[len(self.prefix):-len(".service")] for n in names
                      if n.startswith(self.prefix) and n.endswith(".service") and not netwall.is_companion(n))
