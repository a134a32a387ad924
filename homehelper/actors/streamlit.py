"""A Streamlit app: a process that runs only while someone uses it.

OpenUI starts it (once, however many ask at the same time: the mailbox
serialises them, and the second finds it running) and replies when it answers
its health check. Two deadlines on the TTL clock end it: idle (pushed back by
every KeepAlive) and max lifetime (never pushed back). A run number tags each
start, so a deadline or exit notice from an earlier run is ignored.

ctx.extra: "apps" (the apps Supervisor, to address this actor), "ui" (the UI
manager's ref; without it there is no cap), "installer" (shared, so one install
runs at a time; without it the actor makes its own).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from ..backends.installer import Installer
from ..bus.acl import app_secrets
from ..errors import Conflict, DiskFull, HomeHelperError, InstallFailed
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
    ReleaseUI,
    ReserveUI,
    ScheduleDeadline,
    TouchDeadline,
    UIExpired,
    UIProcessExited,
)
from ..ui import launcher, state
from ..ui.launcher import PortTaken, StartFailed, StreamlitProcess
from . import ActorError, ActorRef, MailboxClosed
from .app import AppActor, AppContext

log = logging.getLogger(__name__)

PORT_ATTEMPTS = 3
_MANIFEST_TTL_DEFAULT = attrs.fields(Manifest).ttl.default


class StreamlitApp(AppActor):
    port_kind = "streamlit"

    def __init__(self, manifest: Manifest, ctx: AppContext) -> None:
        super().__init__(manifest, ctx)
        self.sp: StreamlitProcess | None = None
        self.run_no = 0
        self.started_at = 0.0
        self.last_activity = 0.0
        self.nursery: trio.Nursery | None = None
        self.installer: Installer = ctx.extra.get("installer") or Installer(ctx.config)

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

    def me(self) -> ActorRef[Any]:
        return self.ctx.extra["apps"].ref(self.app_id)

    def _key(self, which: str) -> str:
        return f"ui:{self.app_id}:{which}"

    def _left(self) -> tuple[float, float, float]:
        """(ttl_left, max_lifetime_left, idle_for), 0 when not running."""
        if self.state != "running":
            return 0.0, 0.0, 0.0
        now = trio.current_time()
        idle_for = now - self.last_activity
        return (max(0.0, self.ttl - idle_for), max(0.0, self.cfg.max_lifetime - (now - self.started_at)), idle_for)

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
                    pid=self.sp.pid if self.sp is not None else None)
        return snap

    # --- lifecycle -------------------------------------------------------------
    async def on_start(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def on_stop(self) -> None:
        """HomeHelper stops (or this actor crashed): end the process quickly, leave nothing behind."""
        if self.sp is not None:
            status = await launcher.terminate(self.sp, min(self.cfg.stop_grace, 1.5))
            self._forget_run()
            self.ctx.emit(AppStopped(self.app_id, "shutdown", status))

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
        if self.sp is not None and self.state == "running":
            await self._stop(reason)
        return self.reply()

    async def keep_alive(self) -> Any:
        if self.state == "running":
            self.last_activity = trio.current_time()
            if self.ctx.ttl is not None:
                await self.ctx.ttl.tell(TouchDeadline(self._key("idle")))
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
        # a changed entry file takes effect at the next start (no file watcher on a Pi)

    async def handle_other(self, msg: Any) -> Any:
        match msg:
            case UIExpired(_, reason, run):
                if run == self.run_no and self.state == "running":
                    await self._stop(reason)
            case UIProcessExited(_, run, status):
                if run == self.run_no and self.sp is not None and self.state == "running":
                    tail = launcher.log_tail(self.sp.log_path)
                    self._forget_run()
                    self.last_error = f"Streamlit exited with status {status}"
                    self.ctx.emit(AppCrashed(self.app_id, status, 0, None, tail))
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
        ui = self.ctx.extra.get("ui")
        if ui is not None:
            await ui.ask(ReserveUI(self.app_id, self.me()), timeout=self.cfg.stop_grace + 15)
        self.set_state("starting", reason)
        try:
            sp = await self._spawn_ready()
        except BaseException as exc:
            if ui is not None:
                self._tell_nowait(ui, ReleaseUI(self.app_id))
            if isinstance(exc, HomeHelperError):
                self.last_error = exc.message
                if isinstance(exc, StartFailed):
                    self.ctx.emit(AppConfigError(self.app_id, exc.message, exc.log_tail))
            self.set_state("stopped", "start failed")
            raise
        self.run_no += 1
        self.started_at = self.last_activity = trio.current_time()
        self.last_error = None
        assert self.nursery is not None
        self.nursery.start_soon(self._watch, sp, self.run_no)
        if self.ctx.ttl is not None:
            me = self.me()
            await self.ctx.ttl.tell(ScheduleDeadline(self._key("idle"), self.ttl, me,
                                                     UIExpired(self.app_id, "idle_ttl", self.run_no)))
            await self.ctx.ttl.tell(ScheduleDeadline(self._key("life"), self.cfg.max_lifetime, me,
                                                     UIExpired(self.app_id, "max_lifetime", self.run_no)))
        self.ctx.emit(AppProcessChanged(self.app_id, sp.pid))
        self.ctx.emit(AppStarted(self.app_id, sp.port, reason))
        self.set_state("running", reason)

    async def _spawn_ready(self) -> StreamlitProcess:
        """Spawn and wait for health; a port found taken is avoided on the next try."""
        tried: list[int] = []
        for _ in range(PORT_ATTEMPTS):
            port = await self.allocate_port(tuple(tried))
            secrets = await app_secrets(self.ctx.identities, self.ctx.config.redis_url, self.app_id)
            sp = await launcher.spawn(self.ctx.config, self.manifest, port, secrets)
            self.sp = sp  # from here on_stop can end it, even if this start is cancelled
            state.record(self.ctx.config.run_dir, self.app_id, sp.pid, port, sp.prefix)
            try:
                await launcher.wait_ready(sp, self.cfg.start_timeout)
                return sp
            except PortTaken:
                log.info("%s: port %s was taken, trying another", self.app_id, port)
                tried.append(port)
                await self._end(sp, 1.0)
            except BaseException:
                await self._end(sp, self.cfg.stop_grace)
                raise
        raise launcher.port_taken_error(self.app_id, tried)

    async def _end(self, sp: StreamlitProcess, grace: float) -> int | None:
        with trio.CancelScope(shield=True):
            status = await launcher.terminate(sp, grace)
        self.sp = None
        state.forget(self.ctx.config.run_dir, self.app_id)
        return status

    async def _stop(self, reason: str) -> None:
        assert self.sp is not None
        self.set_state("stopping", reason)
        status = await launcher.terminate(self.sp, self.cfg.stop_grace)
        self._forget_run()
        self.ctx.emit(AppStopped(self.app_id, reason, status))
        self.set_state("stopped", reason)

    def _forget_run(self) -> None:
        """The process is gone: drop its file, deadlines and slot."""
        self.sp = None
        state.forget(self.ctx.config.run_dir, self.app_id)
        if self.ctx.ttl is not None:
            self._tell_nowait(self.ctx.ttl, CancelDeadline(self._key("idle")))
            self._tell_nowait(self.ctx.ttl, CancelDeadline(self._key("life")))
        ui = self.ctx.extra.get("ui")
        if ui is not None:
            self._tell_nowait(ui, ReleaseUI(self.app_id))
        self.ctx.emit(AppProcessChanged(self.app_id, None))

    @staticmethod
    def _tell_nowait(ref: ActorRef[Any], msg: Any) -> None:
        try:
            ref.tell_nowait(msg)
        except MailboxClosed:
            pass  # HomeHelper is stopping: the clock and the manager go too
        except ActorError as exc:  # a full mailbox must not stop a clean-up
            log.warning("could not tell %s %s: %s", ref.name, type(msg).__name__, exc)

    async def _watch(self, sp: StreamlitProcess, run: int) -> None:
        await sp.proc.wait()
        try:
            await self.me().tell(UIProcessExited(self.app_id, run, sp.proc.returncode))
        except ActorError:
            pass  # the actor is going away; on_stop cleans up
