"""Dashboard clients: websockets that click refresh, like people with the page open."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

REPLY_TIMEOUT = 10.0


class ClickStats:
    def __init__(self) -> None:
        self.latency: list[float] = []  # seconds, per refresh that got its reply
        self.errors: dict[str, int] = {}
        self.connected = 0

    def error(self, what: str) -> None:
        what = what[:120]
        self.errors[what] = self.errors.get(what, 0) + 1


async def click_refresh(base_url: str, stats: ClickStats, seconds: float, interval: float, what: str = "all") -> None:
    """One client: connect to /ws, then every ~`interval` s send a refresh and wait for its reply."""
    ws_url = base_url.replace("http://", "ws://") + "/ws"
    origin = base_url.encode()  # loopback without login needs our own Origin (the server's CSRF rule)
    deadline = trio.current_time() + seconds
    try:
        async with open_websocket_url(ws_url, extra_headers=[(b"Origin", origin)]) as ws:
            stats.connected += 1
            await trio.sleep(random.random() * interval)  # people do not click in step
            n = 0
            while trio.current_time() < deadline:
                n += 1
                t0 = time.perf_counter()
                await ws.send_message(json.dumps({"type": "refresh", "id": n, "what": what}))
                reply: dict[str, Any] | None = None
                with trio.move_on_after(REPLY_TIMEOUT):
                    while True:
                        msg = json.loads(await ws.get_message())
                        if msg.get("type") == "ping":
                            await ws.send_message(json.dumps({"type": "pong"}))
                        elif msg.get("id") == n and msg.get("type") in ("reply", "error"):
                            reply = msg
                            break
                took = time.perf_counter() - t0
                if reply is None:
                    stats.error(f"no reply within {REPLY_TIMEOUT:g} s")
                elif reply["type"] == "error":
                    stats.error(f"{reply.get('status')} {reply.get('message')}")
                else:
                    stats.latency.append(took)
                await trio.sleep(max(0.0, interval * random.uniform(0.8, 1.2) - took))
    except HandshakeError as exc:
        stats.error(f"websocket handshake refused: {exc}")
    except ConnectionClosed as exc:
        stats.error(f"websocket closed: {exc.reason}")
    except OSError as exc:
        stats.error(f"cannot connect: {exc}")


async def snapshot(base_url: str) -> dict[str, Any] | None:
    """One "refresh all" over /ws, as the dashboard does on load: the whole snapshot, or None."""
    ws_url = base_url.replace("http://", "ws://") + "/ws"
    try:
        async with open_websocket_url(ws_url, extra_headers=[(b"Origin", base_url.encode())]) as ws:
            await ws.send_message(json.dumps({"type": "refresh", "id": 1, "what": "all"}))
            with trio.move_on_after(REPLY_TIMEOUT):
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg.get("id") == 1:
                        data = msg.get("data")
                        return data if msg.get("type") == "reply" and isinstance(data, dict) else None
    except (HandshakeError, ConnectionClosed, OSError):
        return None
    return None
