"""What crosses the proxy: headers towards an app (minus HomeHelper's credentials) and back."""

from __future__ import annotations

from typing import Any

from .auth import APP_COOKIE, SESSION_COOKIE, TOKEN_PREFIX

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection"})


def _forward_headers(raw: Any, strip_cookie: bool = True) -> list[tuple[bytes, bytes]]:
    """Headers minus hop-by-hop ones (and those `Connection` names), Host kept.

    Towards the app (`strip_cookie`): minus every HomeHelper credential, since the app is not
    HomeHelper's code and could replay them: our cookies, a `Bearer hh_...` token, the CSRF header.
    Towards the browser: minus any Set-Cookie of ours, so an app cannot plant or clear a session."""
    listed = {t.strip().lower() for n, v in raw if n.lower() == b"connection" for t in v.split(b",")}
    out = []
    for name, value in raw:
        low = name.lower()
        if low in HOP_BY_HOP or low in listed:
            continue
        if strip_cookie:
            if low == b"cookie":
                value = _strip_our_cookies(value)
                if not value:
                    continue
            elif low == b"x-csrf-token" or (low == b"authorization" and _is_our_token(value)):
                continue
        elif low == b"set-cookie" and _is_our_cookie(value.split(b"=", 1)[0].strip()):
            continue
        out.append((name, value))
    return out


def _is_our_token(value: bytes) -> bool:
    scheme, _, cred = value.strip().partition(b" ")
    return scheme.lower() == b"bearer" and cred.strip().startswith(TOKEN_PREFIX.encode())


def _is_our_cookie(name: bytes) -> bool:
    return name == SESSION_COOKIE.encode() or name.startswith(APP_COOKIE.encode())


def _strip_our_cookies(value: bytes) -> bytes:
    """The app never sees the dashboard's session nor its own ticket cookie (it is not HomeHelper's code)."""
    return b"; ".join(p for p in (c.strip() for c in value.split(b";"))
                      if p and not _is_our_cookie(p.split(b"=", 1)[0].strip()))
