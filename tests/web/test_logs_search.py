"""The log viewer's search through the API and the websocket: text, time range, rotated files,
and the download joining them oldest first."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
import trio

from homehelper.web import create_app
from tests.web.conftest import Live, Tree
from tests.web.test_api import login
from tests.web.test_ws import call, headers, session_cookie
from tests.web.wsclient import WSClient


@pytest.fixture
async def client(tree: Tree):
    return create_app(tree.deps).test_client()


def _stamp(minute: int) -> str:
    return f"2026-11-28T10:{minute:02d}:00.000+00:00"


def _rotated(tree: Tree, app_id: str = "app-00") -> None:
    log_dir = tree.config.logs_dir(app_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    for name, first in (("app.log.2", 0), ("app.log.1", 10), ("app.log", 20)):
        (log_dir / name).write_text("".join(f"{_stamp(m)} tick {m}{' ERROR' if m % 5 == 0 else ''}\n"
                                            for m in range(first, first + 10)))
        when = datetime(2026, 11, 28, 10, first + 9, tzinfo=UTC).timestamp()
        os.utime(log_dir / name, (when, when))


async def test_api_searches_text_and_time_across_rotated_files(client, tree: Tree) -> None:
    await login(client)
    _rotated(tree)
    r = await client.get("/api/apps/app-00/logs", query_string={"grep": "ERROR", "lines": 100})
    assert [line.split()[2] for line in (await r.get_json())["lines"]] == ["0", "5", "10", "15", "20", "25"]
    r = await client.get("/api/apps/app-00/logs", query_string={
        "since": "2026-11-28T10:08:00Z", "until": "2026-11-28T10:11:30+00:00", "lines": 100})
    assert [line.split()[2] for line in (await r.get_json())["lines"]] == ["8", "9", "10", "11"]
    r = await client.get("/api/apps/app-00/logs", query_string={"grep": "ERROR", "lines": 2})
    assert [line.split()[2] for line in (await r.get_json())["lines"]] == ["20", "25"]


@pytest.mark.parametrize("params, name", [({"since": "yesterday"}, "since"), ({"until": "5x"}, "until"),
                                          ({"grep": "x" * 201}, "grep")])
async def test_api_names_a_bad_search_parameter(client, tree: Tree, params, name) -> None:
    await login(client)
    r = await client.get("/api/apps/app-00/logs", query_string=params)
    body = await r.get_json()
    assert r.status_code == 400 and name in body["message"]


async def test_download_joins_the_rotated_files_oldest_first(client, tree: Tree) -> None:
    await login(client)
    _rotated(tree)
    r = await client.get("/api/apps/app-00/logs/download")
    text = await r.get_data(as_text=True)
    assert [line.split()[2] for line in text.splitlines()] == [str(m) for m in range(30)]


async def test_websocket_follow_searches_first_then_follows_only_matching_lines(live: Live) -> None:
    cookie = await session_cookie(live)
    _rotated(live.tree, "app-01")
    log = live.tree.config.logs_dir("app-01") / "app.log"
    async with await WSClient.connect(live.ws_url, headers(live, cookie)) as ws:
        first = await call(ws, {"type": "logs.follow", "id": 1, "app": "app-01", "lines": 3, "grep": "ERROR",
                                "since": "2026-11-28T10:01:00Z"})
        assert [line.split()[2] for line in first["data"]["lines"]] == ["15", "20", "25"]
        with log.open("a") as f:
            f.write(f"{_stamp(40)} quiet\n{_stamp(41)} ERROR new\n")
        with trio.fail_after(5):
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "log":
                    break
        assert msg["lines"] == [f"{_stamp(41)} ERROR new"]
        bad = await call(ws, {"type": "logs.follow", "id": 2, "app": "app-01", "since": "soon"})
        assert bad["type"] == "error" and "since" in bad["message"]
