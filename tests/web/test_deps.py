"""The one rule for who is asking, used by the dashboard (app.py) and the app origin (proxy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homehelper.config import AuthConfig, Config
from homehelper.errors import Unauthorized
from homehelper.web.auth import Auth, auth_file
from homehelper.web.deps import identify, is_loopback


def _setup(root: Path, loopback: bool = False) -> tuple[Auth, Config, str]:
    auth = Auth(auth_file(root), 1)
    token = auth.create_token("cli")["token"]
    config = Config(root=root, apps_dir=root / "apps", auth=AuthConfig(loopback_without_login=loopback))
    return auth, config, token


def test_token_then_session_then_loopback(state_root: Path) -> None:
    auth, config, token = _setup(state_root, loopback=True)
    asked: list[bool] = []

    def session() -> bool:
        asked.append(True)
        return True

    assert identify(auth, config, f"Bearer {token}", session, "192.0.2.7") == "token"
    assert asked == []  # a valid token needs no session look-up
    assert identify(auth, config, None, session, "192.0.2.7") == "session"
    assert identify(auth, config, None, lambda: False, "127.0.0.1") == "loopback"
    assert identify(auth, config, None, lambda: False, "::1") == "loopback"
    assert identify(auth, config, None, lambda: False, "192.0.2.7") is None
    assert identify(auth, config, "bearer " + token, lambda: False, None) == "token"  # scheme is case-blind


def test_loopback_only_when_configured(state_root: Path) -> None:
    auth, config, _ = _setup(state_root, loopback=False)
    assert identify(auth, config, None, lambda: False, "127.0.0.1") is None


def test_a_bad_token_is_refused_on_the_dashboard_and_passed_by_on_the_app_origin(state_root: Path) -> None:
    auth, config, _ = _setup(state_root)
    with pytest.raises(Unauthorized):
        identify(auth, config, "Bearer hh_not-a-token", lambda: True, None)
    # On the app origin a foreign bearer token may be the app's own: the app cookie still counts.
    assert identify(auth, config, "Bearer apps-own", lambda: True, None, foreign_tokens=True) == "session"
    assert identify(auth, config, "Bearer apps-own", lambda: False, None, foreign_tokens=True) is None


@pytest.mark.parametrize("addr", [None, "", "not-an-ip", "192.0.2.1", "fe80::1%eth0"])
def test_not_loopback(addr: str | None) -> None:
    assert not is_loopback(addr)


def test_loopback_with_zone() -> None:
    assert is_loopback("::1%lo") and is_loopback("127.8.9.10")
