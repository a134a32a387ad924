"""ASGI guards in front of both listeners (dashboard and app pages): the Host check against DNS
rebinding, and the caps on open connections.

DNS rebinding: a page on evil.example re-points its name at this machine, then talks to us as its
own origin (`Host: evil.example:8000`, a matching `Origin`), so neither the Origin check nor
SameSite cookies help; with `auth.loopback_without_login` it would need no login at all. Every
request and websocket must therefore name this server in `Host`: localhost, an IP literal (a
rebinding attack needs a name the attacker controls, an address never is one), this machine's
host name (with `.local` for mDNS), or a name in the `allowed_hosts` config key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"[a-z0-9._-]{1,253}|\[[0-9a-f:.]{2,45}\]")


def own_names(host: str, extra: Iterable[str] = ()) -> tuple[frozenset[str], tuple[str, ...]]:
    """(exact names, suffixes) this server answers to; computed once at start."""
    names = {"localhost"}
    hostname = socket.gethostname().lower().rstrip(".")
    if hostname:
        short = hostname.split(".")[0]
        names |= {hostname, short, short + ".local"}
    if host and not _is_ip(host) and host not in ("0.0.0.0", "::"):
        names.add(host.lower().rstrip("."))
    suffixes = [".localhost"]
    for name in extra:
        (suffixes.append(name) if name.startswith(".") else names.add(name))
    return frozenset(names), tuple(suffixes)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def host_name(value: str) -> str:
    """The name part of a Host header value: no port, lower case, no trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):  # [v6]:port
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0].rstrip(".") if value.count(":") == 1 else value.rstrip(".")


class HostGuard:
    """Refuses requests (421) and websockets (closed before accept: 403) whose Host is not ours."""

    def __init__(self, inner: Any, names: frozenset[str], suffixes: tuple[str, ...]) -> None:
        self.inner, self.names, self.suffixes = inner, names, suffixes
        self.logged: set[str] = set()

    def allowed(self, host: str) -> bool:
        name = host_name(host)
        if not NAME_RE.fullmatch(name):  # it ends up in links and headers: plain names only
            return False
        return name in self.names or _is_ip(name) or any(name.endswith(s) for s in self.suffixes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"host"), None)
            if host is not None and not self.allowed(host):
                await self.refuse(scope, send, host)
                return
        await self.inner(scope, receive, send)

    async def refuse(self, scope: Any, send: Any, host: str) -> None:
        name = host_name(host)[:100]
        if name not in self.logged and len(self.logged) < 64:  # once per name: a scan must not flood the log
            self.logged.add(name)
            log.warning("refused a request for Host %r (DNS rebinding?); add it to allowed_hosts if it is ours", name)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "misdirected", "message": f"this server does not answer to {name!r}; "
                           "add it to the allowed_hosts config key if it is this machine's name"}).encode()
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
