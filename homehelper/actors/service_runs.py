"""The end of a service app's run, as its actor sees it: the process watcher that notices it,
the verdict (config error, clean exit, crash, given up) and the retry after a backoff or a
quarantine. Each takes the actor's lock (`_op`) for every transition, as service_health.py does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ..backends.restarts import judge_end
from ..errors import HomeHelperError
from ..messages import AppCrashed, AppHealthChanged, AppQuarantined, AppStopped
from . import ActorError

if TYPE_CHECKING:
    from .service import ServiceApp


async def run_failed(app: ServiceApp, why: str) -> None:
    """The run ended (or was ended) against the user's wish: classify, then retry or give up."""
    # Its output first: a health watcher calling this runs inside the run's scope, and an await
    # after cancelling that scope would end this task before the crash is judged and retried.
    tail = await app._output()
    app._run_scope.cancel()
    st, now = app.status, trio.current_time()
    if app.healthy and st.result == "watchdog":  # systemd ended it: say so, as the process backend does
        app.ctx.emit(AppHealthChanged(app.app_id, False, "watchdog: no heartbeat in time"))
    app.healthy = None
    # "process" health says nothing about start-up: a quick death with an ImportError is still a
    # configuration error, not a crash to retry.
    never_healthy = app.healthy_since is None or app.manifest.health.type == "process"
    verdict, reason = judge_end(why, st, app.manifest.restart.policy, tail, never_healthy,
                                now - app.started_at, app.startup_window)
    if verdict == "config_error":
        return app._config_error(reason, tail)
    if verdict == "exited":
        app.desired = "stopped"
        app.set_state("stopped", "exited")
        app.ctx.emit(AppStopped(app.app_id, "exited", st.exit_status))
        return
    app.last_error = reason
    if verdict == "given_up":
        app.desired = "stopped"
        app.ctx.emit(AppCrashed(app.app_id, st.exit_status, app.tracker.restarts, None, tail[-2000:], reason))
        app.set_state("stopped", "crashed")
        app.ctx.emit(AppStopped(app.app_id, "crashed", st.exit_status))
        return
    if app.healthy_since is not None and app.manifest.health.type != "http":
        app.tracker.healthy_for(now - app.healthy_since)  # no polls told it along the way
    state, delay = app.tracker.crashed(now)
    app.ctx.emit(AppCrashed(app.app_id, st.exit_status, app.tracker.restarts, delay, tail[-2000:], reason))
    app.set_state(state, reason)
    if state == "quarantined":
        app.ctx.emit(AppQuarantined(app.app_id, app.tracker.restarts, delay, reason))
    app._retry_scope = trio.CancelScope()
    assert app._nursery is not None
    app._nursery.start_soon(retry_after, app, delay, app._retry_scope)


async def watch_process(app: ServiceApp) -> None:
    """Notice the main process ending: the backend watches it cheaply (no systemctl polling)."""
    while True:
        if app._refresh_due:
            # Ask outside the lock, so a StopApp arriving now does not wait for systemctl show.
            generation = app._generation
            status = await app.backend.status(app.app_id)
            async with app._op:
                if generation != app._generation or not app._refresh_due:
                    continue  # a command came in between: what it did is newer than `status`
                app._refresh_due = False
                app._set_status(status)
                if not status.running and app.desired == "running" and app.state in ("starting", "running"):
                    await run_failed(app, "exited")  # it died before we even saw its PID
            continue
        if not app.status.running:
            await app._kick.wait()
            app._kick = trio.Event()
            continue
        watched = app.status
        await app.backend.wait_exit(watched)
        async with app._op:
            if app.status.pid != watched.pid:
                continue  # stopped or restarted by a command meanwhile
            await app._refresh_status()
            if app.status.running:
                continue  # restarted outside HomeHelper (systemctl restart): adopt the new process
            if app.desired == "running" and app.state in ("starting", "running"):
                await run_failed(app, "exited")
            elif app.state in ("starting", "running"):
                app.set_state("stopped", "exited")


async def retry_after(app: ServiceApp, delay: float, scope: trio.CancelScope) -> None:
    with scope:
        await trio.sleep(delay)
        async with app._op:
            if app.desired != "running" or app.state not in ("backoff", "quarantined"):
                return
            if app.held_for_approval("restart"):  # its manifest asks for more since it last ran
                return
            try:
                await app._launch("restart")
            except (HomeHelperError, ActorError) as exc:  # no port, a reload failed: try again later
                await run_failed(app, f"restart failed: {exc}")
