"""Per-app Redis identities: one ACL user per app, so an app can speak only for itself.

With one shared identity any app could publish on another app's channels and on
HomeHelper's own. When HomeHelper's Redis user may manage users (`ACL SETUSER`) and
`redis_acl` is "auto", each app gets a user `hh-app.<node>.<id>` with a random password,
allowed to
  - PUBLISH on its own status, heartbeat and `pub:*` channels, nothing else;
  - SUBSCRIBE/PSUBSCRIBE (a selector: subscribing grants no publishing) to the public
    channels: `events:*`, every app's `pub:*` and `events`;
  - touch no key and run no other command (`-@all`).
The app's HH_REDIS_URL carries the user and password; it is a secret (AppSpec.secrets).
Passwords live in memory for one HomeHelper run (and in the app's secrets file); users
are re-created when Redis comes back (it may have lost them) and deleted when an app is
removed. Without the permission, on Redis before 7 (no selectors), or with
`redis_acl: off`, apps share HomeHelper's identity and the bus state says so.

Redis work runs in a worker thread with the sync client, like the rest of the bridge.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ConfigError
from .channels import Channels, check_app

log = logging.getLogger(__name__)

MODES = ("auto", "off")
QUIET_AFTER_FAILURE = 10.0  # seconds
ENV = "HH_REDIS_URL"
# Query parameters of HomeHelper's URL that are its own secrets, never handed to an app.
_PASSWORD_QUERY = frozenset({"password", "ssl_password"})
_PRIVATE_QUERY = frozenset({"username", "password", "ssl_password", "ssl_keyfile", "ssl_certfile"})
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)

Secrets = tuple[tuple[str, str], ...]
_PASSWORD_RE = re.compile(r"^[A-Za-z0-9_-]{24,128}$")  # what secrets.token_urlsafe makes


def configured(url: str | None) -> str | None:
    """The URL to connect to, or None: empty and 'none' (the CLI's spelling) mean no Redis."""
    if url is None or not url.strip() or url.strip().lower() == "none":
        return None
    return url.strip()


def redact(url: str | None) -> str:
    """The URL without its passwords (in the user part or the query), fit for logs, events and
    the dashboard."""
    if not url:
        return ""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    hidden = [(k, "***" if k in _PASSWORD_QUERY else v) for k, v in query]
    if parts.password is None and hidden == query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(hidden, safe="*/"), parts.fragment))


def user_name(ch: Channels, app_id: str) -> str:
    # '.' separates: node ids may hold '-', app ids never hold '.'; no ':' (the URL's separator)
    return f"hh-app.{ch.node}.{check_app(app_id)}"


def app_rules(ch: Channels, app_id: str, password: str) -> list[str]:
    """ACL SETUSER rules for one app. Redis checks PSUBSCRIBE patterns literally against the
    allowed ones, so the public patterns are exactly those the SDK subscribes with."""
    own = f"{ch.base}:apps:{check_app(app_id)}"
    public = (f"&{ch.base}:events:*", f"&{ch.base}:apps:*:pub:*", f"&{ch.base}:apps:*:events")
    return [
        "reset", "on", f">{password}", "resetkeys", "resetchannels",
        f"&{own}:status", f"&{own}:heartbeat", f"&{own}:pub:*",
        "-@all", "+publish", "+unsubscribe", "+punsubscribe", "+ping", "+select", "+hello", "+client|setname",
        "(" + " ".join(("resetchannels", *public, "+subscribe", "+psubscribe")) + ")",
    ]


def app_url(url: str, user: str, password: str) -> str:
    """HomeHelper's URL with the app's credentials instead of its own (scheme, host, db kept)."""
    parts = urlsplit(url)
    host = parts.hostname or ""  # empty for unix:// sockets
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _PRIVATE_QUERY])
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def shared_secrets(url: str | None) -> Secrets:
    """Apps on HomeHelper's own identity: still a secret, never in a unit's Environment=."""
    url = configured(url)
    return ((ENV, url),) if url else ()


async def app_secrets(identities: AppIdentities | None, url: str | None, app_id: str) -> Secrets:
    """What an app actor hands its backend: per-app credentials, or the shared URL without an
    identities service (a tree built without a bridge)."""
    if identities is None:
        return shared_secrets(url)
    return await identities.secrets_for(app_id)


def shared_note(reason: str) -> str:
    return f"apps share one Redis identity: any app may publish on any channel ({reason})"


class Refused(Exception):
    """Redis will not let HomeHelper manage users (no permission, or too old for selectors)."""


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0,
                                retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name="homehelper-acl")


