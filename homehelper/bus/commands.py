"""Commands across nodes: one Redis Stream per node, read with a consumer group (blocking; worker threads).

    homehelper:<node>:fleet:commands        stream (XADD MAXLEN ~): commands for <node>, group "homehelper"
    homehelper:<node>:fleet:done:<id>       string, TTL: the result of a command <node> handled (idempotence)
    homehelper:<asker>:fleet:reply:<id>     list, TTL: the result, for the asker's BLPOP

At-least-once: an entry is acknowledged (XACK) in the same MULTI that stores its result and sends the
reply, so a crash before it leaves the entry pending (read again at the next start, `pending=True`) and a
crash after it leaves the result stored (the repeat is answered from `done`, not acted on twice). Every
command carries an expiry: a node that comes back late answers "expired" and does nothing.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import attrs
import redis

from .channels import PREFIX, check_app, check_name, stored_object

GROUP = "homehelper"
ACTIONS = ("start", "stop", "restart", "approve")
STREAM_MAXLEN = 1000  # commands kept per node (approximate trim): a flood cannot fill Redis
DONE_KEEP = 600  # seconds a handled command's id and result are remembered
REPLY_KEEP = 120  # seconds an unread reply waits for its asker
MAX_COMMAND = 8 * 1024  # bytes of one command's JSON
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def stream_key(node: str) -> str:
    return f"{PREFIX}:{check_name('node id', node)}:fleet:commands"


def done_key(node: str, cmd_id: str) -> str:
    return f"{PREFIX}:{check_name('node id', node)}:fleet:done:{cmd_id}"


def reply_key(node: str, cmd_id: str) -> str:
    return f"{PREFIX}:{check_name('node id', node)}:fleet:reply:{cmd_id}"


class BadCommand(ValueError):
    """An entry on a command stream that no node wrote: skipped (acknowledged), named in the log."""


@attrs.frozen
class FleetCommand:
    """One command for one app on one node, and who asked for it where."""

    id: str
    node: str  # the node that acts
    app: str
    action: str
    asker: str  # the node whose dashboard or CLI sent it (its reply list is there)
    user: str  # who was logged in there: session, token, loopback...
    expires: float  # Unix seconds: not acted on after this
    grants: tuple[str, ...] | None = None  # approve: the permissions and devices the user saw

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["grants"] = list(self.grants) if self.grants is not None else None
        return data

    @classmethod
    def parse(cls, text: Any) -> FleetCommand:
        if not isinstance(text, str) or len(text) > MAX_COMMAND:
            raise BadCommand("not a command (too long or not text)")
        try:
            d: dict[str, Any] = json.loads(text)
        except ValueError:
            raise BadCommand("not JSON") from None
        if not isinstance(d, dict):
            raise BadCommand("not a JSON object")
        try:
            cmd_id = d.get("id")
            if not isinstance(cmd_id, str) or not _ID_RE.fullmatch(cmd_id):
                raise ValueError(f"bad command id {str(cmd_id)[:40]!r}")
            action = d.get("action")
            if action not in ACTIONS:
                raise ValueError(f"unknown action {str(action)[:40]!r}")
            user = d.get("user")
            if not isinstance(user, str) or not 0 < len(user) <= 100:
                raise ValueError("bad user")
            expires = d.get("expires")
            if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not math.isfinite(expires):
                raise ValueError("bad expiry")
            grants = d.get("grants")
            if grants is not None:
                if not isinstance(grants, list) or len(grants) > 200 or not all(isinstance(g, str) for g in grants):
                    raise ValueError("bad grants")
                grants = tuple(grants)
            node, app, asker = d.get("node", ""), d.get("app", ""), d.get("asker", "")
            return cls(cmd_id, check_name("node id", node), check_app(app), action, check_name("node id", asker),
                       user, float(expires), grants)
        except ValueError as exc:
            raise BadCommand(str(exc)) from None


def send(client: Any, cmd: FleetCommand) -> str:
    """Queue the command on its node's stream; the entry id."""
    fields = {"cmd": json.dumps(cmd.to_json(), separators=(",", ":"))}
    return str(client.xadd(stream_key(cmd.node), fields, maxlen=STREAM_MAXLEN, approximate=True))


def wait_reply(client: Any, asker: str, cmd_id: str, timeout: float) -> dict[str, Any] | None:
    """The result sent back for `cmd_id`, or None when none came within `timeout` seconds."""
    got = client.blpop([reply_key(asker, cmd_id)], timeout=max(timeout, 0.01))
    if got is None:
        return None
    try:
        value = json.loads(got[1])
    except ValueError:
        return {"ok": False, "error": "the reply was not JSON"}
    return value if isinstance(value, dict) else {"ok": False, "error": "the reply was not an object"}


def ensure_group(client: Any, node: str) -> None:
    """The node's consumer group (and stream). From id 0: expiries guard against anything older."""
    try:
        client.xgroup_create(stream_key(node), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read(client: Any, node: str, *, pending: bool, block_ms: int, count: int = 16) -> list[tuple[str, Any]]:
    """(entry id, the command's text) for entries given to this node: its own unacknowledged ones
    (`pending`, after a restart) or new ones (waits up to `block_ms`)."""
    reply = client.xreadgroup(GROUP, node, {stream_key(node): "0" if pending else ">"}, count=count,
                              block=None if pending else block_ms)
    out: list[tuple[str, Any]] = []
    for _stream, entries in reply or ():
        for entry_id, fields in entries:
            out.append((entry_id, (fields or {}).get("cmd")))  # a trimmed pending entry has no fields
    return out


def already(client: Any, node: str, cmd_id: str) -> dict[str, Any] | None:
    """The stored result of a command this node handled before (a redelivery), else None."""
    return stored_object(client.get(done_key(node, cmd_id)))


def finish(client: Any, node: str, entry_id: str, cmd: FleetCommand | None, result: dict[str, Any]) -> None:
    """Store the result, send it back and acknowledge the entry: all or nothing (MULTI)."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    pipe = client.pipeline(transaction=True)
    if cmd is not None:
        pipe.set(done_key(node, cmd.id), text, ex=DONE_KEEP)
        pipe.rpush(reply_key(cmd.asker, cmd.id), text)
        pipe.expire(reply_key(cmd.asker, cmd.id), REPLY_KEEP)
    pipe.xack(stream_key(node), GROUP, entry_id)
    pipe.execute()


def expired(cmd: FleetCommand, now: float | None = None) -> bool:
    return (time.time() if now is None else now) > cmd.expires
