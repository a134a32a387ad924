"""The bus for apps behind a network wall (homehelper.backends.netwall): HomeHelper listens on a
Unix socket in each such app's own folder, `<root>/run/bus/<id>/redis.sock`, and copies bytes
between it and Redis. The app speaks Redis through it with its own ACL credentials
(HH_REDIS_URL=unix://...): the relay adds no rights, it only carries the connection across.

Where each app's relay forwards to is kept beside the folders (`<id>.target`, outside what the
app can write), so a HomeHelper that restarts under running apps listens for them again.
Bounded: a few connections per app, 64 KiB in flight per direction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import trio

from ..storage import atomic_write_text

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
MAX_CONNECTIONS = 8  # per app: the SDK holds one or two
CHUNK = 64 * 1024
Target = tuple[str, int] | str  # (host, port) or a Unix socket path


def _encode(target: Target) -> str:
    return json.dumps(list(target) if isinstance(target, tuple) else target)


def _decode(text: str) -> Target | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, str) and value.startswith("/"):
        return value
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
            and 0 < value[1] < 65536):
        return value[0], value[1]
    return None


class BusRelay:
    """One listener per walled app, in the nursery of `run`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # <root>/run/bus
        self._nursery: trio.Nursery | None = None
        self._apps: dict[str, tuple[Target, trio.CancelScope]] = {}

    def socket_path(self, app_id: str) -> Path:
        return self.folder / app_id / SOCKET_NAME

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen again for the apps a previous HomeHelper relayed for; then serve until cancelled."""
        saved = await trio.to_thread.run_sync(self._saved)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for app_id, target in saved.items():
                    await self._listen(app_id, target)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self._apps.clear()

    async def open(self, app_id: str, target: Target) -> Path:
        """Relay `app_id`'s socket to `target` (a changed target ends the old connections)."""
        current = self._apps.get(app_id)
        if current is None or current[0] != target:
            await trio.to_thread.run_sync(self._save, app_id, target)
            if self._nursery is not None:
                await self._listen(app_id, target)
        return self.socket_path(app_id)

    async def close(self, app_id: str) -> None:
        """The app is removed: no more relay, folder or record."""
        current = self._apps.pop(app_id, None)
        if current is not None:
            current[1].cancel()
        await trio.to_thread.run_sync(self._forget, app_id)

    # --- internals ------------------------------------------------------------------------
    def _saved(self) -> dict[str, Target]:
        out: dict[str, Target] = {}
        for f in sorted(self.folder.glob("*.target")) if self.folder.is_dir() else ():
            target = _decode(f.read_text(errors="replace"))
            if target is not None and (self.folder / f.stem).is_dir():
                out[f.stem] = target
        return out

    def _save(self, app_id: str, target: Target) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Readable by the app's user under a system manager (User=): the socket gives only what
        # Redis on its TCP port gives anyone on this machine.
        (self.folder / app_id).mkdir(mode=0o755, exist_ok=True)
        path = self.folder / f"{app_id}.target"
        text = _encode(target)
        try:
            if path.read_text() == text:
                return
        except FileNotFoundError:
            pass
        atomic_write_text(path, text)

    def _forget(self, app_id: str) -> None:
        (self.folder / f"{app_id}.target").unlink(missing_ok=True)
        shutil.rmtree(self.folder / app_id, ignore_errors=True)

    async def _listen(self, app_id: str, target: Target) -> None:
        assert self._nursery is not None
        old = self._apps.pop(app_id, None)
        if old is not None:
            old[1].cancel()
        path = self.socket_path(app_id)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
            await sock.bind(str(path))
            os.chmod(path, 0o666)
            sock.listen(MAX_CONNECTIONS)
        except OSError as exc:
            sock.close()
            log.warning("bus relay for %s: cannot listen on %s: %s", app_id, path, exc)
            return
        scope = trio.CancelScope()
        self._apps[app_id] = (target, scope)
        self._nursery.start_soon(self._serve, app_id, trio.SocketListener(sock), target, scope)

    async def _serve(self, app_id: str, listener: trio.SocketListener, target: Target,
                     scope: trio.CancelScope) -> None:
        limit = trio.CapacityLimiter(MAX_CONNECTIONS)
        with scope:
            async with listener, trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    if limit.borrowed_tokens >= limit.total_tokens:
                        await stream.aclose()  # more than an app needs: refused, not queued
                        continue
                    nursery.start_soon(self._carry, app_id, stream, target, limit)

    async def _carry(self, app_id: str, stream: trio.SocketStream, target: Target, limit: Any) -> None:
        async with limit, stream:
            try:
                with trio.fail_after(5):
                    up: trio.SocketStream = (await trio.open_unix_socket(target) if isinstance(target, str)
                                             else await trio.open_tcp_stream(*target))
            except (OSError, trio.TooSlowError) as exc:
                log.info("bus relay for %s: Redis did not answer: %s", app_id, exc)
                return
            async with up, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, stream, up, nursery.cancel_scope)
                nursery.start_soon(_pump, up, stream, nursery.cancel_scope)


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
    """Copy one direction until it ends; then the connection is over both ways."""
    try:
        while chunk := await src.receive_some(CHUNK):
            await dst.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        done.cancel()
