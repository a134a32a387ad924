"""Streamlit apps through HomeHelper, beside the same Streamlit run directly, in the same run.

    python benchmarks/streamlit_ui.py [--quick]

1. Open-to-ready: `POST /api/apps/<id>/open` on the real web app (auth, API, app actor,
   UI manager, port allocator, spawn, health poll) until it answers, beside a direct
   `streamlit run` cold start polled every 5 ms until its health check answers 200.
   Rounds alternate (direct, HomeHelper) so drift on a shared machine hits both.
   Target: HomeHelper <= 1.2x direct (median).
2. Websocket latency: a Streamlit heartbeat (BackMsg app_heartbeat -> ForwardMsg
   heartbeat_ack) round trip, to the app's own port and through the proxy, alternating
   message by message. Target: p50 overhead (proxied p50 - direct p50) <= 1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
import trio_websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import percentile
from homehelper.actors.streamlit_spec import streamlit_argv
from homehelper.messages import GetApp, StopApp
from tests.fixtures.streamlit import PASSWORD, make_app, tree_factory

REPO = Path(__file__).resolve().parents[1]
OPEN_TARGET = 1.2
WS_TARGET_MS = 1.0
HEARTBEAT = b"\x88\x01\x01"  # BackMsg{app_heartbeat: true}
APP_ID = "bench-ui"
DIRECT_PORT = 8598


async def direct_cold_start(root: Path) -> float:
    """`streamlit run` with HomeHelper's flags, until its health check answers 200."""
    prefix = "/apps/direct/ui"
    folder = make_app(root / "direct-apps", "direct")
    argv = streamlit_argv(sys.executable, folder / "app.py", DIRECT_PORT, prefix)
    url = f"http://127.0.0.1:{DIRECT_PORT}{prefix}/_stcore/health"
    async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
        t0 = time.perf_counter()
        proc = await trio.lowlevel.open_process(argv, cwd=str(folder), stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(url)).status_code == 200:
                        elapsed = time.perf_counter() - t0
                        break
                if proc.poll() is not None:
                    raise RuntimeError(f"direct streamlit exited with {proc.returncode}")
                await trio.sleep(0.005)
        finally:
            proc.terminate()
            await proc.wait()
    return elapsed


@contextlib.asynccontextmanager
async def ws(url: str, headers: list[tuple[bytes, bytes]]) -> AsyncIterator[Any]:
    u = urlsplit(url)
    stream = await trio.open_tcp_stream(u.hostname or "127.0.0.1", u.port or 80)
    async with stream, trio.open_nursery() as n:
        conn = await trio_websocket.wrap_client_stream(n, stream, u.netloc, u.path, subprotocols=["streamlit"],
                                                       extra_headers=headers)
        try:
            yield conn
        finally:
            await conn.aclose()
            n.cancel_scope.cancel()


async def heartbeat_rtt(conn: Any) -> float:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    t0 = time.perf_counter()
    await conn.send_message(HEARTBEAT)
    while True:
        msg = await conn.get_message()
        if ForwardMsg.FromString(msg).heartbeat_ack:
            return time.perf_counter() - t0


