"""A node's own Redis identity: the ACL user each HomeHelper of a fleet connects as (docs/fleet.md).

Not the default user: a node `hh-node.<node>` may touch only HomeHelper's names (`homehelper:*` keys
and channels), run the data, stream, pub/sub and transaction commands the bridge and the fleet use,
read INFO and LATENCY for the dashboard's Redis card, and manage users (`ACL SETUSER/DELUSER`) so its
apps each get their own user (bus/acl.py). Nothing dangerous besides: no FLUSHALL, KEYS, CONFIG,
DEBUG, SHUTDOWN, MODULE. Apps never see these credentials; an app's user runs `-@all` plus PUBLISH on
its own channels, so it cannot write to any node's command stream.

Managing users is as strong as Redis's admin right (a user that may SETUSER may make itself anything):
a node is trusted with the fleet. A house that wants nodes weaker gives them `+@all` minus `+acl`
here and sets `redis_acl: off` (apps then share the node's identity, as docs/bus.md says).

`homehelper fleet credentials NODE --admin-url URL` runs `setup` and prints the node's URL.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .channels import PREFIX, check_name

NODE_USER_PREFIX = "hh-node."


def node_user(node: str) -> str:
    return f"{NODE_USER_PREFIX}{check_name('node id', node)}"


def node_rules(password: str) -> list[str]:
    """ACL SETUSER rules for a node."""
    return [
        "reset", "on", f">{password}", "resetkeys", "resetchannels",
        f"~{PREFIX}:*", f"&{PREFIX}:*",
        "-@all", "+@read", "+@write", "+@stream", "+@pubsub", "+@connection", "+@transaction", "+@keyspace",
        "+@list", "+@set", "+@hash", "+@string", "+@sortedset",
        "-@dangerous",
        # after -@dangerous: what the bridge needs of it (the Redis card, per-app users)
        "+info", "+latency|latest", "+acl|setuser", "+acl|deluser", "+acl|whoami", "+client|setname",
        "+client|id", "+ping", "+hello", "+select",
    ]


def node_url(admin_url: str, node: str, password: str) -> str:
    """The admin's URL (host, port, db, TLS options) with the node's user and password."""
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{quote(node_user(node), safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def setup(client: Any, admin_url: str, node: str, password: str | None = None) -> str:
    """Make (or reset) the node's user on the Redis `client` is an admin of; the node's redis_url."""
    password = password or secrets.token_urlsafe(32)
    client.execute_command("ACL", "SETUSER", node_user(node), *node_rules(password))
    return node_url(admin_url, node, password)
