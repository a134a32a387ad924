"""One way to act: REST and the websocket call the same act-and-settle and give the same reply,
read from the registry's read model; what a click costs in asks."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from homehelper.actors import ActorRef
from homehelper.web import ops
from tests.web.conftest import Live
from tests.web.test_ws import call, headers, session_cookie
from tests.web.wsclient import WSClient

# What the web asks on a click: the registry, the sensors, the TTL clock and the app's own actor.
# (The app actor's own asks, such as a port from the allocator, are the action's work, not the web's.)
WEB_ASKS = ("registry", "sensors", "ttl", "history", "bridge")


@contextmanager
def counting_asks(app_id: str) -> Iterator[Counter[str]]:
    """Count the asks made to the actors the web talks to (a spy around the real ask)."""
    asks: Counter[str] = Counter()
    real = ActorRef.ask

    async def ask(self: ActorRef[Any], msg: Any, *args: Any, **kw: Any) -> Any:
        if self.name in (*WEB_ASKS, app_id):
            asks[self.name] += 1
        return await real(self, msg, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ActorRef, "ask", ask)
        yield asks


async def test_rest_and_websocket_settle_alike_in_one_ask_a_click(live_services: Live) -> None:
    live = live_services
    cookie = await session_cookie(live)
    async with httpx.AsyncClient(base_url=live.url) as c:
        csrf = await live.login(c)
        assert (await c.get("/api/system")).json()["available"]  # a reading in the machine's read model
        with counting_asks("app-01") as asks:
            r = await c.post("/api/apps/app-01/start", headers={"X-CSRF-Token": csrf, "Origin": live.origin})
        assert r.status_code == 200, r.text
        rest = r.json()
        # A start answers once launched and waits for /health: REST waits for it as the websocket does.
        assert rest["app"]["state"] == "running" and rest["app"]["healthy"] is True
        assert rest["result"]["id"] == "app-01"
        rest_asks = sum(asks.values())
        r = await c.post("/api/apps/app-01/stop", headers={"X-CSRF-Token": csrf, "Origin": live.origin})
        assert r.json()["app"]["state"] == "stopped"

    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        with counting_asks("app-01") as asks:
            reply = await call(ws, {"type": "action", "id": 1, "app": "app-01", "action": "start"})
        ws_asks = sum(asks.values())
        data = reply["data"]
        assert data["app"]["state"] == "running" and data["app"]["healthy"] is True
        assert set(data) == set(rest) and set(data["app"]) == set(rest["app"])  # the same reply
        assert (await call(ws, {"type": "action", "id": 2, "app": "app-01", "action": "stop"}))[
            "data"]["app"]["state"] == "stopped"
    # Before: registry, app, registry, sensors (REST: 4), and the app again while settling (websocket: 5);
    # then the app and the sensors' last sample for the card's resources (2). Now the app's actor alone:
    # the resources come from the machine's read model.
    print(f"asks per click: REST start {rest_asks}, websocket start {ws_asks} (before: 4 and 5, then 2)")
    assert rest_asks == ws_asks == 1 and asks["app-01"] == 1


async def test_a_refresh_asks_no_actor_while_the_read_models_hold(live: Live,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's refresh reads the apps', the machine's and the bus's read models. Only a stale
    reading (then the sensors take one) or a chart not read since it changed (then the history reads
    it) costs an ask; twenty refreshes after those ask nothing, and see what changes meanwhile."""
    monkeypatch.setattr(ops, "FRESH_ENOUGH", 3600.0)  # this test is about asks, not about the clock
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        with counting_asks("app-00") as first:
            reply = await call(ws, {"type": "refresh", "id": 0, "what": "all"})
        assert reply["ok"] and reply["data"]["system"]["now"]["fresh"] is True
        assert first["sensors"] == 1 and first["history"] == 1  # a reading taken, the chart read
        with counting_asks("app-00") as asks:
            for i in range(1, 21):
                reply = await call(ws, {"type": "refresh", "id": i, "what": "all"})
                assert reply["ok"] and reply["data"]["system"]["now"]["fresh"] is False
                assert reply["data"]["bus"] is not None and len(reply["data"]["apps"]) == 3
        assert sum(asks.values()) == 0, asks
        live.tree.deps.view.records["app-00"].last_error = "changed under the dashboard"
        reply = await call(ws, {"type": "refresh", "id": 21, "what": "apps"})
        assert [a["last_error"] for a in reply["data"] if a["id"] == "app-00"] == ["changed under the dashboard"]


async def test_open_reports_the_time_left_from_the_read_model(live: Live) -> None:
    """A service app's own UI has no idle stop: the reply and the record say None, asking nothing of the TTL clock."""
    async with httpx.AsyncClient(base_url=live.url) as c:
        csrf = await live.login(c)
        with counting_asks("app-00") as asks:
            r = await c.post("/api/apps/app-00/keepalive", headers={"X-CSRF-Token": csrf, "Origin": live.origin})
        assert r.status_code == 200 and r.json() == {"app": "app-00", "url": "/apps/app-00/ui/", "state": "stopped",
                                                     "ttl_left": None, "max_lifetime_left": None}
        assert asks["ttl"] == 0 and asks["registry"] == 0
        app = (await c.get("/api/apps/app-00")).json()
        assert app["ttl_left"] is None and app["max_lifetime_left"] is None


async def test_an_action_on_a_removed_app_answers_not_found(live: Live) -> None:
    # the read model is the one source: an app it does not know is not acted on
    view = live.tree.deps.view
    del view.records["app-02"]
    async with httpx.AsyncClient(base_url=live.url) as c:
        csrf = await live.login(c)
        r = await c.post("/api/apps/app-02/start", headers={"X-CSRF-Token": csrf, "Origin": live.origin})
        assert r.status_code == 404 and r.json()["error"] == "unknown_app"


@pytest.mark.parametrize("app_id", ["App-1", "app_1", "-app", "a" * 41, "app.1", "../etc", ""])
def test_app_ids_follow_the_manifests_one_rule(app_id: str) -> None:
    from homehelper.manifest import ID_RE
    from homehelper.web.apporigin import TICKET_RE
    from homehelper.web.proxy import PATH_RE

    assert not ID_RE.fullmatch(app_id)
    with pytest.raises(Exception) as err:
        ops.check_app_id(app_id)
    assert type(err.value).__name__ == "UnknownApp"
    assert PATH_RE.match(f"/apps/{app_id}/ui/") is None and TICKET_RE.match(f"/apps/{app_id}/ticket") is None
    ok = "app-1"
    assert ops.check_app_id(ok) == ok and PATH_RE.match(f"/apps/{ok}/ui/x") and TICKET_RE.match(f"/apps/{ok}/ticket")


def test_the_manifest_schema_spells_the_same_id_rule() -> None:
    import homehelper
    from homehelper.manifest import ID_RE

    schema = json.loads((Path(homehelper.__file__).parent / "manifest.schema.json").read_text())
    assert schema["properties"]["id"]["pattern"] == f"^{ID_RE.pattern}(?![\\s\\S])"
    # and no module spells it again: every other place imports it (appid.py, re-exported by manifest.ID_RE)
    spelled = [p.name for p in Path(homehelper.__file__).parent.rglob("*.py") if ID_RE.pattern in p.read_text()]
    assert spelled == ["appid.py"]
