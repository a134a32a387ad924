"""Launching a Streamlit app's run: the backend starts it on a port, then it counts as up once
it answers its health check (homehelper.actors.streamlit_spec.wait_ready); a port found taken is avoided on
the next of PORT_ATTEMPTS tries. The actor (streamlit.py) calls it for a StartApp or OpenUI.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from ..backends import logs
from ..backends.base import UnitStatus
from ..backends.delivery import with_options
from ..bus.acl import app_secrets
from ..errors import BackendError, HomeHelperError
from . import streamlit_spec as launcher
from .streamlit_spec import PortTaken, StartFailed, exit_code

if TYPE_CHECKING:
    from .streamlit import StreamlitApp

log = logging.getLogger("homehelper.actors.streamlit")  # its lines read as the actor's

PORT_ATTEMPTS = 3


async def launch_ready(app: StreamlitApp) -> UnitStatus:
    """Start through the backend and wait for health; a port found taken is avoided on the next try."""
    tried: list[int] = []
    for _ in range(PORT_ATTEMPTS):
        port = await app.allocate_port(tuple(tried))
        secrets = await app_secrets(app.ctx.identities, app.ctx.config.redis_url, app.app_id)
        spec = await with_options(launcher.streamlit_spec(app.ctx.config, app.manifest, port, secrets),
                                  app.manifest, app.ctx.config)
        await app.backend.prepare(spec)
        app.measure_exposure(app.nursery)  # the unit's score, once per unit change
        await trio.to_thread.run_sync(logs.rotate_if_needed, app.log_path)
        app.log_offset = logs.size(app.log_path)
        app._launched = True  # from here on_stop ends it, even if this start is cancelled
        try:
            try:
                await app.backend.start(app.app_id)
            except BackendError as exc:
                raise StartFailed(exc.message, await app._tail()) from None
            status = await app.backend.status(app.app_id)
            await wait_ready(app, status, port)
            return status
        except PortTaken:
            log.info("%s: port %s was taken, trying another", app.app_id, port)
            tried.append(port)
            with trio.CancelScope(shield=True):
                await app._end()
        except BaseException:
            with trio.CancelScope(shield=True):
                await app._end()
            raise
    raise launcher.port_taken_error(app.app_id, tried)

async def wait_ready(app: StreamlitApp, status: UnitStatus, port: int) -> None:
    exited = trio.Event()

    async def watch() -> None:
        if status.running:
            await app.backend.wait_exit(status)
        exited.set()

    async def exit_status() -> int | None:
        return exit_code(await app.backend.status(app.app_id))

    failed: HomeHelperError | PortTaken | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        try:
            await launcher.wait_ready(port, app.prefix, app.log_path, app.log_offset, app.cfg.start_timeout,
                                      exited, exit_status)
        except (HomeHelperError, PortTaken) as exc:  # raised below, not inside an exception group
            failed = exc
        nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed
