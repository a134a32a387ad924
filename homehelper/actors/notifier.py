"""The notifier: crashes, quarantines, failed installs, machine alerts and damaged state files reach
the user outside the dashboard, through apprise (ntfy, Telegram, email, Gotify, webhooks...).

It follows the broadcast with a bounded, filtered subscription (only the kinds in
notify_rules.KINDS are queued), turns each event into a message, deduplicates and rate-limits
them (notify_rules.Throttle) and sends them one at a time in a worker thread: apprise is
blocking, and a slow or dead receiver must never hold up the trio thread. A failed send is
logged and published as NotificationFailed; the actor carries on. With nothing pending it
sleeps on no timer. `notify.*` is read at start (a restart applies a change).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from ..config import NotifyConfig
from ..errors import BadRequest, Conflict, TooManyRequests
from ..messages import NotificationFailed, SendTestNotification
from ..notify_rules import Note, Throttle, clean, describe, split_url, targets, wanted
from . import Actor, Broadcast, Subscription

log = logging.getLogger(__name__)

QUEUE = 64  # notes waiting for the sender: past it they count as held back
SUB_RING = 1024  # events waiting to be looked at: a burst past it loses its oldest (counted)


def private(url: str) -> str:
    """A URL fit for logs and events: apprise's privacy form (tokens and passwords masked), else its scheme."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url)
        if plugin:
            return str(plugin.url(privacy=True)).split("?", 1)[0]  # its options are noise here
    except Exception:  # any failure to parse leaves the scheme alone
        pass
    return url.split("://", 1)[0] + "://..."


class Sender:
    """Apprise, one instance per URL (each URL's own success or error); blocking: call it in a thread."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._apprise: dict[int, Any] = {}
        self.names = [u.split("://", 1)[0] + "://..." for u in urls]  # until named(): apprise loads slowly
        self.named = False

    def name_all(self) -> None:
        """Each URL as logs and events show it (blocking: loads apprise's plugins)."""
        self.names = [private(u) for u in self.urls]
        self.named = True

    def send(self, index: int, note: Note) -> str | None:
        """None when the URL took the message, else what went wrong."""
        import apprise

        obj = self._apprise.get(index)
        if obj is None:
            obj = apprise.Apprise()
            if not obj.add(self.urls[index]):
                return "not a URL apprise knows (check its scheme and form)"
            self._apprise[index] = obj
        with apprise.LogCapture(level=logging.WARNING) as output:
            ok = obj.notify(body=note.body, title=note.title, notify_type=note.severity,
                            body_format=apprise.NotifyFormat.TEXT)
            said = output.getvalue() if hasattr(output, "getvalue") else ""
        if ok:
            return None
        lines = [line.split(" - ", 2)[-1] for line in said.strip().splitlines() if line.strip()]
        return clean(" ".join(lines[-2:]) or "the service refused the message", 300)


class Notifier(Actor):
    """Give its ChildSpec the one instance (`lambda: notifier`): a restart keeps the dedup windows."""

    name = "notifier"

    def __init__(self, config: NotifyConfig, broadcast: Broadcast, emit: Callable[[object], None] | None = None) -> None:
        self.config = config
        self.broadcast = broadcast
        self.emit = emit or broadcast.publish
        self.entries = [split_url(u) for u in config.urls]
        self.routes = dict(config.routes)
        self.sender = Sender([url for _, url in self.entries])
        self.throttle = Throttle(config.dedup_window, config.rate_limit, config.rate_window)
        self.limiter = trio.CapacityLimiter(1)  # one send at a time: one worker thread at most
        self.sent = 0
        self.failed = 0
        self._wake = trio.Event()
        # Following from construction, not from on_start, so what happens while the tree starts
        # (a damaged state file found at start) is not missed. Without URLs nothing is followed.
        self.sub: Subscription | None = self._subscribe() if self.entries else None

    def _subscribe(self) -> Subscription:
        return self.broadcast.subscribe(SUB_RING, accept=lambda e: wanted(e, self.config.min_level))

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.sub is None:
            log.info("notifications: no notify.urls configured, nothing is sent")
            return
        if self.sub.closed:  # restarted (the same instance): follow again; dedup windows are kept
            self.sub = self._subscribe()
        if not self.sender.named:
            await trio.to_thread.run_sync(self.sender.name_all, limiter=self.limiter)
        self._queue, queue = trio.open_memory_channel[Note](QUEUE)
        nursery.start_soon(self._follow, self.sub)
        nursery.start_soon(self._flush)
        nursery.start_soon(self._send_loop, queue)
        log.info("notifications: %d URL(s): %s", len(self.entries), ", ".join(self.sender.names))

    async def on_stop(self) -> None:
        if self.sub is not None:
            self.sub.close()

    async def handle(self, msg: Any) -> Any:
        match msg:
            case SendTestNotification():
                return await self.send_test()
            case _:
                raise BadRequest(f"notifier: unknown message {type(msg).__name__}")

    # --- events in ------------------------------------------------------------
    async def _follow(self, sub: Subscription) -> None:
        with sub:
            while True:
                try:
                    batch = await sub.receive_batch()
                except trio.EndOfChannel:  # on_stop closed it: the actor is stopping, not broken
                    return
                now = trio.current_time()
                for event in batch:
                    try:
                        note = describe(event)
                    except Exception:  # a strange event is logged, never a crash
                        log.exception("notifications: could not describe %r", event)
                        continue
                    self._queue_notes(self.throttle.offer(note, now))
                self._wake.set()  # something may now be pending: the flusher looks again

    def _queue_notes(self, notes: list[Note]) -> None:
        for note in notes:
            try:
                self._queue.send_nowait(note)
            except trio.WouldBlock:  # the receivers are slower than the events: counted, said later
                self.throttle.overflow[note.kind] = self.throttle.overflow.get(note.kind, 0) + 1

    async def _flush(self) -> None:
        """Send the summaries when their windows end; sleeps without a deadline while nothing is pending."""
        while True:
            due = self.throttle.next_due()
            with trio.move_on_at(due if due is not None else math.inf):
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            self._queue_notes(self.throttle.due(trio.current_time()))

    # --- messages out -----------------------------------------------------------
    async def _send_loop(self, queue: trio.MemoryReceiveChannel[Note]) -> None:
        async for note in queue:
            await self.deliver(note, targets(note.kind, self.entries, self.routes))

    async def deliver(self, note: Note, indexes: list[int]) -> list[dict[str, Any]]:
        """Send `note` to each URL in turn; a failure is logged and published, never raised."""
        results = []
        for i in indexes:
            error: str | None
            try:  # apprise's own connect and read timeouts bound the wait (a few seconds per URL)
                error = await trio.to_thread.run_sync(self.sender.send, i, note, limiter=self.limiter,
                                                      abandon_on_cancel=True)
            except Exception as exc:  # apprise or its plugin raising
                error = clean(f"{type(exc).__name__}: {exc}", 300)
            url = self.sender.names[i]
            if error is None:
                self.sent += 1
            else:
                self.failed += 1
                log.warning("notifications: %r did not reach %s: %s", note.title, url, error)
                self.emit(NotificationFailed(url, error, note.title))
            results.append({"url": url, "ok": error is None, "error": error})
        return results

    async def send_test(self) -> dict[str, Any]:
        if not self.entries:
            raise Conflict("no notification URLs are configured: set notify.urls in config.json and restart")
        note = Note("test", "test", "HomeHelper test notification",
                    "This is a test from HomeHelper: notifications reach you here.", "info")
        if not self.throttle.rate(note, trio.current_time()):  # a test counts against the rate limit
            raise TooManyRequests(f"the rate limit ({self.config.rate_limit} notifications per "
                                  f"{self.config.rate_window:g} s) is reached; try again later")
        results = await self.deliver(note, list(range(len(self.entries))))
        return {"sent": sum(r["ok"] for r in results), "results": results}
