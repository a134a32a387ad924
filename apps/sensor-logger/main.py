"""Sensor logger: a HomeHelper service app.

Every `interval` seconds (an option, set in the dashboard) it takes a simulated temperature and
humidity reading, appends it to readings.jsonl in its data folder (rotated past 1 MB) and publishes
it on the bus (topic `readings`). It serves /health, a page at /ui and /api/readings.
"""

import html
import json
import math
import os
import random
import time
from collections import deque

from homehelper import sdk

MAX_FILE_BYTES = 1024 * 1024  # readings.jsonl is rotated to readings.1.jsonl past this
DATA = sdk.data_dir()
recent: deque[dict] = deque(maxlen=120)
count = {"readings": 0, "started": time.time()}
app = sdk.AppServer(health=lambda: {"readings": count["readings"], "uptime": round(time.time() - count["started"])})


def read_sensor(t: float) -> dict:
    """A plausible room: a daily temperature wave plus noise."""
    day = 2 * math.pi * (t % 86400) / 86400
    return {"at": round(t, 3), "temperature_c": round(20 + 3 * math.sin(day) + random.gauss(0, 0.2), 2),
            "humidity_pct": round(50 + 10 * math.cos(day) + random.gauss(0, 1), 1)}


@app.every(sdk.options().get("interval", 5))
def sample() -> None:
    reading = read_sensor(time.time())
    path = DATA / "readings.jsonl"
    if path.exists() and path.stat().st_size > MAX_FILE_BYTES:
        os.replace(path, DATA / "readings.1.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(reading) + "\n")
    recent.append(reading)
    count["readings"] += 1
    sdk.publish("readings", reading)  # nothing without Redis; an outage is logged, never raised


@app.route("/api/readings")
def readings(request: sdk.Request) -> list:
    return list(recent)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="refresh" content="10"><style>body{{font-family:sans-serif;margin:2em}}
td,th{{padding:.2em .8em;text-align:right}}</style></head><body>
<h1>{title}</h1><p>{count} readings since start; last {shown} below.</p>
<table><tr><th>time</th><th>temperature (&deg;C)</th><th>humidity (%)</th></tr>{rows}</table>
</body></html>"""


@app.route("/ui")
@app.route("/")
def page(request: sdk.Request) -> str:
    shown = list(recent)[-20:]
    rows = "".join(f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(r['at']))}</td>"
                   f"<td>{r['temperature_c']}</td><td>{r['humidity_pct']}</td></tr>" for r in reversed(shown))
    return PAGE.format(title=html.escape(app.settings.app_id), count=count["readings"], shown=len(shown), rows=rows)


if __name__ == "__main__":
    app.run()
