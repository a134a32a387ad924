"""The Redis side of the load: a message storm into the bridge and a reader of what comes out.

The storm publishes status reports for one pseudo-app on `homehelper:<node>:apps:<app>:status`
(plain redis-py in a thread, paced in 5 ms ticks, pipelined). The bridge turns each into an
AppStatusReported event, which goes up the tree and back out to the history stream; the reader
follows that stream (XREAD) and counts each sequence number once, so what went in and what
came out are compared one by one, with the round-trip latency of each.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any

import redis

STORM_APP = "bench-storm"


class Storm(threading.Thread):
    """Publishes `{"status": tag, "seq": n, "t": unix}` at `rate` per second (None: as fast as it can)."""

    def __init__(self, url: str, node: str, tag: str, rate: float | None, seconds: float, batch: int = 500) -> None:
        super().__init__(daemon=True)
        self.url, self.tag, self.rate, self.seconds, self.batch = url, tag, rate, seconds, batch
        self.channel = f"homehelper:{node}:apps:{STORM_APP}:status"
        self.sent = 0
        self.receivers: int | None = None  # what PUBLISH answered: 0 means nobody (no bridge) listens
        self.elapsed = 0.0
        self.error: str | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        client = redis.Redis.from_url(self.url)
        t0 = time.monotonic()
        try:
            while not self._halt.is_set():
                now = time.monotonic()
                if now - t0 >= self.seconds:
                    break
                due = self.batch if self.rate is None else min(self.batch, int(self.rate * (now - t0)) - self.sent)
                if due <= 0:
                    time.sleep(0.005)
                    continue
                pipe = client.pipeline(transaction=False)
                wall = time.time()
                for i in range(1, due + 1):
                    pipe.publish(self.channel, json.dumps({"status": self.tag, "seq": self.sent + i, "t": wall}))
                answers = pipe.execute()
                self.sent += due
                self.receivers = min(answers) if self.receivers is None else min(self.receivers, *answers)
        except redis.RedisError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.elapsed = time.monotonic() - t0
            client.close()


class StreamReader(threading.Thread):
    """Follows `homehelper:<node>:stream` and records each storm message that came back out."""

    def __init__(self, url: str, node: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.key = f"homehelper:{node}:stream"
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # monotonic times, for rates
        self.other = 0  # entries of other kinds (the tree's own events)
        self.error: str | None = None
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def stop(self) -> None:
        self._halt.set()
        self.join(3)

    def run(self) -> None:
        client = redis.Redis.from_url(self.url, decode_responses=True)
        last = "$"
        try:
            while not self._halt.is_set():
                resp: Any = client.xread({self.key: last}, count=2000, block=200)
                now, wall = time.monotonic(), time.time()
                for _, entries in resp or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        self._take(fields, now, wall)
        except redis.RedisError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    def _take(self, fields: dict[str, str], now: float, wall: float) -> None:
        if fields.get("kind") != "app_status_reported" or fields.get("app") != STORM_APP:
            self.other += 1
            return
        try:
            data = json.loads(fields["data"])
            tag = data["status"]
            detail = data.get("detail") or {}
            seq, sent_at = int(detail["seq"]), float(detail["t"])
        except (KeyError, TypeError, ValueError):
            self.other += 1
            return
        with self.lock:
            if seq not in self.seen[tag]:
                self.seen[tag].add(seq)
                self.latency[tag].append(max(0.0, wall - sent_at))
                self.arrivals[tag].append(now)

    def count(self, tag: str) -> int:
        with self.lock:
            return len(self.seen[tag])

    def wait_for(self, tag: str, n: int, timeout: float, settle: float = 1.0) -> int:
        """Wait until `n` of `tag` arrived, or nothing new came for `settle` s, or `timeout`."""
        deadline = time.monotonic() + timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            got = self.count(tag)
            if got >= n:
                return got
            if got != last_n:
                last_n, last_change = got, time.monotonic()
            elif time.monotonic() - last_change > settle:
                return got
            time.sleep(0.05)
        return self.count(tag)


def stream_added(url: str, node: str) -> int | None:
    """Entries ever added to the stream (Redis 7: counts past MAXLEN trimming); None if unknown."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        info = client.xinfo_stream(f"homehelper:{node}:stream")
        value = info.get("entries-added")
        return int(value) if value is not None else None
    except redis.RedisError:
        return None
    finally:
        client.close()