class AppIdentities:
    """Hands out each app's Redis credentials. Used from the trio thread; Redis calls go to one
    worker thread at a time (its own limiter), so the client needs no lock."""

    def __init__(self, url: str | None, node_id: str = "main", mode: str = "auto",
                 client: Callable[[str], Any] = _client) -> None:
        if mode not in MODES:
            raise ConfigError(f"config key 'redis_acl' must be one of {', '.join(MODES)}, got {mode!r}",
                              key="redis_acl")
        self.url = configured(url)
        self.ch = Channels(node_id)
        self.mode = mode
        self.state = "shared" if mode == "off" else "unknown"  # per-app | shared | unknown
        self.reason = "redis_acl is off" if mode == "off" else ""
        self._passwords: dict[str, str] = {}  # app id -> password, for this run only
        self._make_client = client
        self._client: Any = None
        self._client_url: str | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._quiet_until = 0.0  # trio time before which Redis is not tried again (it just failed)

    # --- what the rest of HomeHelper calls -----------------------------------
    async def secrets_for(self, app_id: str) -> Secrets:
        """The app's environment secrets: its own HH_REDIS_URL (the user is made on the way), or
        the shared URL when per-app users are off or refused; () without Redis."""
        url = self.url
        if url is None:
            return ()
        if self.state == "shared":
            return shared_secrets(url)
        password = self._passwords.setdefault(app_id, secrets.token_urlsafe(24))
        try:
            await self._make_users(url, {app_id: password})
        except Refused as exc:
            self._refused(str(exc))
            return shared_secrets(url)
        except CONNECTION_ERRORS as exc:
            # Fail closed: the user is made when Redis is back (restore), not the shared identity.
            log.info("bus: Redis user for %s is made once Redis answers (%s)", app_id, exc)
        return ((ENV, app_url(url, user_name(self.ch, app_id), password)),)

    async def adopt(self, app_id: str, url: str | None) -> None:
        """A running app this HomeHelper did not start (it kept running across a restart): keep the
        password it holds and make sure its user exists, so its bus keeps working. Only the app's
        own user can be named this way, so a forged environment gains nothing."""
        if url is None or self.url is None or self.state == "shared" or app_id in self._passwords:
            return
        parts = urlsplit(url)
        password = unquote(parts.password or "")
        if parts.username != user_name(self.ch, app_id) or not _PASSWORD_RE.match(password):
            return  # started on the shared identity, or not by us
        self._passwords[app_id] = password
        try:
            await self._make_users(self.url, {app_id: password})
        except Refused as exc:
            self._refused(str(exc))
        except CONNECTION_ERRORS as exc:
            log.info("bus: Redis user for adopted %s is made once Redis answers (%s)", app_id, exc)

    async def forget(self, app_id: str) -> None:
        """The app is gone: so is its user (Redis disconnects its clients)."""
        if self._passwords.pop(app_id, None) is None or self.url is None or self.state == "shared":
            return
        try:
            await self._redis(self._delete, self.url, user_name(self.ch, app_id))
        except Refused as exc:
            log.warning("bus: could not delete the Redis user of removed app %s: %s", app_id, exc)
        except CONNECTION_ERRORS as exc:
            log.warning("bus: could not delete the Redis user of removed app %s: %s", app_id, exc)

    async def restore(self) -> None:
        """Redis (re)connected: learn whether users can be made, and (re)make the known ones."""
        url = self.url
        if url is None or self.mode == "off":
            return
        try:
            await self._make_users(url, dict(self._passwords), retry=True)
        except Refused as exc:
            if self._passwords:
                log.warning("bus: apps started meanwhile hold credentials Redis does not know: restart them")
            self._refused(str(exc))
        except CONNECTION_ERRORS as exc:
            log.info("bus: Redis users not restored yet: %s", exc)

    def set_url(self, url: str | None) -> None:
        """A new Redis: what it allows is not known yet (passwords stay; restore makes the users)."""
        self.url = configured(url)
        self._quiet_until = 0.0
        if self.mode != "off":
            self.state, self.reason = "unknown", ""

    def snapshot(self) -> dict[str, Any]:
        """For the bus state: `identity` per-app | shared | unknown (not asked Redis yet) | none."""
        if self.url is None:
            return {"identity": "none", "identity_note": ""}
        shared = self.state == "shared"
        return {"identity": self.state, "identity_note": shared_note(self.reason) if shared else ""}

    # --- internals ------------------------------------------------------------
    def _refused(self, reason: str) -> None:
        if self.state != "shared":
            log.warning("bus: no per-app Redis users (%s): apps share HomeHelper's Redis identity", reason)
        self.state, self.reason = "shared", reason
        self._passwords.clear()

    async def _redis(self, fn: Callable[..., None], *args: Any) -> None:
        await trio.to_thread.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)

    async def _make_users(self, url: str, passwords: dict[str, str], retry: bool = False) -> None:
        # After a failed attempt, app starts do not each wait out a connect timeout (twenty apps
        # at boot with Redis down): they go on at once, and the bridge's reconnect makes the users.
        if not retry and trio.current_time() < self._quiet_until:
            raise redis.ConnectionError("Redis did not answer a moment ago")
        try:
            await self._redis(self._set_users, url, passwords)
        except CONNECTION_ERRORS:
            self._quiet_until = trio.current_time() + QUIET_AFTER_FAILURE
            raise
        self._quiet_until = 0.0
        if self.url == url:
            self.state, self.reason = "per-app", ""

    def _conn(self, url: str) -> Any:
        if self._client is None or self._client_url != url:
            self._close()
            self._client, self._client_url = self._make_client(url), url
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None

    def _command(self, url: str, *args: str) -> Any:
        try:
            return self._conn(url).execute_command(*args)
        except CONNECTION_ERRORS:
            self._close()
            raise
        except redis.ResponseError as exc:  # NOPERM, or a Redis without ACL selectors (before 7.0)
            raise Refused(str(exc).splitlines()[0][:200]) from None

    def _set_users(self, url: str, passwords: dict[str, str]) -> None:
        if not passwords:  # nothing to make: probe with a user that can do nothing, then drop it
            probe = f"hh-probe.{self.ch.node}"
            self._command(url, "ACL", "SETUSER", probe, "reset", "(resetchannels +ping)")
            self._command(url, "ACL", "DELUSER", probe)
            return
        for app_id, password in passwords.items():
            self._command(url, "ACL", "SETUSER", user_name(self.ch, app_id), *app_rules(self.ch, app_id, password))

    def _delete(self, url: str, user: str) -> None:
        self._command(url, "ACL", "DELUSER", user)
