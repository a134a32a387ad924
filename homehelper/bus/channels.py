"""The channel scheme: every Redis name HomeHelper uses, with the node id in it.

Plain Redis, so an app needs no SDK to take part (docs/bus.md has the table):

    homehelper:<node>:events:<kind>            HomeHelper -> world: every event, by kind
    homehelper:<node>:apps:<app>:events       HomeHelper -> world: events about one app
    homehelper:<node>:apps:<app>:status       app -> HomeHelper: the app's own status report
    homehelper:<node>:apps:<app>:heartbeat    app -> HomeHelper: "I am alive"
    homehelper:<node>:apps:<app>:pub:<topic>  app -> anyone: the app's custom events
    homehelper:<node>:stream                  stream of recent events (XADD MAXLEN ~)
    homehelper:<node>:health:<app>            hash: an app's current state and health
    homehelper:<node>:app-ids                 set: the apps that have a health hash

Payloads are JSON objects; events carry `kind` and `at` (Unix seconds). The node id
lets several HomeHelpers share one Redis. Stdlib only: apps import this freely.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..appid import ID_RE

PREFIX = "homehelper"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")  # node ids, kinds: no ':' and no glob chars
TOPIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,99}$")  # topics may nest with '/': sensors/kitchen
APP_RE = ID_RE  # the manifest's id rule, one definition

# Events that came in from Redis: the bridge does not echo them back on pub/sub.
INBOUND_KINDS = frozenset({"bus_message", "app_heartbeat", "app_status_reported"})
# Too frequent for history: they would push the meaningful events out of the ring.
NOT_HISTORY = frozenset({"bus_message", "app_heartbeat"})


def check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ValueError(f"{what} must be 1-100 letters, digits, '_', '.' or '-' (no ':'), got {value!r}")
    return value


def check_topic(topic: str) -> str:
    if not isinstance(topic, str) or not TOPIC_RE.fullmatch(topic):
        raise ValueError(f"topic must be 1-100 letters, digits, '_', '.', '-' or '/' (no ':'), got {topic!r}")
    return topic


def check_app(app_id: str) -> str:
    if not isinstance(app_id, str) or not APP_RE.fullmatch(app_id):
        raise ValueError(f"app id must be 1-40 lowercase letters, digits or '-', got {app_id!r}")
    return app_id


class Channels:
    """The names for one node."""

    __slots__ = ("_event_cache", "_heartbeat_pat", "_pub_pat", "_status_pat", "app_ids", "base", "node", "stream")

    def __init__(self, node: str = "main") -> None:
        self.node = check_name("node id", node)
        self.base = f"{PREFIX}:{node}"
        self.stream = f"{self.base}:stream"
        self.app_ids = f"{self.base}:app-ids"
        self._status_pat = f"{self.base}:apps:*:status"
        self._heartbeat_pat = f"{self.base}:apps:*:heartbeat"
        self._pub_pat = f"{self.base}:apps:*:pub:*"
        self._event_cache: dict[str, str] = {}

    # --- outbound ---
    def event(self, kind: str) -> str:
        name = self._event_cache.get(kind)
        if name is None:
            name = self._event_cache[kind] = f"{self.base}:events:{kind}"
        return name

    def app_events(self, app_id: str) -> str:
        return f"{self.base}:apps:{app_id}:events"

    def health(self, app_id: str) -> str:
        return f"{self.base}:health:{app_id}"

    def control(self, token: str) -> str:
        """A private channel the bridge uses to wake its own subscriber thread."""
        return f"{self.base}:bridge:{token}"

    # --- inbound (what apps publish) ---
    def status(self, app_id: str) -> str:
        return f"{self.base}:apps:{app_id}:status"

    def heartbeat(self, app_id: str) -> str:
        return f"{self.base}:apps:{app_id}:heartbeat"

    def topic(self, app_id: str, topic: str) -> str:
        return f"{self.base}:apps:{app_id}:pub:{topic}"

    def topic_pattern(self, topic: str, app_id: str | None = None) -> str:
        """Every app's (or one app's) publications on `topic`; '*' for all topics."""
        app = "*" if app_id is None else check_app(app_id)
        top = "*" if topic == "*" else check_topic(topic)
        return f"{self.base}:apps:{app}:pub:{top}"

    @property
    def inbound_patterns(self) -> tuple[str, str, str]:
        return (self._status_pat, self._heartbeat_pat, self._pub_pat)

    def parse_inbound(self, pattern: str, channel: str) -> tuple[str, str, str] | None:
        """(app_id, what, topic) for a channel an app published on, else None.

        A glob '*' also matches ':', so one channel can match two patterns (a
        topic named 'status'); only the pattern its canonical form names counts,
        so each publication enters the tree once.
        """
        head = f"{self.base}:apps:"
        if not channel.startswith(head):
            return None
        parts = channel[len(head):].split(":", 2)
        if len(parts) == 2 and parts[1] in ("status", "heartbeat"):
            app_id, what, topic = parts[0], parts[1], ""
            expected = self._status_pat if what == "status" else self._heartbeat_pat
        elif len(parts) == 3 and parts[1] == "pub":
            app_id, what, topic = parts[0], "pub", parts[2]
            expected = self._pub_pat
            if not TOPIC_RE.fullmatch(topic):
                return None
        else:
            return None
        if pattern != expected or not APP_RE.fullmatch(app_id):
            return None
        return app_id, what, topic


def stored_object(text: Any, limit: int | None = None) -> dict[str, Any] | None:
    """A JSON object HomeHelper stored under one of these names (a node's summary, a command's
    result), or None when it is missing, damaged, not an object, or over `limit` characters."""
    if not isinstance(text, str) or (limit is not None and len(text) > limit):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
