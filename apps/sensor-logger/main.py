"""Sensor logger: a HomeHelper service app.

Every SENSOR_INTERVAL seconds it takes a (simulated) temperature and humidity
reading, appends it to $HH_DATA_DIR/readings.jsonl (capped, rotated once) and
publishes it on the bus (topic `readings`) when HomeHelper gives it a Redis
URL. It serves /health for HomeHelper, /ui for people and /api/readings.
Settings come from the environment HomeHelper sets: HH_APP_ID, HH_PORT,
HH_HOST, HH_DATA_DIR, HH_LOG_DIR, HH_REDIS_URL, HH_NODE_ID.
"""

from __future__ import annotations

import html
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APP_ID = os.environ.get("HH_APP_ID", "sensor-logger")
HOST = os.environ.get("HH_HOST", "127.0.0.1")
PORT = int(os.environ.get("HH_PORT", "8100"))
DATA_DIR = Path(os.environ.get("HH_DATA_DIR", "data"))
REDIS_URL = os.environ.get("HH_REDIS_URL")
INTERVAL = float(os.environ.get("SENSOR_INTERVAL", "5"))
MAX_FILE_BYTES = 1024 * 1024  # readings.jsonl is rotated to readings.1.jsonl past this

recent: deque[dict] = deque(maxlen=120)
state = {"started": time.time(), "readings": 0, "published": 0, "bus_error": ""}
lock = threading.Lock()


def make_bus():
    """HomeHelper's SDK when it is importable and a bus is configured, else None."""
    if not REDIS_URL:
        return None
    try:
        from homehelper import sdk  # the app venv sees HomeHelper's packages
    except ImportError as exc:
        state["bus_error"] = f"no homehelper.sdk: {exc}"
        return None
    try:
        return sdk.Bus()
    except Exception as exc:  # a bus that is down must not stop the logging
        state["bus_error"] = repr(exc)
        return None


def read_sensor(t: float) -> dict:
    """A plausible room: a daily temperature wave plus noise."""
    day = 2 * math.pi * (t % 86400) / 86400
    return {
        "at": round(t, 3),
        "temperature_c": round(20 + 3 * math.sin(day) + random.gauss(0, 0.2), 2),
        "humidity_pct": round(50 + 10 * math.cos(day) + random.gauss(0, 1), 1),
    }


def append_reading(reading: dict) -> None:
    path = DATA_DIR / "readings.jsonl"
    if path.exists() and path.stat().st_size > MAX_FILE_BYTES:
        os.replace(path, DATA_DIR / "readings.1.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(reading) + "\n")


def sampler(stop: threading.Event) -> None:
    bus = make_bus()
    while not stop.is_set():
        reading = read_sensor(time.time())
        append_reading(reading)
        with lock:
            recent.append(reading)
            state["readings"] += 1
        if bus is not None:
            try:
                bus.publish("readings", reading)
                state["published"] += 1
            except Exception as exc:
                state["bus_error"] = repr(exc)
        stop.wait(INTERVAL)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="refresh" content="10"><style>body{{font-family:sans-serif;margin:2em}}
td,th{{padding:.2em .8em;text-align:right}}</style></head><body>
<h1>{title}</h1><p>{count} readings since start; last {shown} below.</p>
<table><tr><th>time</th><th>temperature (&deg;C)</th><th>humidity (%)</th></tr>{rows}</table>
</body></html>"""


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with lock:
            readings = list(recent)
            count = state["readings"]
        if path == "/health":
            body = {"status": "ok", "app": APP_ID, "readings": count, "uptime": round(time.time() - state["started"])}
            self._send(200, json.dumps(body).encode(), "application/json")
        elif path == "/api/readings":
            self._send(200, json.dumps(readings).encode(), "application/json")
        elif path in ("/ui", "/ui/", "/"):
            rows = "".join(
                f"<tr><td>{html.escape(time.strftime('%H:%M:%S', time.localtime(r['at'])))}</td>"
                f"<td>{r['temperature_c']}</td><td>{r['humidity_pct']}</td></tr>" for r in reversed(readings[-20:]))
            page = PAGE.format(title=html.escape(APP_ID), count=count, shown=min(20, len(readings)), rows=rows)
            self._send(200, page.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # health polls every 30 s would fill the log with nothing


def main() -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    threading.Thread(target=sampler, args=(stop,), daemon=True, name="sampler").start()
    print(f"{APP_ID}: serving on http://{HOST}:{PORT}, data in {DATA_DIR}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
    print(f"{APP_ID}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
