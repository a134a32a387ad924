"""GET /api/history and GET /api/redis through Quart's test client, over a real actor tree."""

from __future__ import annotations

import time

from homehelper.actors import ChildSpec
from homehelper.actors.history import HistoryActor
from homehelper.messages import SystemSampled
from homehelper.web import create_app
from tests.web.conftest import Tree

from .test_api import login


def _sample(at: float) -> dict:
    return {"at": at, "cpu": {"percent": 7.0, "load": [0.1, 0, 0]}, "memory": {"percent": 30.0}, "swap": None,
            "disks": [], "temperature": None, "net": {"recv_per_s": 0.0, "sent_per_s": 0.0}, "apps": {}}


async def test_without_a_history_the_page_is_told_plainly(tree: Tree) -> None:
    client = create_app(tree.deps).test_client()
    assert (await client.get("/api/history")).status_code == 401  # a login first, like every route
    await login(client)
    r = await client.get("/api/history")
    assert r.status_code == 200 and await r.get_json() == {"available": False}
    r = await client.get("/api/history", query_string={"series": "machine"})
    assert r.status_code == 409
    r = await client.get("/api/redis")
    assert r.status_code == 200 and await r.get_json() == {"enabled": False}


async def test_series_are_served_and_bad_queries_refused_by_name(tree: Tree) -> None:
    tree.deps.history = tree.root.start_child(ChildSpec("history", lambda: HistoryActor(
        tree.config, tree.broadcast.publish, tree.broadcast)))
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
    assert r.status_code == 200 and (await r.get_json()) == {"enabled": False}  # no bridge in this tree


async def test_the_system_panel_still_answers_when_the_history_does_not(tree: Tree) -> None:
    tree.deps.history = tree.root.start_child(ChildSpec("history", lambda: HistoryActor(
        tree.config, tree.broadcast.publish, tree.broadcast)))
    client = create_app(tree.deps).test_client()
    await login(client)
    assert (await client.get("/api/history")).status_code == 200
    await tree.root.stop_child("history")  # gone (crashed for good, say): its mailbox is closed
    r = await client.get("/api/system")
    assert r.status_code == 200 and (await r.get_json())["available"] is True  # this run's ring instead
    r = await client.get("/api/history", query_string={"series": "machine"})
    assert r.status_code == 503
