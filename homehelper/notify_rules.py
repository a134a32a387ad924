"""What reaches the user outside the dashboard, and how often: which events notify, their text,
routing by tag, deduplication and the global rate limit.

Pure logic with the time passed in (the notifier passes trio's clock), so a crash loop's fifty
events become one message and one summary without a real ten minutes going by.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

# The event kinds that notify (by kind, so an event added later under one of these names, such as
# a backup's, notifies without touching this module). The value says what it is about, for routes.
KINDS: dict[str, str] = {
    "app_crashed": "an app crashed (it is restarted)",
    "app_quarantined": "an app crashed too often and is held stopped",
    "app_config_error": "an app cannot start at all",
    "app_install_failed": "an app's install failed",
    "job_failed": "a job's run failed: a non-zero exit, a signal or its timeout",
    "child_crashed": "a part of HomeHelper itself crashed (it is restarted)",
    "child_quarantined": "a part of HomeHelper crashed too often and is held stopped",
    "alert_raised": "a machine alert: temperature, under-voltage, disk, memory, CPU",
    "state_file_damaged": "a state file was damaged and rebuilt",
    "backup_failed": "a backup failed",
    "app_update_failed": "an app's update failed: fetching it, or its health check (then rolled back)",
}
LEVELS = ("careful", "warning", "critical")
TAG_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_TEXT = 600  # an app's error text is the app's: bounded, control characters out
MAX_KEYS = 512  # dedup entries kept at once (one per app and kind at most, in practice)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def split_url(entry: str) -> tuple[tuple[str, ...], str]:
    """"phone,family=ntfy://host/topic" -> (("phone", "family"), "ntfy://host/topic"); no prefix, no tags.

    Tags cannot hold ':' or '/', so an '=' inside the URL's query is never read as a prefix.
    """
    head, sep, rest = entry.partition("=")
    if sep and "://" in rest and "/" not in head and ":" not in head:
        tags = tuple(t.strip() for t in head.split(",") if t.strip())
        return tags, rest.strip()
    return (), entry.strip()


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    text = _CONTROL.sub(" ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@attrs.frozen
class Note:
    """One notification to send: `kind` routes it, `key` deduplicates it."""

    kind: str
    key: str
    title: str
    body: str
    severity: str = "warning"  # info | warning | failure (apprise's notify types)


def subject_of(event: Any) -> str:
    for name in ("app_id", "child", "metric", "path"):
        value = getattr(event, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def describe(event: Any) -> Note:
    """The message for an event of one of KINDS."""
    kind = event.kind
    who = clean(subject_of(event), 120)
    err = clean(getattr(event, "error", "") or "")
    match kind:
        case "app_crashed":
            status = getattr(event, "exit_status", None)
            retry = getattr(event, "next_try_in", None)
            body = f"App {who} crashed" + (f" (exit status {status})" if status is not None else "") + "."
            body += f" Restart in {retry:.0f} s." if isinstance(retry, (int, float)) else ""
            return Note(kind, f"{kind}:{who}", f"{who} crashed", body, "failure")
        case "app_quarantined" | "child_quarantined":
            what = "App" if kind == "app_quarantined" else "HomeHelper's part"
            retry = getattr(event, "retry_in", None)
            body = (f"{what} {who} crashed {getattr(event, 'restarts', '?')} times and is held stopped"
                    + (f"; next try in {retry:.0f} s." if isinstance(retry, (int, float)) else ".")
                    + (f" Last error: {err}" if err else ""))
            return Note(kind, f"{kind}:{who}", f"{who} quarantined", body, "failure")
        case "app_config_error":
            return Note(kind, f"{kind}:{who}", f"{who} cannot start", f"App {who} cannot start: {err}", "failure")
        case "app_install_failed":
            return Note(kind, f"{kind}:{who}", f"{who}: install failed", f"Installing app {who} failed: {err}",
                        "failure")
        case "job_failed":
            how = clean(getattr(event, "result", ""), 40)
            status = getattr(event, "exit_status", None)
            body = f"Job {who} failed ({how}" + (f", exit status {status}" if status is not None else "") + ")"
            return Note(kind, f"{kind}:{who}", f"{who}: job failed", body + (f": {err}" if err else "."), "failure")
        case "child_crashed":
            return Note(kind, f"{kind}:{who}", f"HomeHelper: {who} crashed",
                        f"HomeHelper's part {who} crashed and is restarted: {err}", "failure")
        case "alert_raised":
            level = clean(getattr(event, "level", ""), 20)
            message = clean(getattr(event, "message", "") or f"{who} at {getattr(event, 'value', '?')}")
            return Note(kind, f"{kind}:{who}", f"{level} alert: {who}", message,
                        "failure" if level == "critical" else "warning")
        case "state_file_damaged":
            return Note(kind, f"{kind}:{who}", "A state file was damaged",
                        f"{who} was damaged: {clean(getattr(event, 'what', ''))}", "warning")
        case _:  # backup_failed and any later kind: its own words
            detail = err or clean(getattr(event, "message", "") or getattr(event, "what", "") or "")
            title = clean(kind.replace("_", " "), 80)
            return Note(kind, f"{kind}:{who}", title, f"{title}{f' ({who})' if who else ''}: {detail}".rstrip(": "),
                        "failure")


def wanted(event: Any, min_level: str) -> bool:
    """Whether an event notifies at all (the actor's subscription filter)."""
    kind = getattr(event, "kind", None)
    if kind not in KINDS:
        return False
    if kind == "alert_raised":
        level = getattr(event, "level", None)
        return level in LEVELS and LEVELS.index(level) >= LEVELS.index(min_level)
    return True


def targets(kind: str, entries: Iterable[tuple[tuple[str, ...], str]],
            routes: dict[str, tuple[str, ...]]) -> list[int]:
    """Indexes of the URLs a kind goes to: every URL when the kind has no route, else those tagged so."""
    entries = list(entries)
    if kind not in routes:
        return list(range(len(entries)))
    allowed = set(routes[kind])
    return [i for i, (tags, _) in enumerate(entries) if allowed & set(tags)]


def _window(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


@attrs.define
class _Seen:
    until: float  # end of the dedup window opened by the last message sent for this key
    suppressed: int = 0
    last: Note | None = None


class Throttle:
    """Deduplication per (kind, subject) and a global rate limit; `offer` and `due` return what to send now.

    The first event of a key is sent and opens a window of `dedup` seconds; its repeats inside it are
    counted, and at the window's end one summary says how many ("crashed 37 more times in 10 min").
    Past `limit` messages per `period` seconds, messages are counted instead, and one summary goes
    when the window frees a slot. Nothing is pending, nothing is due: the caller sleeps on no timer.
    """

    def __init__(self, dedup: float = 600.0, limit: int = 10, period: float = 600.0) -> None:
        self.dedup, self.limit, self.period = dedup, limit, period
        self.seen: dict[str, _Seen] = {}
        self.sent: deque[float] = deque()  # times of the messages sent within `period`
        self.overflow: dict[str, int] = {}  # kind -> messages held back by the rate limit

    def offer(self, note: Note, now: float) -> list[Note]:
        seen = self.seen.get(note.key)
        if seen is not None and now < seen.until:
            seen.suppressed += 1
            seen.last = note
            return []
        if len(self.seen) >= MAX_KEYS:
            self._forget(now)
        self.seen[note.key] = _Seen(now + self.dedup)
        return self.rate(note, now)

    def _forget(self, now: float) -> None:
        for key in [k for k, s in self.seen.items() if now >= s.until and not s.suppressed]:
            del self.seen[key]
        while len(self.seen) >= MAX_KEYS:  # still full: the oldest window goes (its count is lost)
            del self.seen[min(self.seen, key=lambda k: self.seen[k].until)]

    def rate(self, note: Note, now: float) -> list[Note]:
        """[note] when the rate limit lets it go now (it takes a slot), else [] (counted as held back)."""
        while self.sent and now - self.sent[0] >= self.period:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            self.overflow[note.kind] = self.overflow.get(note.kind, 0) + 1
            return []
        self.sent.append(now)
        return [note]

    def next_due(self) -> float | None:
        """When `due` has something to send; None when nothing is pending (no timer needed)."""
        times = [s.until for s in self.seen.values() if s.suppressed]
        if self.overflow and self.sent:
            times.append(self.sent[0] + self.period)
        elif self.overflow:
            times.append(0.0)
        return min(times) if times else None

    def due(self, now: float) -> list[Note]:
        out: list[Note] = []
        for key, seen in list(self.seen.items()):
            if now < seen.until:
                continue
            if seen.suppressed and seen.last is not None:
                last = seen.last
                summary = Note(last.kind, key, f"{last.title} (again)",
                               f"{last.body}\nThis happened {seen.suppressed} more time"
                               f"{'s' if seen.suppressed > 1 else ''} in the last {_window(self.dedup)}.",
                               last.severity)
                self.seen[key] = _Seen(now + self.dedup)  # a loop that goes on: one summary per window
                out.extend(self.rate(summary, now))
            else:
                del self.seen[key]
        while self.sent and now - self.sent[0] >= self.period:
            self.sent.popleft()
        if self.overflow and len(self.sent) < self.limit:
            total = sum(self.overflow.values())
            parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(self.overflow.items()))
            self.overflow.clear()
            self.sent.append(now)
            out.append(Note("summary", "summary", f"{total} notifications held back",
                            f"{total} more notifications were held back by the rate limit ({self.limit} per "
                            f"{_window(self.period)}): {parts}. See the dashboard's event log.", "warning"))
        return out
