"""Who may use the dashboard: password, sessions, CSRF, API tokens, login rate limit.

The password is stored as a scrypt hash (stdlib, memory-hard, slow on purpose) in
`config/auth.json`, written atomically. Sessions live in memory only: a restart logs
everyone out, and an idle dashboard never writes to the SD card.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ..errors import HomeHelperError, NotFound, TooManyRequests, Unauthorized, ValidationError
from ..storage import atomic_write_bytes, atomic_write_text, json_bytes, read_json

log = logging.getLogger(__name__)

# scrypt at n=2**14, r=8: 16 MiB and ~50 ms per check on a Pi 5; slow for a guesser, fine for a person.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SESSION_COOKIE = "hh_session"
APP_COOKIE = "hh_app"  # an app page's own cookie on the app origin (names starting with it are all ours)
MAX_SESSIONS = 256
MAX_TOKENS = 64
TICKET_SECONDS = 60.0
TOKEN_PREFIX = "hh_"
CLI_TOKEN_NAME = "cli (this machine)"


def hash_password(password: str, salt: bytes | None = None, **params: int) -> dict[str, Any]:
    salt = salt or os.urandom(16)
    p = {**SCRYPT, **params}
    digest = hashlib.scrypt(password.encode(), salt=salt, n=p["n"], r=p["r"], p=p["p"], maxmem=64 * 1024 * 1024)
    return {"algo": "scrypt", **p, "salt": salt.hex(), "hash": digest.hex()}


def check_password(password: str, stored: dict[str, Any]) -> bool:
    try:
        salt = bytes.fromhex(stored["salt"])
        n, r, p = int(stored["n"]), int(stored["r"]), int(stored["p"])
    except (KeyError, ValueError, TypeError):
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)
    return hmac.compare_digest(digest.hex(), str(stored.get("hash", "")))


def _token_hash(token: str) -> str:
    # API tokens are 32 random bytes: a fast hash is enough (nothing to brute-force).
    return hashlib.sha256(token.encode()).hexdigest()


@attrs.define
class Session:
    sid: str
    csrf: str
    expires: float


@attrs.define
class AppSession:
    """A ticket, or the app-scoped session it became: one app's pages on the app origin."""

    app_id: str
    parent: str | None  # the dashboard session it came from
    expires: float
    epoch: int = 0  # the password generation (for those without a parent session)


