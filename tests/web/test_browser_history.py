"""History charts in a real Chromium, after a restart of a real server: the system panel's charts,
an app card's sparkline, the larger chart with its time range, and the Redis panel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from homehelper.config import load_config
from homehelper.messages import GetHistoryState, GetMetricHistory, SystemSampled
from homehelper.serve import Runtime, serve
from tests.fixtures.browser import screenshot, until
from tests.fixtures.redis import free_port

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def app_sample(at: float, cpu: float) -> dict[str, Any]:
    """A sensor sample of the machine with the app `lamp` measured (the shape SensorActor publishes)."""
    return {"at": at, "cpu": {"percent": 5.0, "load": [0.2, 0, 0]}, "memory": {"percent": 30.0}, "swap": None,
            "disks": [{"mount": "/", "percent": 40.0}], "temperature": None,
            "net": {"recv_per_s": 0.0, "sent_per_s": 0.0},
            "apps": {"lamp": {"source": "process", "cpu_percent": cpu, "memory": 30 * 1048576}}}


def config(root: Path, redis_url: str, interval: float) -> Any:
    return load_config(root, environ={}, overrides={
        "port": free_port(), "auth": {"loopback_without_login": True}, "redis_url": redis_url,
        "monitor": {"interval": interval}, "history": {"step": 1, "flush_every": 1}})


async def machine_points(rt: Runtime) -> list[dict[str, Any]]:
    reply = await rt.refs["history"].ask(GetMetricHistory("machine", "1h", 360))
    return list(reply["points"])


async def test_charts_survive_a_restart_and_open_larger_with_a_range(browser, state_root: Path, redis) -> None:
    app = state_root / "apps" / "lamp"
    app.mkdir(parents=True)
    (app / "homehelper.json").write_text(json.dumps({"id": "lamp", "name": "Lamp", "type": "service"}))
    (app / "main.py").write_text("import time\ntime.sleep(3600)\n")
    # 1. A server samples (every 0.2 s here) and writes its history; then it stops cleanly.
    async with trio.open_nursery() as nursery:
        rt: Runtime = await nursery.start(serve, config(state_root, redis.url, 0.2))
        now = time.time()
        with rt.broadcast.subscribe(accept=lambda e: isinstance(e, SystemSampled)) as sampled:
            for i in range(6):  # the lamp app's figures over six seconds
                rt.broadcast.publish(SystemSampled(app_sample(now + 1 + i, float(i))))
            with trio.fail_after(20):
                while len(await machine_points(rt)) < 5 or (
                        await rt.refs["history"].ask(GetHistoryState()))["flushes"] < 1:
                    await sampled.receive()  # the sensors' next real sample (every 0.2 s)
        nursery.cancel_scope.cancel()
    # 2. Started again, sampling nothing new: whatever the charts show came from the file.
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config(state_root, redis.url, 0))
        points = await machine_points(rt)
        assert len(points) >= 5
        async with httpx.AsyncClient(base_url=rt.url) as c:
            r = await c.get("/api/history", params={"series": "app:lamp", "range": "1h"})
            assert r.status_code == 200 and [p["cpu"] for p in r.json()["points"]][-6:] == [0, 1, 2, 3, 4, 5]
            assert (await c.get("/api/history", params={"series": "app:x y"})).status_code == 400
            sys_hist = (await c.get("/api/system")).json()["history"]
            assert len(sys_hist) >= 5  # the system panel's charts read the same history

        def look(b: Any) -> None:
            ctx = b.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.set_default_timeout(10_000)
            try:
                page.goto(rt.url + "/")
                page.wait_for_selector('.card[data-app="lamp"] .spark polyline')
                spark = page.locator('.card[data-app="lamp"] .spark polyline').get_attribute("points")
                assert len(spark.split()) == 6
                charts = page.locator("#charts .chart")
                assert charts.count() >= 3
                assert len(charts.first.locator("polyline").get_attribute("points").split()) >= 5
                # the Redis panel: figures read now, from the real redis-server
                page.wait_for_selector("#redis-figures .metric")
                assert not page.locator("#redis-panel").is_hidden()
                assert "Ops/s" in page.inner_text("#redis-figures")
                # a click opens the larger chart; the range buttons change it
                charts.first.click()
                page.wait_for_selector("#history-dialog[open] #history-chart polyline")
                assert len(page.locator("#history-chart polyline").get_attribute("points").split()) >= 5
                assert "points of 1 s" in page.inner_text("#history-note")
                screenshot(page, "history-dialog")
                box = page.locator("#history-dialog").bounding_box()
                assert box is not None and box["height"] < 500, box  # as tall as its chart, not the screen
                page.click('#history-dialog [data-range="30d"]')
                until(page, lambda: "points of 600 s" in page.inner_text("#history-note")
                      or "not enough history" in page.inner_text("#history-note"))
                page.click('#history-dialog [data-range="1h"]')
                until(page, lambda: "points of 1 s" in page.inner_text("#history-note"))
                page.click("#history-dialog .close")
                page.click('.card[data-app="lamp"] .spark')
                page.wait_for_selector("#history-dialog[open]")
                until(page, lambda: page.locator("#history-chart").get_attribute("data-points") == "6")
                assert "Lamp" in page.inner_text("#history-title")
                assert problems == []
            finally:
                ctx.close()

        await browser.run(look)
        nursery.cancel_scope.cancel()
