"""The blocking half of the bridge, run in worker threads (redis-py is sync): connecting, and the
publisher, which sends a whole batch of events as one pipeline. The inbound side is trio's own
(`_inbound.py`): it only borrows redis-py to connect.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..messages import Event
from ._codec import write_event, write_snapshot
from .channels import Channels

log = logging.getLogger(__name__)

# What a lost or refused connection looks like from redis-py.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)


def _keepalive(url: str) -> dict[str, bool]:
    """TCP keepalive notices a peer that vanished; a Unix socket has no such option (redis-py refuses it)."""
    return {} if url.lower().startswith("unix:") else {"socket_keepalive": True}


def connect(url: str, *, socket_timeout: float | None = 5.0) -> redis.Redis:
    """A client that fails fast: the bridge does its own reconnecting, with backoff."""
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name="homehelper-bridge", **_keepalive(url),
    )
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


class Publisher:
    """Writes batches of events; used from one worker thread at a time."""

    def __init__(self, client: redis.Redis, ch: Channels, history: int) -> None:
        self.client = client
        self.ch = ch
        self.history = history
        self.failed = 0  # commands Redis refused (not connection losses): logged, not retried

    def send(self, events: list[Event]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            write_event(pipe, self.ch, event, self.history)
        self._execute(pipe)

    def send_snapshot(self, apps: list[dict[str, Any]], at: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        write_snapshot(pipe, self.ch, apps, at)
        self._execute(pipe)

    def _execute(self, pipe: Any) -> None:
        results = pipe.execute(raise_on_error=False)
        errors = [r for r in results if isinstance(r, Exception)]
        for err in errors:
            if isinstance(err, CONNECTION_ERRORS):
                raise err
        if errors:
            # e.g. a key of ours that someone turned into another type: retrying would fail again
            self.failed += len(errors)
            log.warning("bus: Redis refused %d of %d commands: %s", len(errors), len(results), errors[0])

    def history_range(self, count: int, app_id: str | None, kind: str | None) -> list[dict[str, Any]]:
        """The newest `count` stream entries (matching the filters), oldest first."""
        out: list[dict[str, Any]] = []
        upper = "+"
        chunk = max(count, 100) if (app_id or kind) else count
        while len(out) < count:
            entries: list[tuple[str, dict[str, str]]] = self.client.xrevrange(  # type: ignore[assignment]
                self.ch.stream, max=upper, count=chunk)
            for entry_id, fields in entries:
                if (app_id and fields.get("app") != app_id) or (kind and fields.get("kind") != kind):
                    continue
                try:
                    data = json.loads(fields["data"])
                except (KeyError, ValueError):
                    continue  # not written by a bridge
                data["id"] = entry_id
                out.append(data)
                if len(out) >= count:
                    break
            if len(entries) < chunk:
                break
            upper = "(" + entries[-1][0]
        out.reverse()
        return out
