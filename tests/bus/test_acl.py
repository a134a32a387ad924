"""Per-app Redis identities (homehelper/bus/acl.py) on a real redis-server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis as redis_py
import trio

from homehelper.bus.acl import AppIdentities, app_secrets, app_url, user_name
from homehelper.bus.channels import Channels
from homehelper.errors import ConfigError
from homehelper.messages import (
    AppRemoved,
    AppStarted,
    BusConnected,
    BusDisconnected,
    BusIdentityKnown,
    BusMessage,
    GetBusState,
)
from homehelper.sdk import Bus, settings

from .conftest import SecuredRedis, bridge_tree, client, next_event, wait_until


def app_bus(url: str, app_id: str) -> Bus:
    return Bus(settings({"HH_APP_ID": app_id, "HH_REDIS_URL": url, "HH_NODE_ID": "main"}))


async def until_topic(sub, topic: str, timeout: float = 5):
    """The next message on `sub` with this topic (others, such as a late bus_connected, skipped)."""
    with trio.fail_after(timeout):
        while True:
            msg = await trio.to_thread.run_sync(sub.get, 0.5)
            if msg is not None and msg.topic == topic:
                return msg


async def confirmed(admin: redis_py.Redis, want: dict[str, tuple[int, int]]) -> None:
    """Redis has these users' subscriptions (CLIENT LIST: user -> (patterns, channels)), so a
    message published now reaches them."""
    def ready() -> bool:
        have: dict[str, tuple[int, int]] = {}
        for c in admin.client_list():
            p, n = have.get(c.get("user", ""), (0, 0))
            have[c.get("user", "")] = (p + int(c.get("psub", 0)), n + int(c.get("sub", 0)))
        return all(have.get(user, (0, 0)) == counts for user, counts in want.items())
    await wait_until(ready)


def url_of(secrets: tuple[tuple[str, str], ...]) -> str:
    env = dict(secrets)
    assert set(env) == {"HH_REDIS_URL"}
    return env["HH_REDIS_URL"]


def test_app_url_swaps_the_credentials_and_keeps_the_rest():
    assert app_url("redis://127.0.0.1:6379/2", "hh-app.main.a", "pw") == "redis://hh-app.main.a:pw@127.0.0.1:6379/2"
    # HomeHelper's own password, wherever it was written, never reaches the app
    url = app_url("rediss://hh:secret@redis.lan:6380/0?password=secret&ssl_cert_reqs=required", "u", "p")
    assert "secret" not in url and url == "rediss://u:p@redis.lan:6380/0?ssl_cert_reqs=required"
    assert app_url("unix://hh:secret@/run/redis/redis.sock?db=1", "u", "p") == "unix://u:p@/run/redis/redis.sock?db=1"
    assert app_url("redis://[::1]:6379", "u", "p") == "redis://u:p@[::1]:6379"
    assert urlsplit(app_url("redis://h", "u", "a/b+c")).password == "a%2Fb%2Bc"  # quoted: the URL stays one URL


def test_user_names_are_per_node_and_refuse_bad_ids():
    assert user_name(Channels("kitchen-2"), "lamp") == "hh-app.kitchen-2.lamp"
    with pytest.raises(ValueError):
        user_name(Channels("main"), "a:b")


async def test_without_identities_or_redis_the_shared_url_or_nothing():
    assert await app_secrets(None, None, "a") == ()
    assert await app_secrets(None, "none", "a") == ()
    assert await app_secrets(None, "redis://x:1/0", "a") == (("HH_REDIS_URL", "redis://x:1/0"),)
    assert await AppIdentities(None).secrets_for("a") == ()
    with pytest.raises(ConfigError, match="redis_acl"):
        AppIdentities(None, mode="on")


@pytest.mark.redis
async def test_an_app_may_publish_only_on_its_own_channels(clean_users):
    redis = clean_users
    ids = AppIdentities(redis.url)
    a_url, b_url = url_of(await ids.secrets_for("a")), url_of(await ids.secrets_for("b"))
    assert ids.snapshot() == {"identity": "per-app", "identity_note": ""}
    assert urlsplit(a_url).username == "hh-app.main.a" and urlsplit(a_url).password != urlsplit(b_url).password
    a = redis_py.Redis.from_url(a_url, decode_responses=True)
    try:
        assert a.publish("homehelper:main:apps:a:pub:temperature", "1") == 0
        assert a.publish("homehelper:main:apps:a:status", "ok") == 0
        assert a.publish("homehelper:main:apps:a:heartbeat", "{}") == 0
        for channel in ("homehelper:main:apps:b:pub:temperature", "homehelper:main:apps:b:status",
                        "homehelper:main:events:app_started", "homehelper:main:apps:a:events",
                        "homehelper:other:apps:a:pub:t", "anything"):
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                a.publish(channel, "spoofed")
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            a.set("homehelper:main:health:b", "x")  # no keys at all
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            a.execute_command("ACL", "SETUSER", "me", "on", "+@all")
        # subscribing grants no publishing: the public channels are read-only
        pubsub = a.pubsub()
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            pubsub.subscribe("homehelper:main:apps:b:status")
            pubsub.get_message(timeout=2)
        pubsub.close()
    finally:
        a.close()


@pytest.mark.redis
async def test_the_sdk_round_trip_works_for_two_apps_with_their_own_users(clean_users):
    redis = clean_users
    ids = AppIdentities(redis.url)
    async with bridge_tree(redis.url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        display = app_bus(url_of(await ids.secrets_for("display")), "display")
        sensor = app_bus(url_of(await ids.secrets_for("sensor")), "sensor")
        subs = [display.subscribe("temperature"), display.events("app_started"), display.events(app="display"),
                display.events(), display.subscribe("temperature", app="sensor"), sensor.subscribe()]
        try:
            for sub in subs:  # a refused subscription raises here
                assert await trio.to_thread.run_sync(sub.get, 0.1) is None
            await confirmed(client(redis.url), {"hh-app.main.display": (2, 3), "hh-app.main.sensor": (1, 0)})
            assert sensor.publish("temperature", {"c": 19}) == 4  # display twice, sensor's own '*', the bridge
            sensor.publish("humidity", {"rh": 40})  # another topic: only sensor's '*' gets it
            for sub in (subs[0], subs[4], subs[5]):
                msg = await trio.to_thread.run_sync(sub.get, 5)
                assert (msg.app_id, msg.topic, msg.data) == ("sensor", "temperature", {"c": 19})
            assert (await trio.to_thread.run_sync(subs[5].get, 5)).topic == "humidity"
            assert subs[0].get(timeout=0.1) is None and subs[4].get(timeout=0.05) is None
            sensor.status("ok")
            msg = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
            assert (msg.app_id, msg.data) == ("sensor", {"c": 19})
            tree.broadcast.publish(AppStarted("display", 8105))
            for sub in subs[1:4]:
                ev = await until_topic(sub, "app_started")
                assert (ev.topic, ev.app_id) == ("app_started", "display")
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                display.client.publish("homehelper:main:apps:sensor:pub:temperature", '{"c": -40}')
        finally:
            for sub in subs:
                sub.close()
            display.close()
            sensor.close()


@pytest.mark.redis
async def test_users_come_back_after_redis_restarts_and_go_with_their_app(clean_users):
    redis = clean_users
    ids = AppIdentities(redis.url)
    async with bridge_tree(redis.url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        a_url = url_of(await ids.secrets_for("a"))
        redis.kill()
        redis.start()  # an in-memory Redis: its users are gone
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        a = redis_py.Redis.from_url(a_url)
        try:
            await wait_until(lambda: _can_ping(a))
            assert url_of(await ids.secrets_for("a")) == a_url  # one password per app per run
            tree.broadcast.publish(AppRemoved("a"))
            await wait_until(lambda: not _can_ping(a))
            assert "hh-app.main.a" not in redis_py.Redis.from_url(redis.url, decode_responses=True).acl_users()
        finally:
            a.close()


def _can_ping(client: redis_py.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis_py.AuthenticationError, redis_py.ConnectionError):
        return False


@pytest.mark.redis
async def test_redis_acl_off_says_apps_share_one_identity(clean_users):
    redis = clean_users
    ids = AppIdentities(redis.url, mode="off")
    assert await ids.secrets_for("a") == (("HH_REDIS_URL", redis.url),)
    async with bridge_tree(redis.url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        state = await tree.bridge.ask(GetBusState())
        assert state["identity"] == "shared" and "share one Redis identity" in state["identity_note"]
        assert "redis_acl is off" in state["identity_note"]
    assert redis_py.Redis.from_url(redis.url, decode_responses=True).acl_users() == ["default"]


@pytest.mark.redis
async def test_homehelper_logs_in_with_a_user_and_password_and_makes_app_users(secured_redis: SecuredRedis):
    url = secured_redis.url("hh")
    ids = AppIdentities(url)
    async with bridge_tree(url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        tree.broadcast.publish(AppStarted("lamp", 8100))
        await wait_until(lambda: secured_redis.admin.xlen("homehelper:main:stream"))
        [known] = await tree.recorder.wait(BusIdentityKnown)  # learnt on connect, before any app started
        assert known.identity == ids.state == "per-app"
        state = await tree.bridge.ask(GetBusState())
        assert state["connected"] and state["identity"] == "per-app" and "hh-pw" not in state["url"]
        lamp_url = url_of(await ids.secrets_for("lamp"))
        assert "hh-pw" not in lamp_url and urlsplit(lamp_url).username == "hh-app.main.lamp"
        with app_bus(lamp_url, "lamp") as lamp:
            assert lamp.publish("on", True) == 1  # the bridge hears it
            msg = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
            assert (msg.app_id, msg.data) == ("lamp", True)
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                lamp.client.publish("homehelper:main:events:app_started", "{}")


@pytest.mark.redis
async def test_without_permission_to_manage_users_apps_share_one_identity(secured_redis: SecuredRedis):
    url = secured_redis.url("hh-plain")
    ids = AppIdentities(url)
    async with bridge_tree(url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        [known] = await tree.recorder.wait(BusIdentityKnown)
        assert known.identity == ids.state == "shared"
        state = await tree.bridge.ask(GetBusState())
        assert state["identity"] == "shared" and "share one Redis identity" in state["identity_note"]
        assert "NOPERM" in state["identity_note"] or "permission" in state["identity_note"]
        assert await ids.secrets_for("lamp") == (("HH_REDIS_URL", url),)  # the app still gets a bus
    assert secured_redis.admin.acl_users() == ["default", "hh", "hh-plain"]


@pytest.mark.redis
async def test_a_wrong_password_is_reported_and_hidden(secured_redis: SecuredRedis):
    url = secured_redis.url().replace("://", "://hh:not-the-pw@", 1)
    async with bridge_tree(url, identities=AppIdentities(url)) as tree:
        down = await next_event(tree.events, lambda e: isinstance(e, BusDisconnected) and e.error != "")
        assert "not-the-pw" not in down.url and "hh:***@" in down.url
        state = await tree.bridge.ask(GetBusState())
        assert not state["connected"] and "not-the-pw" not in str(state)


@pytest.mark.redis
async def test_with_redis_down_apps_still_get_their_own_users_made_on_reconnect(clean_users):
    redis = clean_users
    made: list[str] = []

    def client(url: str) -> redis_py.Redis:
        made.append(url)
        return redis_py.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0)

    ids = AppIdentities(redis.url, client=client)
    redis.kill()
    a_url = url_of(await ids.secrets_for("a"))  # fail closed: never the shared identity
    b_url = url_of(await ids.secrets_for("b"))
    assert urlsplit(a_url).username == "hh-app.main.a" and urlsplit(b_url).username == "hh-app.main.b"
    assert len(made) == 1  # the second start did not wait on a Redis that just failed
    assert ids.snapshot()["identity"] == "unknown"
    redis.start()
    assert not _can_ping(redis_py.Redis.from_url(a_url))
    await ids.restore()  # what the bridge does on connect
    assert _can_ping(redis_py.Redis.from_url(a_url)) and _can_ping(redis_py.Redis.from_url(b_url))
    assert ids.snapshot()["identity"] == "per-app"


def test_redact_hides_every_password():
    from homehelper.bus.acl import redact

    assert redact("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact("redis://:pw@[::1]:6379/0") == "redis://:***@[::1]:6379/0"
    assert redact("rediss://h:1/0?password=pw&ssl_ca_certs=/a.pem") == "rediss://h:1/0?password=***&ssl_ca_certs=/a.pem"
    assert redact("unix://u:pw@/run/r.sock?db=0") == "unix://u:***@/run/r.sock?db=0"
    assert redact("redis://h:1/0") == "redis://h:1/0" and redact(None) == ""


@pytest.mark.redis
async def test_homehelpers_password_never_reaches_the_apps_channels(secured_redis: SecuredRedis):
    from homehelper.messages import ConfigChanged

    url = secured_redis.url("hh")
    ids = AppIdentities(url)
    async with bridge_tree(url, identities=ids) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        with app_bus(url_of(await ids.secrets_for("spy")), "spy") as spy, spy.events() as sub:
            assert await trio.to_thread.run_sync(sub.get, 0.1) is None
            await confirmed(secured_redis.admin, {"hh-app.main.spy": (1, 0)})
            tree.broadcast.publish(ConfigChanged({"redis_url": url, "log_level": "INFO"}))  # e.g. PATCH /api/config
            msg = await until_topic(sub, "config_changed")
            assert msg.data["changes"]["log_level"] == "INFO"
            assert "hh-pw" not in str(msg.data) and "hh:***@" in msg.data["changes"]["redis_url"]
        stream = secured_redis.admin.xrange("homehelper:main:stream")
        assert stream and "hh-pw" not in str(stream)
