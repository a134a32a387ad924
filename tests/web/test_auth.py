"""The auth store: scrypt hashes, first-run password, sessions, API tokens, login rate limit."""

from __future__ import annotations

import json
import stat

import pytest

from homehelper.errors import NotFound, TooManyRequests, Unauthorized, ValidationError
from homehelper.web.auth import Auth, RateLimiter, auth_file, check_password, hash_password


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_hash_round_trip_and_salt() -> None:
    a, b = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert check_password("s3cret-pass", a)
    assert not check_password("s3cret-pasS", a)
    assert not check_password("x", {"salt": "zz"})  # a damaged file never lets anyone in


def test_first_run_uses_env_password(state_root) -> None:
    auth = Auth(auth_file(state_root), 1)
    printed: list[str] = []
    auth.ensure_password({"HOMEHELPER_PASSWORD": "from-the-env"}, out=printed.append)
    assert printed == []
    stored = json.loads(auth_file(state_root).read_text())
    assert "from-the-env" not in auth_file(state_root).read_text()
    assert check_password("from-the-env", stored["password"])
    assert stat.S_IMODE(auth_file(state_root).stat().st_mode) == 0o600


def test_first_run_generates_and_prints_once(state_root) -> None:
    printed: list[str] = []
    auth = Auth(auth_file(state_root), 1)
    auth.ensure_password({}, out=printed.append)
    assert len(printed) == 1
    password = printed[0].split("Dashboard password: ")[1].split()[0]
    Auth(auth_file(state_root), 1).ensure_password({}, out=printed.append)  # a second start: nothing printed
    assert len(printed) == 1
    assert Auth(auth_file(state_root), 1).login(password, "1.2.3.4").sid


def test_short_password_refused(state_root) -> None:
    auth = Auth(auth_file(state_root), 1)
    with pytest.raises(ValidationError):
        auth.set_password("short")
    assert not auth_file(state_root).exists()


def test_session_slides_and_expires(state_root) -> None:
    clock = Clock()
    auth = Auth(auth_file(state_root), session_hours=1, clock=clock)
    auth.ensure_password({"HOMEHELPER_PASSWORD": "long enough"})
    s = auth.login("long enough", "c")
    clock.t += 3000
    assert auth.session(s.sid) is s  # used within the hour: pushed back
    clock.t += 3000
    assert auth.session(s.sid) is s  # 6000 s after login, but only 3000 s idle
    clock.t += 3601
    assert auth.session(s.sid) is None
    assert auth.session("made-up") is None


def test_new_password_logs_everyone_out(state_root) -> None:
    auth = Auth(auth_file(state_root), 1)
    auth.ensure_password({"HOMEHELPER_PASSWORD": "long enough"})
    s = auth.login("long enough", "c")
    auth.set_password("another one")
    assert auth.session(s.sid) is None
    with pytest.raises(Unauthorized):
        auth.login("long enough", "c")


async def test_tokens(state_root) -> None:
    auth = Auth(auth_file(state_root), 1)
    made = auth.create_token("backup script")
    assert made["token"].startswith("hh_") and auth.check_token(made["token"])
    assert made["token"] not in auth_file(state_root).read_text()  # only its hash is stored
    assert [t["name"] for t in Auth(auth_file(state_root), 1).tokens()] == ["backup script"]
    assert not auth.check_token(made["token"] + "x")
    await auth.delete_token_saved(made["id"])
    assert not auth.check_token(made["token"])
    assert [t["name"] for t in Auth(auth_file(state_root), 1).tokens()] == []  # written
    with pytest.raises(NotFound):
        await auth.delete_token_saved(made["id"])
    with pytest.raises(ValidationError):
        auth.create_token("")


def test_rate_limit_per_client_and_window() -> None:
    clock = Clock()
    rl = RateLimiter(limit=3, window=60, clock=clock)
    for _ in range(3):
        rl.check("a")
        rl.fail("a")
    with pytest.raises(TooManyRequests) as err:
        rl.check("a")
    assert 1 <= err.value.detail["retry_after"] <= 60
    rl.check("b")  # another address is not affected
    clock.t += 61
    rl.check("a")  # the window passed


def test_login_rate_limited_even_with_right_password(state_root) -> None:
    auth = Auth(auth_file(state_root), 1)
    auth.ensure_password({"HOMEHELPER_PASSWORD": "long enough"})
    for _ in range(5):
        with pytest.raises(Unauthorized):
            auth.login("wrong password", "10.0.0.9")
    with pytest.raises(TooManyRequests):
        auth.login("long enough", "10.0.0.9")
    assert auth.login("long enough", "10.0.0.10").sid


async def test_cli_token_written_once_and_renewed_when_revoked(state_root) -> None:
    path = state_root / "run" / "cli-token"
    auth = Auth(auth_file(state_root), 1)
    auth.ensure_cli_token(path)
    token = path.read_text().strip()
    assert auth.check_token(token) and stat.S_IMODE(path.stat().st_mode) == 0o600
    mtime = path.stat().st_mtime_ns
    Auth(auth_file(state_root), 1).ensure_cli_token(path)  # a restart: still valid, nothing written
    assert path.stat().st_mtime_ns == mtime
    await auth.delete_token_saved(auth.tokens()[0]["id"])
    auth.ensure_cli_token(path)
    assert path.read_text().strip() != token and auth.check_token(path.read_text().strip())
    assert len(auth.tokens()) == 1  # the old one does not pile up


def test_password_set_by_another_process_is_seen(state_root) -> None:
    server = Auth(auth_file(state_root), 1)
    server.ensure_password({"HOMEHELPER_PASSWORD": "first password"})
    s = server.login("first password", "c")
    Auth(auth_file(state_root), 1).set_password("second password")  # `homehelper password`, say
    with pytest.raises(Unauthorized):
        server.login("first password", "c")
    assert server.session(s.sid) is None  # and the old sessions are gone
    assert server.login("second password", "c").sid
    cli = Auth(auth_file(state_root), 1).create_token("made offline")["token"]
    assert server.check_token(cli)
