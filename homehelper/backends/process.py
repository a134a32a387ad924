"""The process backend: trio subprocesses, for machines without systemd.

Each app runs in its own session, with a token in its environment that every
process it forks inherits (see `proctree`): a stop, or the main process's exit,
ends the whole tree as systemd's cgroup does, even a double-forked daemon. Apps
outlive a HomeHelper restart like a systemd unit does: a small state file lets
the next HomeHelper adopt them. The token is written before the spawn, so a
HomeHelper killed mid-start leaves a record the next one adopts or ends.
Limits and the sandbox are systemd's: here only the apps' nice (proctree.lower_priority).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import trio

from ..errors import BackendError
from ..storage import atomic_write_json, read_json
from . import proctree
from .base import AppSpec, UnitStatus, wait_pid_exit, writable_dir
from .notify import NotifyListener
from .stamping import Stamper

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # as TimeoutStopSec in the units
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")

# Every child started here, until reaped: apps outlive the backend object (as units outlive a restart).
_children: set[trio.Process] = set()


def _reap() -> None:
    _children.difference_update([p for p in _children if p.poll() is not None])


def _signal_status(code: int) -> tuple[str, str, int | None]:
    """(ActiveState, Result, exit status) for a return code, as systemd reports them."""
    if code == 0:
        return "inactive", "success", 0
    if code < 0:
        return "failed", "signal", -code
    return "failed", "exit-code", code


class _Run:
    """One started (or adopted) app process."""

    def __init__(self, pid: int, created: float, proc: trio.Process | None, token: str | None) -> None:
        self.pid = pid
        self.created = created
        self.proc = proc  # None for an adopted process (not our child)
        self.token = token
        self.stopping = False
        self.final: UnitStatus | None = None


class ProcessBackend:
    name = "process"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.stamper = Stamper(state_dir)  # one log stamper for every app, started at the first start
        self._specs: dict[str, AppSpec] = {}
        self._runs: dict[str, _Run] = {}
        self._last: dict[str, UnitStatus] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._file_locks: dict[str, trio.Lock] = {}  # one writer per state file
        self._known: dict[str, dict[str, Any]] = {}  # each state file, read once: we are its one writer
        self._spawns = trio.Lock()  # one at a time: twenty are twenty threads taking the GIL from the loop
        self._starting: set[str] = set()  # apps this backend is spawning now (token on disk, PID not yet)
        self._searched: dict[str, str] = {}  # app -> token already searched for in vain
        # Watchdog apps speak sd_notify to HomeHelper's own socket: made when the first one is prepared.
        self._notify: NotifyListener | None = None
        self._watchdogs: set[str] = set()  # apps heard on it: prepared as such, or adopted and asked about
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<ProcessBackend {self.state_dir}>"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Nothing runs in the background but the notify socket, and only once a watchdog app needs it.
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            if self._notify is not None:
                self._notify.close()
                self._notify = None

    def _state_file(self, app_id: str) -> Path:
        return self.state_dir / f"{app_id}.json"

    def _state(self, app_id: str) -> dict[str, Any]:
        path = self._state_file(app_id)
        try:
            data = read_json(path, {})
        except (OSError, ValueError) as exc:  # garbage (a power cut, a hand edit): set it aside
            data = exc
        if isinstance(data, dict):
            return data
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(path, aside)
            log.warning("%s: damaged state file %s set aside as %s (%s); assuming no process runs",
                        app_id, path, aside.name, data)
        except OSError as exc:
            log.warning("%s: damaged state file %s (%s) could not be set aside: %s", app_id, path, data, exc)
        return {}

    def _save_now(self, app_id: str, data: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
        """Change and atomically rewrite the app's state file (on a worker thread); what it now holds."""
        data = dict(data) if data is not None else self._state(app_id)
        data.update(changes)
        try:
            atomic_write_json(self._state_file(app_id), data)
        except OSError as exc:
            raise BackendError(f"{app_id}: cannot write {self._state_file(app_id)}: {exc.strerror}; "
                               f"fix it with: chmod u+rwx {self.state_dir}", app=app_id) from None
        return data

    async def _save(self, app_id: str, **changes: Any) -> None:
        # The fsync runs on a worker thread, never on the trio thread; one writer per file at a time.
        async with self._file_lock(app_id):
            self._known[app_id] = await trio.to_thread.run_sync(
                self._save_now, app_id, self._known.get(app_id), changes)

    async def _read(self, app_id: str) -> dict[str, Any]:
        """The app's state: from disk once (a damaged file set aside), then what this backend wrote."""
        async with self._file_lock(app_id):
            if app_id not in self._known:
                self._known[app_id] = await trio.to_thread.run_sync(self._state, app_id)
            return dict(self._known[app_id])

    def _file_lock(self, app_id: str) -> trio.Lock:
        return self._file_locks.setdefault(app_id, trio.Lock())

    def _lock(self, app_id: str) -> trio.Lock:
        return self._locks.setdefault(app_id, trio.Lock())

    async def prepare(self, spec: AppSpec) -> None:
        writable_dir(spec.app_id, spec.data_dir, "data")
        writable_dir(spec.app_id, spec.log_dir, "log")
        writable_dir(spec.app_id, self.state_dir, "process state")
        self._specs[spec.app_id] = spec
        (self._watchdogs.add if spec.notify else self._watchdogs.discard)(spec.app_id)
        if spec.notify:
            self._listen()
        if not self._state_file(spec.app_id).exists():
            await self._save(spec.app_id, enabled=False)

    def _listen(self) -> NotifyListener:
        if self._notify is None:
            if self._nursery is None:
                raise BackendError("the process backend is not running: watchdog apps need its notify socket")
            self._notify = NotifyListener(self.state_dir.parent / "notify", self._notifier)
            self._notify.bind()
            self._nursery.start_soon(self._notify.serve)
        return self._notify

    def _notifier(self, pid: int) -> str | None:
        """The watchdog app whose main process `pid` is (NotifyAccess=main): its forks do not count."""
        for app_id, run in self._runs.items():
            if run.pid == pid and app_id in self._watchdogs:
                return app_id
        return None

    async def wait_ready(self, app_id: str) -> bool:
        """Return True once the app's current run has sent READY=1; False when it is not running.
        A run adopted from a previous HomeHelper said so to that one already."""
        run = await self._current(app_id)
        if run is None or not self._alive(run):
            return False
        self._watchdogs.add(app_id)  # an adopted run was prepared by a previous HomeHelper
        if run.proc is None:
            self._listen().adopt(app_id, run.pid)
            return True
        await self._listen().wait_ready(app_id, run.pid)
        return True

    async def missed_heartbeat(self, app_id: str, interval: float) -> str:
        """Return (with why) once the app's current run has gone `interval` s without WATCHDOG=1;
        never, when it is not running (the exit is the process watcher's news)."""
        run = await self._current(app_id)
        if run is None:
            await trio.sleep_forever()
        assert run is not None
        return await self._listen().missed_heartbeat(app_id, run.pid, interval)

    async def _adopt(self, app_id: str) -> _Run | None:
        """The process a previous HomeHelper started, if it is still the same process."""
        data = await self._read(app_id)
        pid, created, token = data.get("pid"), data.get("created"), data.get("token")
        token = token if isinstance(token, str) else None
        if not isinstance(pid, int) or not isinstance(created, (int, float)):
            # Killed between writing the token and the PID: the token finds the process.
            if token is None or self._searched.get(app_id) == token or app_id in self._starting:
                return None  # (a start of ours writes the token before the PID: nothing to search for)
            self._searched[app_id] = token
            found = await trio.to_thread.run_sync(proctree.find_leader, token)  # reads every process
            if found is None:
                return None
            pid, created = found
            log.info("%s: adopting process %d from an interrupted start", app_id, pid)
            try:
                await self._save(app_id, pid=pid, created=created)
            except BackendError as exc:  # adopted all the same; the token finds it again next time
                log.warning("%s", exc)
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - float(created)) > 0.05 or p.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        run = _Run(pid, float(created), None, token)
        self._runs[app_id] = run
        return run

    async def _current(self, app_id: str) -> _Run | None:
        return self._runs.get(app_id) or await self._adopt(app_id)

    async def start(self, app_id: str) -> None:
        async with self._lock(app_id):
            run = await self._current(app_id)
            if run is not None and run.final is None and self._alive(run):
                return
            spec = self._specs.get(app_id)
            if spec is None:
                raise BackendError(f"{app_id}: not prepared; install it first", app=app_id)
            old = (await self._read(app_id)).get("token")
            if isinstance(old, str):  # what an earlier run or a dead HomeHelper left behind goes first
                await proctree.end_tree(old, None, STOP_TIMEOUT)
            token = proctree.new_token()
            self._starting.add(app_id)
            try:
                async with self._spawns:
                    await self._spawn(app_id, spec, token)
            finally:
                self._starting.discard(app_id)

    async def _spawn(self, app_id: str, spec: AppSpec, token: str) -> None:
        """Write the token, then spawn the process in a session of its own, then write its PID."""
        await self._save(app_id, token=token, pid=None, created=None)  # on disk before the process exists
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        env.update(spec.env)
        env.update(spec.secrets)  # in the child's environment only: nothing on disk
        env[proctree.TOKEN_VAR] = token
        if spec.credentials_dir and spec.credentials:  # as systemd sets it for LoadCredential= (delivery.py)
            env["CREDENTIALS_DIRECTORY"] = str(spec.credentials_dir)
        if spec.notify:  # as systemd sets them for Type=notify with WatchdogSec=
            env["NOTIFY_SOCKET"] = self._listen().address
            if spec.watchdog_sec:
                env["WATCHDOG_USEC"] = str(int(spec.watchdog_sec * 1_000_000))
        fd = await self.stamper.log_fd(app_id, spec.log_file)  # each line timestamped as it arrives
        try:
            proc = await trio.lowlevel.open_process(
                list(spec.argv), cwd=str(spec.cwd), env=env, stdin=subprocess.DEVNULL, stdout=fd,
                stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self._last[app_id] = UnitStatus(active="failed", sub="failed", result="exit-code", exit_status=203)
            raise BackendError(f"{app_id}: cannot run {spec.argv[0]}: {exc.strerror}", app=app_id) from None
        finally:
            os.close(fd)
        proctree.lower_priority(proc.pid, spec.nice)
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            created = 0.0
        _reap()
        _children.add(proc)
        self._runs[app_id] = _Run(proc.pid, created, proc, token)
        await self._save(app_id, pid=proc.pid, created=created)

    def _alive(self, run: _Run) -> bool:
        if run.proc is not None:
            return run.proc.poll() is None
        try:
            p = psutil.Process(run.pid)
            return p.status() != psutil.STATUS_ZOMBIE and abs(p.create_time() - run.created) < 0.05
        except psutil.Error:
            return False

    async def stop(self, app_id: str) -> None:
        async with self._lock(app_id):
            run = await self._current(app_id)
            token = (await self._read(app_id)).get("token")
            if run is None and not isinstance(token, str):
                return
            if run is not None:
                run.stopping = True
            # The session only while its leader lives: a dead leader's PID may be someone else's now.
            session = run.pid if run is not None and self._alive(run) else None
            await proctree.end_tree(token if isinstance(token, str) else None, session, STOP_TIMEOUT)
            if run is not None:
                code = None
                if run.proc is not None:
                    await run.proc.wait()
                    code = _signal_status(run.proc.returncode or 0)[2]  # as systemd's ExecMainStatus
                self._last[app_id] = UnitStatus(active="inactive", sub="dead", result="success", exit_status=code)
            await self._forget(app_id)

    async def _forget(self, app_id: str) -> None:
        self._runs.pop(app_id, None)
        if self._notify is not None:
            self._notify.forget(app_id)
        async with self._file_lock(app_id):
            self._known[app_id] = await trio.to_thread.run_sync(self._forget_now, app_id, self._known.get(app_id))

    def _forget_now(self, app_id: str, known: dict[str, Any] | None) -> dict[str, Any]:
        before = dict(known) if known is not None else self._state(app_id)
        data = {k: v for k, v in before.items() if k not in ("pid", "created", "token")}
        if data != before:
            try:
                atomic_write_json(self._state_file(app_id), data)
            except OSError as exc:  # the next start ends what the stale token names: no harm
                log.warning("%s: cannot update %s: %s", app_id, self._state_file(app_id), exc)
                return before
        return data

    async def _wait(self, run: _Run) -> None:
        if run.proc is not None:
            await run.proc.wait()
        else:
            await wait_pid_exit(run.pid, lambda: self._alive(run))
        if run.token is not None and not run.stopping:
            # The main process is gone: so goes what it forked, as under systemd's KillMode=control-group.
            await proctree.end_tree(run.token, None, STOP_TIMEOUT)

    async def enable(self, app_id: str, enabled: bool) -> None:
        await self._save(app_id, enabled=enabled)

    async def drained(self, app_id: str) -> None:
        """Until the app's last lines reached its log file (its stamper finished; 2 s at most)."""
        spec, run = self._specs.get(app_id), self._runs.get(app_id)
        if spec is not None and (run is None or not self._alive(run)):  # a live app is still writing
            await self.stamper.drained(spec.log_file)

    async def status(self, app_id: str) -> UnitStatus:
        enabled = bool((await self._read(app_id)).get("enabled", False))
        run = await self._current(app_id)
        if run is not None and not run.stopping and run.proc is not None and run.proc.poll() is not None:
            active, result, exit_status = _signal_status(run.proc.returncode or 0)
            await self._wait(run)  # its children end with it
            await self._forget(app_id)
            self._last[app_id] = UnitStatus(active=active, sub="failed" if active == "failed" else "dead",
                                            result=result, exit_status=exit_status)
            run = None
        elif run is not None and run.proc is None and not self._alive(run):
            await self._wait(run)
            await self._forget(app_id)  # adopted, then gone: its exit status is not ours to know
            self._last[app_id] = UnitStatus(active="failed", sub="failed", result="unknown")
            run = None
        if run is not None:
            return UnitStatus(active="active", sub="running", pid=run.pid, enabled=enabled)
        known = app_id in self._specs or self._state_file(app_id).exists()
        last = self._last.get(app_id, UnitStatus())
        return UnitStatus(active=last.active, sub=last.sub, result=last.result, exit_status=last.exit_status,
                          loaded=known, enabled=enabled)

    async def statuses(self, app_ids: list[str]) -> dict[str, UnitStatus]:
        return {a: await self.status(a) for a in app_ids}

    async def wait_exit(self, status: UnitStatus) -> None:
        if status.pid is None:
            return
        run = next((r for r in self._runs.values() if r.pid == status.pid), None)
        if run is None:  # not one of ours (any more): watch the PID itself
            try:
                created = psutil.Process(status.pid).create_time()
            except psutil.Error:
                return
            run = _Run(status.pid, created, None, None)
        await self._wait(run)

    async def remove(self, app_id: str) -> None:
        await self.stop(app_id)
        self._specs.pop(app_id, None)
        self._last.pop(app_id, None)
        self._watchdogs.discard(app_id)
        self._known.pop(app_id, None)
        try:
            self._state_file(app_id).unlink()
        except FileNotFoundError:
            pass

    async def managed(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.state_dir.glob("*.json"))
        except FileNotFoundError:
            return []
