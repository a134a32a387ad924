"""How a service app's actor knows a run is well, one way per `health.type`: HTTP polls,
the process being alive, or the app's sd_notify watchdog. Each watcher runs for one run (its
scope is the run's) and takes the actor's lock for every transition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio

from ..backends.base import probe_delays, ready_timeout
from ..backends.httpprobe import probe
from ..messages import AppHealthChanged

if TYPE_CHECKING:
    from .service import ServiceApp


def startup_probes(cap: float) -> Iterator[float]:
    """Pauses between checks before the first success: from 5 ms, growing by a fifth, so an app up
    at t is seen by about 1.2 t + 5 ms (a 40 ms app at 45 ms, not 50-70). Until its port accepts,
    a check is a refused connect (tens of microseconds, nothing for the app to parse). About twenty
    checks in the first second."""
    return probe_delays(first=0.005, cap=cap, factor=1.2)


async def http_health(app: ServiceApp, scope: trio.CancelScope) -> None:
    """health.type "http": poll the health URL; `failures` failed polls in a row, after the
    start-up grace, are a failure."""
    h = app.manifest.health
    fails = 0
    first_polls = startup_probes(app.first_probe_every)
    while True:
        await trio.sleep(h.interval if app.healthy else min(next(first_polls), h.interval))
        if app.port is None:
            ok, detail = False, "no port assigned"
        else:
            ok, detail = await probe(app.port, h.path, h.timeout)
        now = trio.current_time()
        async with app._op:
            if scope.cancel_called:
                return
            if ok:
                fails = 0
                if app.healthy is not True:
                    await became_healthy(app, now, "healthy")
                app.tracker.healthy_for(now - (app.healthy_since or now))
                continue
            fails += 1
            in_grace = app.healthy is None and now - app.started_at < h.grace
            if fails < h.failures or in_grace:
                continue
            await unhealthy(app, detail, f"unhealthy: {detail}")
            return


async def became_healthy(app: ServiceApp, now: float, reason: str) -> None:
    """(_op held) The run counts as running from now."""
    if app._refresh_due:  # "running" comes with its PID known
        app._refresh_due = False
        await app._refresh_status()
    app.healthy, app.healthy_since = True, now
    app.ctx.emit(AppHealthChanged(app.app_id, True))
    app.set_state("running", reason)


async def unhealthy(app: ServiceApp, detail: str, why: str) -> None:
    """(_op held) Unhealthy for good: stop it and restart it under the same policy as a crash."""
    app.healthy = False
    app.ctx.emit(AppHealthChanged(app.app_id, False, detail))
    app.set_state("stopping", "unhealthy")
    await app.backend.stop(app.app_id)
    app._stopped_status()
    await app._failed(why)


async def alive_health(app: ServiceApp, scope: trio.CancelScope) -> None:
    """health.type "process": alive means healthy, so it is running once its PID is known.
    Nothing is polled: its exit is the process watcher's news."""
    async with app._op:
        if scope.cancel_called:
            return
        if app._refresh_due:
            app._refresh_due = False
            await app._refresh_status()
        if app.status.running:
            await became_healthy(app, trio.current_time(), "alive")
        elif app.desired == "running" and app.state in ("starting", "running"):
            await app._failed("exited")  # it died before we even saw its PID


async def watchdog_health(app: ServiceApp, scope: trio.CancelScope) -> None:
    """health.type "watchdog": running once the app says READY=1 (under systemd: its unit turned
    active); then a silence longer than health.interval is a failure. Under systemd the manager
    enforces that (SIGABRT, Result=watchdog) and the process watcher reports the end."""
    limit, ready = ready_timeout(app.manifest), False
    with trio.move_on_after(limit) as waited:
        ready = await app.backend.wait_ready(app.app_id)
    async with app._op:
        if scope.cancel_called or not (ready or waited.cancelled_caught):
            return  # stopped, or it ended while starting: the process watcher's news
        if waited.cancelled_caught:
            detail = f"not ready: no READY=1 within {limit:g} s"
            return await unhealthy(app, detail, detail)
        await became_healthy(app, trio.current_time(), "ready")
    why = await app.backend.missed_heartbeat(app.app_id, app.manifest.health.interval)
    async with app._op:
        if not scope.cancel_called:
            await unhealthy(app, why, why)
