"""A Streamlit app: a process that runs only while someone uses it.

It runs through the same backend as a service app (`ctx.backend`: a
systemd unit with the manifest's sandbox and limits, or the process backend),
from an AppSpec whose command is `streamlit run` (homehelper.actors.streamlit_spec), with
its output in logs/<id>/app.log. OpenUI starts it (once, however many ask at the
same time: the mailbox serialises them, and the second finds it running) and
replies when it answers its health check. Two deadlines on the TTL clock end it:
idle (pushed back by every KeepAlive) and max lifetime (never pushed back). A run
number tags each start, so a deadline or exit notice from an earlier run is
ignored. One found running at start (HomeHelper was restarted) is adopted.

From its AppContext: `backend` and `apps` (the apps Supervisor, to address this actor) are
required; `slots` (the Streamlit slots' ref; without it there is no cap) and `installer` (shared, so one
install runs at a time; without it the actor makes its own) are optional.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import attrs
import psutil
import trio

from ..backends import logs
from ..backends.base import Backend, UnitStatus, env_value, log_file
from ..backends.delivery import with_options
from ..backends.installer import Installer
from ..bus.acl import app_secrets
from ..errors import BackendError, Conflict, DiskFull, HomeHelperError, InstallFailed
from ..manifest import Manifest
from ..messages import (
    AppConfigError,
    AppCrashed,
    AppInstalled,
    AppInstallFailed,
    AppProcessChanged,
    AppStarted,
    AppStopped,
    CancelDeadline,
    PortAssigned,
    ReleaseSlot,
    ReserveSlot,
    ScheduleDeadline,
    TouchDeadline,
    UIDeadlines,
    UIExpired,
    UIProcessExited,
)
from . import ActorError, ActorRef, MailboxClosed
from . import streamlit_spec as launcher
from .app import AppActor, AppContext
from .streamlit_spec import PortTaken, StartFailed, cmdline_port, exit_code

log = logging.getLogger(__name__)

PORT_ATTEMPTS = 3
_MANIFEST_TTL_DEFAULT = attrs.fields(Manifest).ttl.default


class StreamlitApp(AppActor):
    port_kind = "streamlit"
    log_check_every = 60.0  # log rotation check, only while it runs

    def __init__(self, manifest: Manifest, ctx: AppContext) -> None:
        super().__init__(manifest, ctx)
        self.backend: Backend = ctx.need_backend()
        self.status = UnitStatus()  # of the current run; not running when there is none
        self.run_no = 0
        self.started_at = 0.0
        self.last_activity = 0.0
        self.nursery: trio.Nursery | None = None
        self._run_scope = trio.CancelScope()  # the exit watch and log check of the current run
        self._launched = False  # a start reached the backend: on_stop must end it
        self.log_offset = 0  # where the current run's output begins in its log
        self.installer: Installer = ctx.installer or Installer(ctx.config)

    # --- helpers ---------------------------------------------------------------
    @property
    def cfg(self) -> Any:
        return self.ctx.config.streamlit

    @property
    def ttl(self) -> float:
        """The manifest's TTL when it sets one, else the configured default."""
        return self.manifest.ttl if self.manifest.ttl != _MANIFEST_TTL_DEFAULT else self.cfg.ttl

    @property
    def prefix(self) -> str:
        return launcher.ui_prefix(self.app_id)

    @property
    def log_path(self) -> Path:
        return log_file(self.ctx.config.logs_dir(self.app_id))

    def me(self) -> ActorRef[Any]:
        if self.ctx.apps is None:
            raise TypeError("a Streamlit app needs AppContext.apps to address itself")
        return self.ctx.apps.ref(self.app_id)

    def _key(self, which: str) -> str:
        return f"ui:{self.app_id}:{which}"

    def _left(self) -> tuple[float, float, float]:
        """(ttl_left, max_lifetime_left, idle_for), 0 when not running."""
        if self.state != "running":
            return 0.0, 0.0, 0.0
        now = trio.current_time()
        idle_for = now - self.last_activity
        return (max(0.0, self.ttl - idle_for), max(0.0, self.cfg.max_lifetime - (now - self.started_at)), idle_for)

    def _announce_deadlines(self) -> None:
        self.ctx.emit(UIDeadlines(self.app_id, self.last_activity + self.ttl, self.started_at + self.cfg.max_lifetime))

    def reply(self) -> dict[str, Any]:
        ttl_left, life_left, _ = self._left()
        return {"app_id": self.app_id, "url": f"{self.prefix}/", "state": self.state,
                "ttl_left": round(ttl_left, 1), "max_lifetime_left": round(life_left, 1)}

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        ttl_left, life_left, idle_for = self._left()
        snap.update(url=f"{self.prefix}/", ttl=self.ttl, ttl_left=round(ttl_left, 1),
                    max_lifetime_left=round(life_left, 1),
                    idle_for=round(idle_for, 3) if self.state == "running" else None,
                    pid=self.status.pid, cgroup=self.status.cgroup, backend=self.backend.name,
                    memory_mb=self.manifest.resources.memory_mb)
        return snap

    # --- lifecycle -------------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        status = await self.backend.status(self.app_id)
        if status.running:  # it kept running while HomeHelper was away: adopted, never started twice
            await self._adopt(status)

    async def on_stop(self) -> None:
        """HomeHelper stops (or this actor crashed): end the process, leave nothing behind."""
        if self._launched or self.status.running:
            self._run_scope.cancel()
            with trio.CancelScope(shield=True):
                status = await self._end()
            self._forget_run()
            self.ctx.emit(AppStopped(self.app_id, "shutdown", exit_code(status)))

    async def _adopt(self, status: UnitStatus) -> None:
        port = cmdline_port(status.pid)
        if port is None:  # the proxy could not reach it: better gone than a slot nobody can use
            log.warning("%s: found running (pid %s) but its port cannot be read; stopping it", self.app_id, status.pid)
            await self.backend.stop(self.app_id)
            return
        self.port = port
        self.ctx.emit(PortAssigned(self.app_id, port))  # no AppStarted for an adopted run: where it listens
        try:  # its lifetime counts from its real start
            age = max(0.0, time.time() - psutil.Process(status.pid).create_time())
        except psutil.Error:
            age = 0.0
        slots = self.ctx.slots
        if slots is not None:
            await slots.tell(ReserveSlot(self.app_id, self.me(), adopted=True))
        if self.ctx.identities is not None:  # its Redis user may be gone with a Redis restart
            assert self.nursery is not None
            self.nursery.start_soon(self.ctx.identities.adopt, self.app_id, env_value(status.pid, "HH_REDIS_URL"))
        self.log_offset = logs.size(self.log_path)
        await self._begin_run(status, "adopted", age)

    async def open_ui(self) -> Any:
        if self.state == "running":
            await self.keep_alive()  # opening is using
        else:
            await self._start("user")
        return self.reply()

    async def start(self, reason: str) -> Any:
        if self.state != "running":
            await self._start(reason)
        return self.reply()

    async def stop(self, reason: str) -> Any:
        if self.state == "running":
            await self._stop(reason)
        if reason == "removed":  # its folder is gone: so goes its unit
            await self.backend.remove(self.app_id)
        return self.reply()

    async def keep_alive(self) -> Any:
        if self.state == "running":
            self.last_activity = trio.current_time()
            if self.ctx.ttl is not None:
                await self.ctx.ttl.tell(TouchDeadline(self._key("idle")))
            self._announce_deadlines()
        return self.reply()

    async def install(self, force: bool) -> Any:
        if self.state == "running":
            raise Conflict(f"{self.app_id} is running; stop it before reinstalling", app=self.app_id)
        await self._install(force)
        return self.reply()

    def _needs_venv(self) -> bool:
        return self.manifest.requirements is not None or bool(self.manifest.setup)

    async def _install(self, force: bool) -> None:
        """The app's own venv (requirements, setup commands), layered over HomeHelper's."""
        self.set_state("installing")
        try:
            disk = await self.installer.install(self.manifest, self.ctx.emit, force)
        except (InstallFailed, DiskFull) as exc:
            self.last_error = exc.message
            self.set_state("install_failed", exc.message)
            self.ctx.emit(AppInstallFailed(self.app_id, exc.message, str(exc.detail.get("output_tail", ""))))
            raise
        self.ctx.emit(AppInstalled(self.app_id, disk))
        self.set_state("stopped", "installed")

    async def apply_manifest(self, manifest: Manifest) -> Any:
        old_ttl = self.ttl
        self.manifest = manifest
        if self.state == "running" and self.ttl != old_ttl and self.ctx.ttl is not None:
            # scheduled anew, not touched: a touch only ever moves a deadline later
            self.last_activity = trio.current_time()
            await self.ctx.ttl.tell(ScheduleDeadline(self._key("idle"), self.ttl, self.me(),
                                                     UIExpired(self.app_id, "idle_ttl", self.run_no)))
            self._announce_deadlines()
        # a changed entry file, limits or sandbox take effect at the next start (a new unit)

    async def handle_other(self, msg: Any) -> Any:
        match msg:
            case UIExpired(_, reason, run):
                if run == self.run_no and self.state == "running":
                    await self._stop(reason)
            case UIProcessExited(_, run, status):
                if run == self.run_no and self.state == "running":
                    tail = await trio.to_thread.run_sync(logs.read_since, self.log_path, self.log_offset)
                    self._forget_run()
                    self.last_error = f"Streamlit exited with status {status}"
                    self.ctx.emit(AppCrashed(self.app_id, status, 0, None, tail[-2000:], self.last_error))
                    self.ctx.emit(AppStopped(self.app_id, "crashed", status))
                    self.set_state("stopped", "crashed")
            case _:
                raise Conflict(f"{self.app_id}: cannot handle {type(msg).__name__}", app=self.app_id)

    # --- start and stop --------------------------------------------------------
    async def _start(self, reason: str) -> None:
        if self.held_for_approval(reason):  # always an ask here (open, start): the asker hears why
            raise Conflict(self.approval_message(), app=self.app_id, grants=list(self.manifest.grants))
        if self._needs_venv() and not self.installer.is_current(self.manifest):
            await self._install(force=False)  # first open, or requirements changed
        slots = self.ctx.slots
        if slots is not None:
            await slots.ask(ReserveSlot(self.app_id, self.me()), timeout=self.cfg.stop_grace + 15)
        self.set_state("starting", reason)
        try:
            status = await self._launch_ready()
        except BaseException as exc:
            if slots is not None:
                self._tell_nowait(slots, ReleaseSlot(self.app_id))
            if isinstance(exc, HomeHelperError):
                self.last_error = exc.message
                if isinstance(exc, StartFailed):
                    self.ctx.emit(AppConfigError(self.app_id, exc.message, exc.log_tail))
            self.set_state("stopped", "start failed")
            raise
        self.last_error = None
        self.ctx.emit(AppStarted(self.app_id, self.port or 0, reason))
        await self._begin_run(status, reason)

    async def _begin_run(self, status: UnitStatus, reason: str, age: float = 0.0) -> None:
        """A run is on (started or adopted): its deadlines, its exit watch, its state."""
        self.status = status
        self.run_no += 1
        now = trio.current_time()
        self.started_at, self.last_activity = now - age, now
        self._run_scope = trio.CancelScope()
        assert self.nursery is not None
        self.nursery.start_soon(self._watch, status, self.run_no, self._run_scope)
        if self.ctx.ttl is not None:
            me = self.me()
            await self.ctx.ttl.tell(ScheduleDeadline(self._key("idle"), self.ttl, me,
                                                     UIExpired(self.app_id, "idle_ttl", self.run_no)))
            await self.ctx.ttl.tell(ScheduleDeadline(self._key("life"), max(0.0, self.cfg.max_lifetime - age), me,
                                                     UIExpired(self.app_id, "max_lifetime", self.run_no)))
        self.ctx.emit(AppProcessChanged(self.app_id, status.pid, status.cgroup))
        self._announce_deadlines()
        self.set_state("running", reason)

    async def _launch_ready(self) -> UnitStatus:
        """Start through the backend and wait for health; a port found taken is avoided on the next try."""
        tried: list[int] = []
        for _ in range(PORT_ATTEMPTS):
            port = await self.allocate_port(tuple(tried))
            secrets = await app_secrets(self.ctx.identities, self.ctx.config.redis_url, self.app_id)
            spec = await with_options(launcher.streamlit_spec(self.ctx.config, self.manifest, port, secrets),
                                      self.manifest, self.ctx.config)
            await self.backend.prepare(spec)
            self.measure_exposure(self.nursery)  # the unit's score, once per unit change
            await trio.to_thread.run_sync(logs.rotate_if_needed, self.log_path)
            self.log_offset = logs.size(self.log_path)
            self._launched = True  # from here on_stop ends it, even if this start is cancelled
            try:
                try:
                    await self.backend.start(self.app_id)
                except BackendError as exc:
                    raise StartFailed(exc.message, await self._tail()) from None
                status = await self.backend.status(self.app_id)
                await self._wait_ready(status, port)
                return status
            except PortTaken:
                log.info("%s: port %s was taken, trying another", self.app_id, port)
                tried.append(port)
                with trio.CancelScope(shield=True):
                    await self._end()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self._end()
                raise
        raise launcher.port_taken_error(self.app_id, tried)

    async def _wait_ready(self, status: UnitStatus, port: int) -> None:
        exited = trio.Event()

        async def watch() -> None:
            if status.running:
                await self.backend.wait_exit(status)
            exited.set()

        async def exit_status() -> int | None:
            return exit_code(await self.backend.status(self.app_id))

        failed: HomeHelperError | PortTaken | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                await launcher.wait_ready(port, self.prefix, self.log_path, self.log_offset, self.cfg.start_timeout,
                                          exited, exit_status)
            except (HomeHelperError, PortTaken) as exc:  # raised below, not inside an exception group
                failed = exc
            nursery.cancel_scope.cancel()
        if failed is not None:
            raise failed

    async def _tail(self) -> str:
        return await trio.to_thread.run_sync(logs.read_since, self.log_path, self.log_offset)

    async def _end(self) -> UnitStatus:
        """Stop it through the backend (SIGTERM to all it runs, SIGKILL after the backend's grace)."""
        await self.backend.stop(self.app_id)
        self._launched = False
        return await self.backend.status(self.app_id)

    async def _stop(self, reason: str) -> None:
        self.set_state("stopping", reason)
        self._run_scope.cancel()
        status = await self._end()
        self._forget_run()
        self.ctx.emit(AppStopped(self.app_id, reason, exit_code(status)))
        self.set_state("stopped", reason)

    def _forget_run(self) -> None:
        """The process is gone: drop its deadlines and slot."""
        self._run_scope.cancel()
        self.status = UnitStatus()
        if self.ctx.ttl is not None:
            self._tell_nowait(self.ctx.ttl, CancelDeadline(self._key("idle")))
            self._tell_nowait(self.ctx.ttl, CancelDeadline(self._key("life")))
        slots = self.ctx.slots
        if slots is not None:
            self._tell_nowait(slots, ReleaseSlot(self.app_id))
        self.ctx.emit(AppProcessChanged(self.app_id, None, None))

    @staticmethod
    def _tell_nowait(ref: ActorRef[Any], msg: Any) -> None:
        try:
            ref.tell_nowait(msg)
        except MailboxClosed:
            pass  # HomeHelper is stopping: the clock and the manager go too
        except ActorError as exc:  # a full mailbox must not stop a clean-up
            log.warning("could not tell %s %s: %s", ref.name, type(msg).__name__, exc)

    async def _watch(self, status: UnitStatus, run: int, scope: trio.CancelScope) -> None:
        """Until the run ends: its exit (the backend's cheap wait, no polling) and its log's size."""
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._log_watch)
                await self.backend.wait_exit(status)
                after = await self.backend.status(self.app_id)
                try:
                    await self.me().tell(UIProcessExited(self.app_id, run, exit_code(after)))
                except ActorError:
                    pass  # the actor is going away; on_stop cleans up
                nursery.cancel_scope.cancel()

    async def _log_watch(self) -> None:
        while True:
            await trio.sleep(self.log_check_every)
            if await trio.to_thread.run_sync(logs.rotate_if_needed, self.log_path):
                self.log_offset = 0
