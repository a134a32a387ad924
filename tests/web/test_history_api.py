"""GET /api/history and GET /api/redis through Quart's test client, over a real actor tree."""

from __future__ import annotations

import time

import trio

from homehelper.messages import SystemSampled
from homehelper.monitor.system import history_dicts
from homehelper.web import create_app, ops
from tests.web.conftest import Tree

from .test_api import login


def _sample(at: float) -> dict:
    return {"at": at, "cpu": {"percent": 7.0, "load": [0.1, 0, 0]}, "memory": {"percent": 30.0}, "swap": None,
            "disks": [], "temperature": None, "net": {"recv_per_s": 0.0, "sent_per_s": 0.0}, "apps": {}}


async def test_without_a_history_the_page_is_told_plainly(tree: Tree) -> None:
    tree.deps.history = None  # a web app given no history actor
    client = create_app(tree.deps).test_client()
    assert (await client.get("/api/history")).status_code == 401  # a login first, like every route
    await login(client)
    r = await client.get("/api/history")
    assert r.status_code == 200 and await r.get_json() == {"available": False}
    r = await client.get("/api/history", query_string={"series": "machine"})
    assert r.status_code == 409
    r = await client.get("/api/redis")
    assert r.status_code == 200 and (await r.get_json())["enabled"] is False  # no Redis configured


async def test_series_are_served_and_bad_queries_refused_by_name(tree: Tree) -> None:
    assert tree.deps.history is not None  # serve's tree keeps one
    client = create_app(tree.deps).test_client()
    await login(client)
    state = await (await client.get("/api/history")).get_json()
    assert state["available"] is True and state["file"].endswith("history.sqlite")
    tree.broadcast.publish(SystemSampled(_sample(time.time())))
    r = await client.get("/api/history", query_string={"series": "machine", "range": "24h", "points": "50"})
    body = await r.get_json()
    assert r.status_code == 200 and body["resolution"] == "fine" and body["points"][-1]["cpu"] == 7.0
    for query, param in (({"series": "machine", "range": "2y"}, "range"), ({"series": "../x"}, "series"),
                         ({"series": "machine", "points": "1"}, "points"),
                         ({"series": "machine", "points": "-5"}, "points"),
                         ({"series": "machine", "points": "9" * 40}, "points")):
        r = await client.get("/api/history", query_string=query)
        assert r.status_code == 400, query
        assert param in (await r.get_json())["message"], query
    r = await client.get("/api/redis")
    assert r.status_code == 200 and (await r.get_json())["enabled"] is False  # no Redis configured


async def test_the_system_panel_still_answers_when_the_history_does_not(tree: Tree) -> None:
    assert tree.deps.history is not None  # serve's tree keeps one
    client = create_app(tree.deps).test_client()
    await login(client)
    assert (await client.get("/api/history")).status_code == 200
    await tree.root.stop_child("history")  # gone (crashed for good, say): its mailbox is closed
    r = await client.get("/api/system")
    assert r.status_code == 200 and (await r.get_json())["available"] is True  # this run's ring instead
    r = await client.get("/api/history", query_string={"series": "machine"})
    assert r.status_code == 503


async def test_the_panel_charts_the_longer_series_the_files_or_this_runs(tree: Tree) -> None:
    """A fresh root's file has a step or two (the first without the CPU, which needs two readings),
    while this run's ring has more: the ring is charted. After a restart the file is the longer."""
    machine = tree.deps.machine
    machine.show({"cpu": {"percent": 5.0}}, trio.current_time())  # a reading fresh enough: no ask, no wait

    def points(n: int, first_cpu: float | None) -> tuple[tuple, ...]:
        return tuple((1000.0 + 30 * i, first_cpu if i == 0 else 10.0 + i, 40.0, None, 50.0, None, 0.1, 0.0, 0.0)
                     for i in range(n))

    machine.show_ring(points(5, 3.0))
    machine.keep_chart(ops.MACHINE_CHART, {"points": history_dicts(points(2, None))})
    assert [p["cpu"] for p in (await ops.system(tree.deps))["history"]] == [3.0, 11.0, 12.0, 13.0, 14.0]
    machine.keep_chart(ops.MACHINE_CHART, {"points": history_dicts(points(8, None))})
    assert len((await ops.system(tree.deps))["history"]) == 8