class RateLimiter:
    """Failed logins per client address: `limit` within `window` seconds, then 429."""

    def __init__(self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.lock = threading.Lock()

    def attempt(self, key: str) -> None:
        """Count an attempt before its password is checked (429 past the limit); a success resets.

        Counting first means a hundred guesses sent at once cannot all slip in before the first
        failure is recorded."""
        with self.lock:
            self.check(key)
            self.fail(key)

    def check(self, key: str) -> None:
        now = self.clock()
        q = self.failures.get(key)
        if q is None:
            return
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self.failures[key]
        elif len(q) >= self.limit:
            retry = max(1, round(q[0] + self.window - now))
            raise TooManyRequests(f"too many failed logins; try again in {retry} s", retry_after=retry)

    def fail(self, key: str) -> None:
        q = self.failures.setdefault(key, deque(maxlen=self.limit))
        q.append(self.clock())
        self.failures.move_to_end(key)
        while len(self.failures) > 1024:  # bounded: forget the oldest addresses
            self.failures.popitem(last=False)

    def reset(self, key: str) -> None:
        self.failures.pop(key, None)


class Auth:
    """The auth state of one server: the stored hash and tokens, and live sessions."""

    def __init__(self, path: Path, session_hours: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.session_seconds = session_hours * 3600.0
        self.clock = clock
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.tickets: OrderedDict[str, AppSession] = OrderedDict()
        self.app_sessions: OrderedDict[str, AppSession] = OrderedDict()
        self.epoch = 0  # bumped by a new password: ends app sessions that have no dashboard session
        self.limiter = RateLimiter()
        self.hashed = 0  # password checks run (scrypt: 16 MiB each), for tests and diagnostics
        self.data: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None
        self._writes = trio.Lock()  # fair: the server's writes of auth.json go out in the order made
        self._reload()

    def _reload(self) -> None:
        """Re-read auth.json when another process (`homehelper password`) changed it; a stat otherwise.

        Damaged at start: AuthFileDamaged (nothing to rebuild it from). Damaged while running: the
        last good copy stays in use and it is logged once."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuthFileDamaged(self.path, exc.strerror or str(exc)) from None
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            try:
                data = load_auth_data(self.path)
            except AuthFileDamaged as exc:
                if self._stamp is None:
                    raise
                log.error("%s; keeping the copy read before", exc.message)
                self._stamp = stamp
                return
            old = self.data.get("password")
            self.data = data
            if self._stamp is not None and self.data.get("password") != old:
                self.sessions.clear()  # a password changed elsewhere logs everyone out here too
                self.epoch += 1
            self._stamp = stamp

    # --- first run ------------------------------------------------------------
    def ensure_password(self, environ: dict[str, str] | None = None, out: Callable[[str], None] | None = None) -> None:
        """First run: HOMEHELPER_PASSWORD, else a generated password printed once."""
        if "password" in self.data:
            return
        env = os.environ if environ is None else environ
        password = env.get("HOMEHELPER_PASSWORD")
        if password:
            self.set_password(password)
            return
        password = secrets.token_urlsafe(12)
        self.set_password(password)
        (out or (lambda s: print(s, file=sys.stderr, flush=True)))(
            f"HomeHelper: first run. Dashboard password: {password}\n"
            f"  (shown once; change it with `homehelper password`; stored hashed in {self.path})"
        )

    def set_password(self, password: str) -> None:
        if len(password) < 8:
            raise ValidationError("the password must be at least 8 characters", ["password: at least 8 characters"])
        self.data["password"] = hash_password(password)
        self._save()
        self.sessions.clear()  # a new password logs everyone out
        self.epoch += 1

    def _save(self) -> None:
        self._write(json_bytes(self.data))

    def _write(self, body: bytes) -> None:
        atomic_write_bytes(self.path, body, mode=0o600)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_ino)

    async def _saved(self) -> None:
        """Write auth.json from a worker thread: the state as of this call, one write at a time.
        (An fsync on an SD card must not stall every socket of the server.)"""
        body = json_bytes(self.data)
        async with self._writes:
            await trio.to_thread.run_sync(self._write, body)

    # --- login and sessions ---------------------------------------------------
    def login(self, password: str, client: str) -> Session:
        """Count the attempt, check the password (slow: call from a worker thread), open a session."""
        self.limiter.attempt(client)
        return self.login_counted(password, client)

    def login_counted(self, password: str, client: str) -> Session:
        """The password check of an attempt already counted with `limiter.attempt(client)`."""
        self._reload()
        stored = self.data.get("password")
        self.hashed += 1
        if not isinstance(password, str) or stored is None or not check_password(password, stored):
            raise Unauthorized("wrong password")  # already counted as a failure
        self.limiter.reset(client)
        return self.new_session()

    def new_session(self) -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), self.clock() + self.session_seconds)
        self.sessions[s.sid] = s
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return s

    def session(self, sid: str | None) -> Session | None:
        """The live session for a cookie value, its expiry pushed back (sliding)."""
        if not sid:
            return None
        s = self.sessions.get(sid)
        now = self.clock()
        if s is None:
            return None
        if s.expires <= now:
            del self.sessions[sid]
            return None
        s.expires = now + self.session_seconds
        self.sessions.move_to_end(sid)
        return s

    def logout(self, sid: str | None) -> None:
        if sid:
            self.sessions.pop(sid, None)

    # --- app pages: tickets and app-scoped sessions on the app origin ---------------
    def issue_ticket(self, app_id: str, parent: str | None) -> str:
        """A single-use ticket, good for TICKET_SECONDS, that opens `app_id`'s pages on the app origin.

        `parent` is the dashboard session asking (None for a token or loopback): the app session
        the ticket becomes ends with it."""
        ticket = secrets.token_urlsafe(24)
        self.tickets[ticket] = AppSession(app_id, parent, self.clock() + TICKET_SECONDS, self.epoch)
        while len(self.tickets) > MAX_SESSIONS:
            self.tickets.popitem(last=False)
        return ticket

    def redeem_ticket(self, ticket: str | None, app_id: str) -> str | None:
        """The app-session id for a valid ticket of `app_id` (the ticket is used up), else None."""
        t = self.tickets.pop(ticket, None) if ticket else None
        if t is None or t.app_id != app_id or t.expires <= self.clock() or not self._parent_alive(t):
            return None
        sid = secrets.token_urlsafe(32)
        self.app_sessions[sid] = AppSession(app_id, t.parent, self.clock() + self.session_seconds, t.epoch)
        while len(self.app_sessions) > 2 * MAX_SESSIONS:
            self.app_sessions.popitem(last=False)
        return sid

    def app_session(self, sid: str | None, app_id: str) -> bool:
        """Whether the app cookie `sid` opens `app_id`'s pages: that app only, while its dashboard
        session lives (logout or a new password ends it), sliding like a session."""
        s = self.app_sessions.get(sid) if sid else None
        if s is None or s.app_id != app_id:
            return False
        now = self.clock()
        if s.expires <= now or not self._parent_alive(s):
            del self.app_sessions[sid]  # type: ignore[arg-type]
            return False
        s.expires = now + self.session_seconds
        return True

    def _parent_alive(self, s: AppSession) -> bool:
        if s.parent is None:
            return s.epoch == self.epoch
        p = self.sessions.get(s.parent)
        return p is not None and p.expires > self.clock()

    # --- API tokens -----------------------------------------------------------
    def tokens(self) -> list[dict[str, Any]]:
        return [{k: t[k] for k in ("id", "name", "created")} for t in self.data.get("tokens", [])]

    def create_token(self, name: str) -> dict[str, Any]:
        made = self._new_token(name)
        self._save()
        return made

    async def create_token_saved(self, name: str) -> dict[str, Any]:
        """create_token for the server: the file is written off the trio thread."""
        made = self._new_token(name)
        await self._saved()
        return made

    def _new_token(self, name: str) -> dict[str, Any]:
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
            raise ValidationError("a token needs a name of 1-64 characters", ["name: 1-64 characters"])
        tokens = self.data.setdefault("tokens", [])
        if len(tokens) >= MAX_TOKENS:
            raise ValidationError(f"at most {MAX_TOKENS} API tokens; delete one first", ["tokens: too many"])
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = {"id": secrets.token_hex(6), "name": name.strip(), "created": round(self.clock()),
                 "hash": _token_hash(token)}
        tokens.append(entry)
        return {"id": entry["id"], "name": entry["name"], "created": entry["created"], "token": token}

    async def delete_token_saved(self, token_id: str) -> None:
        """Revoke a token (at once, in memory) and write the file off the trio thread."""
        tokens = self.data.get("tokens", [])
        kept = [t for t in tokens if t["id"] != token_id]
        if len(kept) == len(tokens):
            raise NotFound(f"no API token with id {token_id!r}", token=token_id)
        self.data["tokens"] = kept
        await self._saved()

    def ensure_cli_token(self, path: Path) -> None:
        """A token for `homehelper apps` on this machine, in a file only this user reads.

        Written at start only when missing or revoked, so an idle server never writes."""
        try:
            if self.check_token(path.read_text().strip()):
                return
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # not ours to delete: set aside, named so it is found
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            log.warning("%s was a folder, not a token file: moved to %s and a fresh token written", path, aside)
        except (OSError, UnicodeDecodeError):
            pass  # unreadable: replaced below
        self.data["tokens"] = [t for t in self.data.get("tokens", []) if t.get("name") != CLI_TOKEN_NAME]
        made = self.create_token(CLI_TOKEN_NAME)
        atomic_write_text(path, made["token"] + "\n", mode=0o600)

    def check_token(self, token: str) -> bool:
        self._reload()
        h = _token_hash(token)
        return any(hmac.compare_digest(h, t.get("hash", "")) for t in self.data.get("tokens", []))


def auth_file(root: Path) -> Path:
    return root / "config" / "auth.json"


class AuthFileDamaged(HomeHelperError):
    """config/auth.json cannot be read: the password hash and tokens have no other copy."""

    code = "auth_file_damaged"

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is damaged ({what}): restore it from a backup, or move it aside and start "
                         "again to get a new password (API tokens must then be created again)", path=str(path))


def load_auth_data(path: Path) -> dict[str, Any]:
    """auth.json's content, checked field by field ({} when missing); AuthFileDamaged names what is wrong."""
    try:
        data = read_json(path, {})
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuthFileDamaged(path, getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise AuthFileDamaged(path, "not a JSON object")
    pw = data.get("password")
    if pw is not None and not (isinstance(pw, dict) and all(isinstance(pw.get(k), str) for k in ("salt", "hash"))
                               and all(isinstance(pw.get(k), int) and pw[k] > 0 for k in ("n", "r", "p"))):
        raise AuthFileDamaged(path, "'password' is not a scrypt hash")
    tokens = data.get("tokens", [])
    if not isinstance(tokens, list) or not all(
            isinstance(t, dict) and all(isinstance(t.get(k), str) for k in ("id", "name", "hash"))
            and isinstance(t.get("created"), (int, float)) for t in tokens):
        raise AuthFileDamaged(path, "'tokens' is not a list of tokens")
    return data


def open_auth(config: Any) -> Auth:
    """The server's Auth at start: the password set (or generated and printed), the CLI token written.

    Raises AuthFileDamaged, one line naming the file and the fix, when auth.json is damaged."""
    auth = Auth(auth_file(config.root), config.auth.session_hours)
    auth.ensure_password()
    auth.ensure_cli_token(config.run_dir / "cli-token")  # read by `homehelper apps`
    return auth
