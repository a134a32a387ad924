"""Trust in a fleet, with the real redis-server's ACLs: nodes as their own users, apps kept out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis as redis_py

from homehelper.bus import commands, nodeacl, presence
from homehelper.bus.acl import ENV
from homehelper.messages import AppStateChanged, BusIdentityKnown, FleetAway, FleetCommandHandled
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.tree import wait_until

from .conftest import get_fleet, node_config, open_node, statuses
from .test_fleet import _all_online

pytestmark = pytest.mark.redis


@pytest.fixture
def admin(redis: Any) -> Iterator[redis_py.Redis]:
    """The test server's default (admin) user; every other user is deleted afterwards."""
    r = redis_py.Redis.from_url(redis.url, decode_responses=True)
    yield r
    if redis.running:
        for user in r.acl_users():
            if user != "default":
                r.acl_deluser(user)
    r.close()


def as_user(url: str) -> redis_py.Redis:
    return redis_py.Redis.from_url(url, decode_responses=True)


async def test_nodes_on_their_own_users_work_together_and_an_app_cannot_command_them(state_root, redis, admin):
    url_a = nodeacl.setup(admin, redis.url, "a")
    url_b = nodeacl.setup(admin, redis.url, "b")
    assert urlsplit(url_a).username == "hh-node.a" and urlsplit(url_b).username == "hh-node.b"
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    async with open_node(node_config(state_root / "a", "a", url_a)) as a, \
            open_node(node_config(state_root / "b", "b", url_b)) as b:
        await b.recorder.wait(BusIdentityKnown, identity="per-app")  # the node user may make app users
        await _wait_online(a.url, {"a", "b"})
        async with httpx.AsyncClient() as c:
            assert (await c.post(f"{b.url}/api/apps/lamp/start", timeout=60)).status_code == 200
        await b.recorder.wait(AppStateChanged, "lamp", state="running", timeout=60)

        # The app's own credentials: its user, never the node's.
        secrets = dict(await b.rt.ctx.identities.secrets_for("lamp"))
        app_url = secrets[ENV]
        assert urlsplit(app_url).username == "hh-app.b.lamp"
        assert urlsplit(url_b).password not in app_url
        app = as_user(app_url)
        cmd = commands.FleetCommand(uuid.uuid4().hex, "b", "lamp", "stop", "a", "app", time.time() + 60)
        for node in ("a", "b"):
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                app.xadd(commands.stream_key(node), {"cmd": "{}"})
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            commands.send(app, cmd)
        with pytest.raises(redis_py.exceptions.NoPermissionError):  # nor forge a presence
            presence.write(app, "b", {"at": time.time()}, 15)
        with pytest.raises(redis_py.exceptions.NoPermissionError):  # nor read a reply meant for a node
            app.lpush(commands.reply_key("a", cmd.id), "{}")
        app.close()
        assert admin.xlen(commands.stream_key("b")) == 0
        assert b.recorder.of(FleetCommandHandled) == []

        # A node's user reaches another node's stream (that is what a fleet identity is for) ...
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{a.url}/api/fleet/b/apps/lamp/stop", timeout=60)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        # ... and nothing outside HomeHelper's names, nor anything dangerous.
        node = as_user(url_a)
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            node.set("someone-else:key", "x")
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            node.flushall()
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            node.config_get("*")
        node.close()


async def _wait_online(url: str, nodes: set[str]) -> None:
    fleet = await wait_until(lambda: _all_online(url, nodes), timeout=30)
    assert set(statuses(fleet)) >= nodes


async def test_a_wrong_password_leaves_the_node_working_alone(state_root, redis, admin):
    url_a = nodeacl.setup(admin, redis.url, "a")
    bad = url_a.replace(urlsplit(url_a).password or "", "wrong-password")
    async with open_node(node_config(state_root / "a", "a", url_a)) as a, \
            open_node(node_config(state_root / "x", "x", bad), join=False) as x:
        await x.recorder.wait(FleetAway)
        assert (await get_fleet(x.url))["redis"] == "unknown"
        assert statuses(await get_fleet(a.url)) == {"a": "online"}  # x never appears


async def test_a_node_user_without_stream_rights_keeps_the_node_alone_not_crashing(state_root, redis, admin):
    admin.execute_command("ACL", "SETUSER", "hh-node.weak", "on", ">weak-password-1234", "~homehelper:*",
                          "&homehelper:*", "+@all", "-@stream")
    url = redis.url.replace("redis://", "redis://hh-node.weak:weak-password-1234@")
    async with open_node(node_config(state_root / "w", "weak", url), join=False) as w:
        away = (await w.recorder.wait(FleetAway))[0]
        assert "NOPERM" in away.error or "permission" in away.error.lower()
        assert w.rt.root.children()["fleet"]["starts"] == 1  # refused, said, retried: not a crash loop
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"{w.url}/api/apps")).status_code == 200
