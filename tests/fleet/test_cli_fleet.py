"""The fleet in the CLI: `homehelper fleet`, `apps --all-nodes`, `status --node N`, `fleet credentials`."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import redis as redis_py
import trio

from homehelper.cli import main
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.tree import wait_until

from .conftest import node_config, open_node
from .test_fleet import _all_online
from .test_trust import admin as admin  # the fixture: deletes the users the test made

pytestmark = pytest.mark.redis


async def cli(*argv: str) -> int:
    return await trio.to_thread.run_sync(main, list(argv))


async def test_apps_of_every_node_and_one_nodes_status(state_root, redis, capsys):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    async with open_node(node_config(state_root / "a", "a", redis.url)) as a, \
            open_node(node_config(state_root / "b", "b", redis.url)):
        await wait_until(lambda: _all_online(a.url, {"a", "b"}), timeout=30)
        port = str(a.config.port)
        root = str(a.config.root)
        capsys.readouterr()
        assert await cli("apps", "--all-nodes", "--root", root, "--port", port) == 0
        out = capsys.readouterr().out
        assert any(line.split()[:3] == ["b", "lamp", "service"] for line in out.splitlines()), out
        assert "a                (no apps)" in out
        assert await cli("status", "--node", "b", "--json", "--root", root, "--port", port) == 0
        data = json.loads(capsys.readouterr().out)
        assert [n["node"] for n in data["nodes"]] == ["b"] and data["nodes"][0]["summary"]["apps"][0]["id"] == "lamp"
        assert await cli("status", "--node", "nosuch", "--root", root, "--port", port) == 2
        assert "no node 'nosuch'" in capsys.readouterr().err
        assert await cli("fleet", "--root", root, "--port", port) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[:2] for line in lines[1:]] == [["a", "online"], ["b", "online"]]
        # start and stop on node b, from node a's CLI
        assert await cli("start", "lamp", "--node", "b", "--root", root, "--port", port) == 0
        assert capsys.readouterr().out.strip() in ("b/lamp: running", "b/lamp: starting")
        assert await cli("stop", "lamp", "--node", "b", "--json", "--root", root, "--port", port) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["results"] == [{"node": "b", "app": "lamp", "ok": True, "state": "stopped", "message": ""}]
        assert await cli("stop", "nosuch", "--node", "b", "--root", root, "--port", port) == 1
        assert "nosuch" in capsys.readouterr().err


async def test_credentials_make_a_node_user_that_can_join(state_root, redis, admin, capsys):
    assert await cli("fleet", "credentials", "garage", "--admin-url", redis.url, "--root", str(state_root)) == 0
    captured = capsys.readouterr()
    made = json.loads(captured.out)
    assert made["node_id"] == "garage" and urlsplit(made["redis_url"]).username == "hh-node.garage"
    assert urlsplit(made["redis_url"]).password not in captured.err
    assert "hh-node.garage" in admin.acl_users()
    async with open_node(node_config(state_root / "g", "garage", made["redis_url"])) as g:
        fleet = await wait_until(lambda: _all_online(g.url, {"garage"}))
        assert [n["node"] for n in fleet["nodes"]] == ["garage"]
    node = redis_py.Redis.from_url(made["redis_url"], decode_responses=True)
    assert node.acl_whoami() == "hh-node.garage"
    node.close()
    assert await cli("fleet", "credentials", "bad:id", "--admin-url", redis.url, "--root", str(state_root)) == 2
