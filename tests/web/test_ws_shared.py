"""Refreshes asked for in the same moment by several real websocket clients share one build."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from homehelper.web import ops
from tests.backends.apps import wait_until
from tests.web.conftest import Live
from tests.web.test_ws import call, headers, session_cookie
from tests.web.wsclient import WSClient

CLIENTS = 6


async def test_concurrent_refreshes_from_several_sockets_share_one_build(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = trio.Event()
    builds: list[int] = []
    real = ops.snapshot

    async def held(deps: Any) -> dict[str, Any]:
        builds.append(1)
        await gate.wait()  # every client's refresh arrives while this build runs
        return await real(deps)

    monkeypatch.setattr(ops, "snapshot", held)
    shared = live.app.extensions["homehelper.refresh"]
    cookie = await session_cookie(live)
    replies: dict[int, dict[str, Any]] = {}
    async with trio.open_nursery() as n:
        for i in range(CLIENTS):
            async def client(i: int = i) -> None:
                async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
                    replies[i] = await call(ws, {"type": "refresh", "id": 100 + i, "what": "all"})
            n.start_soon(client)
        await wait_until(lambda: shared.joined == CLIENTS - 1)
        gate.set()
    assert len(builds) == 1 and shared.builds == 1
    assert sorted(r["id"] for r in replies.values()) == [100 + i for i in range(CLIENTS)]  # each its own id
    datas = {json.dumps(r["data"], sort_keys=True) for r in replies.values()}
    assert len(datas) == 1 and all(r["ok"] for r in replies.values())
    assert [a["id"] for a in replies[0]["data"]["apps"]] == live.tree.app_ids
    assert shared.last_bytes == len(json.dumps(replies[0]["data"], separators=(",", ":")))
    # afterwards nothing is kept: the next refresh builds anew
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        assert (await call(ws, {"type": "refresh", "id": 1, "what": "all"}))["ok"]
    assert len(builds) == 2


async def test_a_failed_shared_build_is_an_error_for_every_asker_and_the_next_one_builds(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = trio.Event()

    async def broken(deps: Any) -> dict[str, Any]:
        await gate.wait()
        raise ops.Unavailable("the registry is restarting")

    monkeypatch.setattr(ops, "snapshot", broken)
    shared = live.app.extensions["homehelper.refresh"]
    cookie = await session_cookie(live)
    replies: list[dict[str, Any]] = []
    async with trio.open_nursery() as n:
        for i in range(3):
            async def client(i: int = i) -> None:
                async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
                    replies.append(await call(ws, {"type": "refresh", "id": i, "what": "all"}))
            n.start_soon(client)
        await wait_until(lambda: shared.joined == 2)
        gate.set()
    assert [r["status"] for r in replies] == [503] * 3
    monkeypatch.undo()
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        assert (await call(ws, {"type": "refresh", "id": 9, "what": "all"}))["ok"]


async def test_a_refresh_with_the_digests_it_has_gets_only_what_changed(live: Live) -> None:
    cookie = await session_cookie(live)
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        first = await call(ws, {"type": "refresh", "id": 1, "what": "all", "have": {}})
        assert set(first["data"]) == set(first["digests"]) >= {"apps", "system", "events"}
        assert [a["id"] for a in first["data"]["apps"]] == live.tree.app_ids
        again = await call(ws, {"type": "refresh", "id": 2, "what": "all", "have": first["digests"]})
        assert "apps" not in again["data"]  # unchanged: the client keeps the one it has
        assert again["digests"]["apps"] == first["digests"]["apps"]
        stale = await call(ws, {"type": "refresh", "id": 3, "what": "all",
                                "have": {**first["digests"], "apps": "not this one"}})
        assert [a["id"] for a in stale["data"]["apps"]] == live.tree.app_ids
        old = await call(ws, {"type": "refresh", "id": 4, "what": "all"})  # a client that sends no digests
        assert "digests" not in old and {"apps", "system", "events"} <= set(old["data"])
        for have in ([1, 2], "x", {str(i): "d" for i in range(100)}):  # not a dashboard's: everything, as before
            reply = await call(ws, {"type": "refresh", "id": 5, "what": "all", "have": have})
            assert reply["ok"] and "apps" in reply["data"]
