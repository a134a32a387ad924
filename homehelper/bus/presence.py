"""Fleet presence: each node's own summary in Redis, expiring by itself (blocking; run in worker threads).

Names, in channels.py's scheme (docs/fleet.md has the table):

    homehelper:<node>:fleet:alive      string, TTL: the node's summary while it lives (SET EX)
    homehelper:<node>:fleet:last       string: the same summary, kept: "offline since" and its last apps
    homehelper:_fleet:nodes            set: every node id that joined (no node id starts with '_')

Each node writes only its own keys: a node that dies stops refreshing and its `alive` key expires
(TTL), nobody writes on its behalf. A clean leave deletes all three at once.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from .channels import PREFIX, check_name, stored_object

NODES = f"{PREFIX}:_fleet:nodes"
MAX_SUMMARY = 64 * 1024  # bytes: a summary is small; a larger one was not written by a node
MAX_NODES = 500  # read at most this many: a damaged index must not make a refresh endless


def alive_key(node: str) -> str:
    return f"{PREFIX}:{check_name('node id', node)}:fleet:alive"


def last_key(node: str) -> str:
    return f"{PREFIX}:{check_name('node id', node)}:fleet:last"


def write(client: Any, node: str, summary: dict[str, Any], ttl: float) -> None:
    """Refresh this node's presence: one pipeline, three commands."""
    text = json.dumps(summary, separators=(",", ":"))
    pipe = client.pipeline(transaction=False)
    pipe.set(alive_key(node), text, px=max(1, math.ceil(ttl * 1000)))
    pipe.set(last_key(node), text)
    pipe.sadd(NODES, node)
    pipe.execute()


def leave(client: Any, node: str) -> None:
    """A clean leave: gone from the fleet at once."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(alive_key(node), last_key(node))
    pipe.srem(NODES, node)
    pipe.execute()


def _load(text: Any) -> dict[str, Any] | None:
    return stored_object(text, MAX_SUMMARY)


def read(client: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Every node that joined: {"node", "status": online|offline, "since", "summary"}, sorted by id.

    Online while its `alive` key lives; offline since the time of its last summary. Names in the
    index that are not node ids, or summaries that are not JSON objects, are skipped (hostile input).
    """
    now = time.time() if now is None else now
    members = sorted(m for m in client.smembers(NODES) if isinstance(m, str))
    nodes = []
    for m in members:
        try:
            nodes.append(check_name("node id", m))
        except ValueError:
            continue
        if len(nodes) >= MAX_NODES:
            break
    if not nodes:
        return []
    pipe = client.pipeline(transaction=False)
    for node in nodes:
        pipe.get(alive_key(node))
        pipe.get(last_key(node))
    values = pipe.execute()
    out = []
    for i, node in enumerate(nodes):
        alive, last = _load(values[2 * i]), _load(values[2 * i + 1])
        summary = alive or last
        if summary is None:
            continue
        at = summary.get("at")
        at = float(at) if isinstance(at, (int, float)) and math.isfinite(at) else None
        if alive is not None:
            out.append({"node": node, "status": "online", "since": summary.get("started"), "seen": at,
                        "summary": summary})
        else:
            out.append({"node": node, "status": "offline", "since": at, "seen": at, "summary": summary})
    return out