async def bench(rounds: int, messages: int, root: Path) -> dict[str, Any]:
    opens: dict[str, list[float]] = {"direct": [], "homehelper": []}
    rtt: dict[str, list[float]] = {"direct": [], "proxied": []}
    async with tree_factory(root)(apps=(APP_ID,), web=True) as tree:
        client = httpx.AsyncClient(base_url=tree.url, trust_env=False, timeout=60)
        r = await client.post("/login", json={"password": PASSWORD})
        client.headers["X-CSRF-Token"] = r.json()["csrf"]
        app = tree.apps.ref(APP_ID)
        await direct_cold_start(root)  # warm the page cache for both sides alike
        await client.post(f"/api/apps/{APP_ID}/open")
        await app.ask(StopApp(APP_ID), timeout=30)
        for _ in range(rounds):
            opens["direct"].append(await direct_cold_start(root))
            t0 = time.perf_counter()
            reply = await client.post(f"/api/apps/{APP_ID}/open")
            opens["homehelper"].append(time.perf_counter() - t0)
            if reply.status_code != 200:
                raise RuntimeError(f"open failed: {reply.status_code} {reply.text}")
            await app.ask(StopApp(APP_ID), timeout=30)
        await client.post(f"/api/apps/{APP_ID}/open")
        port = (await app.ask(GetApp(APP_ID)))["port"]
        # app pages have their own origin: the dashboard hands out a ticket for it, which becomes a cookie
        ticket_url = (await client.get(f"/apps/{APP_ID}/ui/")).headers["location"]
        apps_url = ticket_url.split("/apps/")[0]
        async with httpx.AsyncClient(trust_env=False) as appc:
            await appc.get(ticket_url)
            cookie = "; ".join(f"{k}={v}" for k, v in appc.cookies.items()).encode()
        path = f"/apps/{APP_ID}/ui/_stcore/stream"
        async with ws(f"ws://127.0.0.1:{port}{path}", []) as direct, \
                ws(apps_url.replace("http://", "ws://") + path,
                   [(b"origin", apps_url.encode()), (b"cookie", cookie)]) as proxied:
            for _ in range(min(50, messages)):  # warm-up, not counted
                await heartbeat_rtt(direct)
                await heartbeat_rtt(proxied)
            for _ in range(messages):
                rtt["direct"].append(await heartbeat_rtt(direct))
                rtt["proxied"].append(await heartbeat_rtt(proxied))
        await client.aclose()
    return {"opens": opens, "rtt": rtt}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds and messages")
    args = p.parse_args(argv)
    rounds, messages = (5, 500) if args.quick else (11, 3000)
    root = REPO / "state" / f"bench-streamlit-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    try:
        data = trio.run(bench, rounds, messages, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    direct_open = statistics.median(data["opens"]["direct"])
    hh_open = statistics.median(data["opens"]["homehelper"])
    open_ratio = hh_open / direct_open
    p50 = {k: percentile(v, 50) or 0.0 for k, v in data["rtt"].items()}
    p99 = {k: percentile(v, 99) or 0.0 for k, v in data["rtt"].items()}
    overhead_ms = (p50["proxied"] - p50["direct"]) * 1000
    print(f"streamlit_ui: open-to-ready ({rounds} rounds, median): HomeHelper {hh_open * 1000:7.1f} ms  "
          f"direct {direct_open * 1000:7.1f} ms  ratio {open_ratio:.2f}x (target <= {OPEN_TARGET}) "
          f"{'PASS' if open_ratio <= OPEN_TARGET else 'MISS'}")
    print(f"streamlit_ui: websocket round trip ({messages} messages): p50 proxied {p50['proxied'] * 1000:.3f} ms  "
          f"direct {p50['direct'] * 1000:.3f} ms  ratio {p50['proxied'] / p50['direct']:.2f}x  "
          f"p99 proxied {p99['proxied'] * 1000:.3f} ms  direct {p99['direct'] * 1000:.3f} ms")
    print(f"streamlit_ui: proxied websocket p50 overhead {overhead_ms:.3f} ms (target <= {WS_TARGET_MS}) "
          f"{'PASS' if overhead_ms <= WS_TARGET_MS else 'MISS'}")
    return {
        "rounds": rounds, "messages": messages,
        "open_homehelper_s": round(hh_open, 4), "open_direct_s": round(direct_open, 4),
        "open_ratio": round(open_ratio, 3),
        "ws_p50_proxied_ms": round(p50["proxied"] * 1000, 3), "ws_p50_direct_ms": round(p50["direct"] * 1000, 3),
        "ws_p99_proxied_ms": round(p99["proxied"] * 1000, 3), "ws_p99_direct_ms": round(p99["direct"] * 1000, 3),
        "ws_p50_ratio": round(p50["proxied"] / p50["direct"], 3),
        "ws_p50_overhead_ms": round(overhead_ms, 3),
        "targets": {"open_ratio": OPEN_TARGET, "ws_p50_overhead_ms": WS_TARGET_MS},
    }


if __name__ == "__main__":
    main()
