"""What one event becomes in Redis, and what an app's publication becomes in the tree.

Both run in the bridge's worker threads (events are frozen, so reading them
there is safe), which keeps JSON work off the trio thread.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..messages import AppHeartbeat, AppStatusReported, BusMessage, Event
from .acl import redact
from .channels import INBOUND_KINDS, NOT_HISTORY, Channels

log = logging.getLogger(__name__)

MAX_INBOUND = 64 * 1024  # bytes; an app's message is a notification, not a payload store

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def dumps(data: Any) -> str:
    return _dumps(data)


def _field(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float)):
        return value
    return dumps(value)


# event kind -> event fields copied into the app's health hash (hash field <- event field)
_HEALTH: dict[str, dict[str, str]] = {
    "app_discovered": {"name": "name", "type": "type"},
    "app_state_changed": {"state": "state", "state_reason": "reason"},
    "app_started": {"port": "port"},
    "app_stopped": {"stopped_reason": "reason", "exit_status": "exit_status"},
    "app_health_changed": {"healthy": "healthy", "health_detail": "detail"},
    "app_crashed": {"restarts": "restarts", "exit_status": "exit_status", "crashed_at": "at"},
    "app_quarantined": {"restarts": "restarts", "quarantine_error": "error"},
    "app_status_reported": {"status": "status", "status_detail": "detail", "status_at": "at"},
    "app_heartbeat": {"heartbeat_at": "at"},
}


def health_fields(kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
    fields = _HEALTH.get(kind)
    if fields is None:
        return None
    out = {h: _field(data.get(e)) for h, e in fields.items()}
    out["updated_at"] = data.get("at", 0.0)
    return out


def write_event(pipe: Any, ch: Channels, event: Event, maxlen: int) -> None:
    """Queue on `pipe` every Redis command one event needs."""
    data = event.to_json()
    kind = data["kind"]
    if kind == "config_changed" and "redis_url" in data.get("changes", {}):
        # apps read these channels: HomeHelper's own Redis password must not reach them
        data = {**data, "changes": {**data["changes"], "redis_url": redact(data["changes"]["redis_url"])}}
    subject = event.subject
    text = _dumps(data)
    if kind not in INBOUND_KINDS:  # apps' own messages are already on Redis
        pipe.publish(ch.event(kind), text)
        if subject:
            pipe.publish(ch.app_events(subject), text)
    if kind not in NOT_HISTORY and maxlen > 0:
        pipe.xadd(ch.stream, {"kind": kind, "app": subject or "", "data": text}, maxlen=maxlen, approximate=True)
    if subject:
        if kind == "app_removed":
            pipe.delete(ch.health(subject))
            pipe.srem(ch.app_ids, subject)
            return
        fields = health_fields(kind, data)
        if fields is not None:
            pipe.hset(ch.health(subject), mapping=fields)
            if kind == "app_discovered":
                pipe.sadd(ch.app_ids, subject)


def write_snapshot(pipe: Any, ch: Channels, apps: list[dict[str, Any]], at: float) -> None:
    """Refill the health hashes from the apps' snapshots (after Redis lost them)."""
    for app in apps:
        app_id = app.get("id")
        if not app_id:
            continue
        # scalars only (lists such as manifest errors stay in the API); None clears a stale value
        fields = {k: _field(v) for k, v in app.items() if k != "id" and (v is None or isinstance(v, (str, int, float)))}
        fields["updated_at"] = at
        pipe.hset(ch.health(app_id), mapping=fields)
        pipe.sadd(ch.app_ids, app_id)


class Rejects:
    """Counts bad inbound messages; logs the first and then every 1000th (an app in a loop must not flood the log)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, channel: str, why: str) -> None:
        self.count += 1
        if self.count % 1000 == 1:
            log.warning("bus: ignored a message on %s: %s (%d ignored so far)", channel, why, self.count)


def decode_inbound(ch: Channels, pattern: str, channel: str, payload: str, reject: Rejects) -> Event | None:
    """An app's publication as an event, or None (reported through `reject`)."""
    where = ch.parse_inbound(pattern, channel)
    if where is None:
        return None  # a channel outside the scheme, or the duplicate match of a second pattern
    app_id, what, _topic = where
    if len(payload) > MAX_INBOUND:
        reject(channel, f"{len(payload)} bytes is over the {MAX_INBOUND} byte limit")
        return None
    try:
        data: Any = json.loads(payload)
    except ValueError:
        data = payload  # plain text is fine; keep it as it came
    if what == "pub":
        return BusMessage(channel, app_id, data)
    if what == "heartbeat":
        return AppHeartbeat(app_id, data)
    if isinstance(data, str):
        return AppStatusReported(app_id, data)
    if isinstance(data, dict) and isinstance(data.get("status"), str):
        detail = {k: v for k, v in data.items() if k != "status"}
        return AppStatusReported(app_id, data["status"], detail or None)
    reject(channel, "a status must be a string or a JSON object with a string 'status'")
    return None
