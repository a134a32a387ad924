"""The one owner of the live config: validates a change, saves it, holds the result and publishes it.

Every change made at run time goes through this actor's mailbox, so concurrent changes are applied
one after the other: none is lost, and config.json is only ever written by one writer (atomically,
in a worker thread). After a change is saved, the followers registered by serve.py are called in
order (app context, installer, log level, sensors, the web layer), then ConfigChanged is published
for those that follow the bus (the Redis bridge: `redis_url`).

Who follows which editable key (config.EDITABLE): `log_level` the root logger; `redis_url` the
bridge, and apps at their next start; `streamlit.*` the Streamlit slots and the Streamlit app actors;
`monitor.*` the sensor actor (and `min_free_disk_mb` the installer); `auth.*` the web layer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from ..config import Config, change_config, read_config_file
from ..errors import BadRequest, ConfigError, Unavailable
from ..messages import ChangeConfig, ConfigChanged, GetConfig
from ..storage import atomic_write_json, set_aside
from . import Actor

log = logging.getLogger(__name__)

Follower = Callable[[Config, Config], Awaitable[None] | None]  # (old, new)


def merge(into: dict[str, Any], changes: dict[str, Any]) -> None:
    """Lay nested `changes` over `into` (only the keys given change)."""
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


def dotted(changes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"streamlit": {"ttl": 60}} -> {"streamlit.ttl": 60}: what ConfigChanged carries."""
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if isinstance(v, dict):
            out.update(dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def save_changes(path: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Lay `changes` over what config.json holds and write it back atomically; what was written.

    Blocking: call it in a worker thread. Keys the change does not name keep their value in the
    file (a person's edits of restart-only keys included). A file damaged since the start is set
    aside rather than overwritten, so nothing in it is lost for good.
    """
    try:
        stored = read_config_file(path) or {}
    except ConfigError as exc:
        aside = set_aside(path)
        log.warning("config: %s; kept as %s, writing the change to a fresh file", exc.message, aside.name)
        stored = {}
    merge(stored, changes)
    atomic_write_json(path, stored)
    return stored


class Settings(Actor):
    """Give its ChildSpec the one instance (`lambda: settings`): a restart keeps the live config."""

    name = "settings"

    def __init__(self, config: Config, emit: Callable[[object], None]) -> None:
        self.current = config  # read directly by trio code (the latest change that was saved)
        self.emit = emit
        self.followers: list[Follower] = []

    def follow(self, follower: Follower) -> None:
        """Call `follower(old, new)` after each saved change, before ConfigChanged is published."""
        self.followers.append(follower)

    async def handle(self, msg: Any) -> Any:
        match msg:
            case GetConfig():
                return self.current
            case ChangeConfig(changes):
                return await self.change(changes)
            case _:
                raise BadRequest(f"settings: unknown message {type(msg).__name__}")

    async def change(self, changes: Any) -> Config:
        if not isinstance(changes, dict) or not changes:
            raise BadRequest("send a JSON object of config keys to change, e.g. {\"log_level\": \"DEBUG\"}")
        new = change_config(self.current, changes)  # refuses a bad value or a restart-only key, naming it
        path = self.current.config_file
        try:
            await trio.to_thread.run_sync(save_changes, path, changes)
        except OSError as exc:
            raise Unavailable(f"could not save {path}: {exc.strerror or exc}; nothing was changed") from None
        old, self.current = self.current, new
        for follower in self.followers:
            try:
                result = follower(old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one part failing to follow must not keep the change from the others
                log.exception("config: a follower of the change failed")
        self.emit(ConfigChanged(dotted(changes)))
        # Keys only for redis_url: its password stays out of the log.
        log.info("config changed: %s", ", ".join(k if k == "redis_url" else f"{k}={v!r}"
                                                  for k, v in dotted(changes).items()))
        return new
