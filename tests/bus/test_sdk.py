"""The app SDK: settings from the environment, and the bus from an app's side."""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from pathlib import Path

import pytest
import trio

from homehelper import sdk
from homehelper.messages import AppHeartbeat, AppStarted, AppStatusReported, BusConnected, BusMessage
from homehelper.sdk import Bus, Settings, settings
from tests.fixtures.common import REPO

from .conftest import bridge_tree, next_event


def app_settings(url: str | None, app_id: str = "sensor", node: str = "main") -> Settings:
    return settings({"HH_APP_ID": app_id, "HH_REDIS_URL": url or "", "HH_NODE_ID": node})


def test_settings_from_the_environment(tmp_path):
    s = settings({"HH_APP_ID": "lamp", "HH_PORT": "8123", "HH_HOST": "0.0.0.0", "HH_DATA_DIR": str(tmp_path / "d"),
                  "HH_LOG_DIR": str(tmp_path / "l"), "HH_REDIS_URL": "redis://127.0.0.1:6379/0",
                  "HH_NODE_ID": "kitchen"})
    assert s == Settings("lamp", 8123, "0.0.0.0", tmp_path / "d", tmp_path / "l", "redis://127.0.0.1:6379/0",
                         "kitchen")
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]  # frozen


def test_settings_defaults_and_errors():
    s = settings({"HH_APP_ID": "lamp"})
    assert (s.port, s.host, s.redis_url, s.node_id, s.data_dir) == (None, "127.0.0.1", None, "main", Path("data"))
    with pytest.raises(ValueError, match="HH_PORT must be an integer"):
        settings({"HH_APP_ID": "lamp", "HH_PORT": "eighty"})
    with pytest.raises(ValueError, match="HH_PORT"):
        settings({"HH_APP_ID": "lamp", "HH_PORT": "70000"})
    with pytest.raises(ValueError, match="HH_APP_ID"):
        settings({"HH_APP_ID": "Lamp:1"})
    with pytest.raises(ValueError, match="HH_NODE_ID"):
        settings({"HH_APP_ID": "lamp", "HH_NODE_ID": "a:b"})


def test_without_redis_the_bus_is_off_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="homehelper.sdk"):
        broadcast = Bus(app_settings(None))
    assert "HH_REDIS_URL is empty" in caplog.text
    assert not broadcast.enabled
    assert broadcast.publish("temperature", {"c": 20}) == 0
    assert broadcast.status("ok") == 0 and broadcast.heartbeat() == 0
    sub = broadcast.subscribe("temperature")
    assert list(sub) == [] and sub.get(timeout=0) is None
    with pytest.raises(ValueError, match="topic"):
        broadcast.publish("a:b", 1)  # bad input is refused even when the bus is off
    with pytest.raises(ValueError, match="over the"):
        broadcast.publish("big", "x" * 70_000)


@pytest.mark.redis
async def test_sdk_publications_reach_the_tree(redis):
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))

        def app() -> None:
            with Bus(app_settings(redis.url)) as broadcast:
                broadcast.status("degraded", reason="sensor 2 offline")
                broadcast.heartbeat(uptime=12)
                broadcast.publish("sensors/kitchen", {"room": "kitchen", "c": 21.5})

        await trio.to_thread.run_sync(app)
        st = await next_event(tree.events, lambda e: isinstance(e, AppStatusReported))
        assert (st.app_id, st.status, st.detail) == ("sensor", "degraded", {"reason": "sensor 2 offline"})
        hb = await next_event(tree.events, lambda e: isinstance(e, AppHeartbeat))
        assert hb.data == {"uptime": 12}
        msg = await next_event(tree.events, lambda e: isinstance(e, BusMessage))
        assert (msg.app_id, msg.data) == ("sensor", {"room": "kitchen", "c": 21.5})
        assert msg.channel == "homehelper:main:apps:sensor:pub:sensors/kitchen"


@pytest.mark.redis
async def test_apps_talk_to_each_other_and_follow_homehelper(redis):
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        listener, sensor = Bus(app_settings(redis.url, "display")), Bus(app_settings(redis.url, "sensor"))
        topic_sub = listener.subscribe("temperature")
        events_sub = listener.events("app_started")
        own_sub = listener.events(app="display")
        try:
            assert topic_sub.get(timeout=0.2) is None  # subscribed, nothing yet
            assert events_sub.get(timeout=0.05) is None and own_sub.get(timeout=0.05) is None
            assert sensor.publish("temperature", {"c": 19}) == 2  # the display and the bridge
            sensor.publish("humidity", {"rh": 40})  # another topic: not delivered
            msg = await trio.to_thread.run_sync(topic_sub.get, 5)
            assert (msg.app_id, msg.topic, msg.data) == ("sensor", "temperature", {"c": 19})
            assert topic_sub.get(timeout=0.1) is None
            tree.broadcast.publish(AppStarted("display", 8105))
            ev = await trio.to_thread.run_sync(events_sub.get, 5)
            assert (ev.topic, ev.app_id, ev.data["port"]) == ("app_started", "display", 8105)
            own = await trio.to_thread.run_sync(own_sub.get, 5)
            assert (own.topic, own.app_id) == ("app_started", "display")
        finally:
            for s in (topic_sub, events_sub, own_sub):
                s.close()
            listener.close()
            sensor.close()


@pytest.mark.redis
def test_redis_outage_is_logged_not_raised(redis, caplog):
    with Bus(app_settings(redis.url)) as broadcast:
        assert broadcast.publish("t", 1) == 0  # connected, no subscribers
        redis.kill()
        with caplog.at_level(logging.WARNING, logger="homehelper.sdk"):
            assert broadcast.publish("t", 2) == 0
            assert broadcast.heartbeat() == 0
        assert caplog.text.count("Redis unavailable") == 1  # once per outage
        redis.start()
        assert broadcast.publish("t", 3) == 0 and not broadcast._down


@pytest.mark.redis
async def test_an_app_process_reports_through_the_sdk(redis, state_root):
    """A real app process, configured only by the HH_* environment HomeHelper gives it."""
    code = ("from homehelper.sdk import Bus, settings\n"
            "s = settings()\n"
            "with Bus(s) as bus:\n"
            "    bus.status('ok', port=s.port, data=str(s.data_dir))\n")
    env = {**os.environ, "HH_APP_ID": "weather", "HH_PORT": "8150", "HH_DATA_DIR": str(state_root / "data"),
           "HH_REDIS_URL": redis.url, "HH_NODE_ID": "main", "PYTHONPATH": str(REPO)}
    async with bridge_tree(redis.url) as tree:
        await next_event(tree.events, lambda e: isinstance(e, BusConnected))
        await trio.run_process([sys.executable, "-c", code], env=env)
        st = await next_event(tree.events, lambda e: isinstance(e, AppStatusReported))
        assert (st.app_id, st.status, st.detail) == ("weather", "ok", {"port": 8150, "data": str(state_root / "data")})


# --- sd_notify: ready() and heartbeat() ------------------------------------------------------------

def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_and_heartbeat_speak_sd_notify(tmp_path, kind):
    address = str(tmp_path / "notify") if kind == "path" else f"@hh-sdk-test-{os.getpid()}-{uuid.uuid4().hex}"
    env = {"NOTIFY_SOCKET": address}
    with _receiver(address) as sock:
        assert sdk.ready(env) is True
        assert sock.recv(4096) == b"READY=1"
        assert sdk.heartbeat(env) is True
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert sdk.notify("STATUS=warming up", env) is True
        assert sock.recv(4096) == b"STATUS=warming up"


def test_ready_and_heartbeat_are_no_ops_without_a_socket(tmp_path):
    assert sdk.ready({}) is False and sdk.heartbeat({}) is False
    assert sdk.heartbeat({"NOTIFY_SOCKET": "vsock:2:1234"}) is False  # not a kind HomeHelper gives
    # A socket that went away (HomeHelper restarting) is not the app's problem: no exception.
    assert sdk.heartbeat({"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert sdk.heartbeat({"NOTIFY_SOCKET": f"@hh-sdk-nobody-{uuid.uuid4().hex}"}) is False


def test_ready_reads_the_environment_by_default(tmp_path, monkeypatch):
    address = str(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    with _receiver(address) as sock:
        assert sdk.ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_watchdog_interval():
    assert sdk.watchdog_interval({"WATCHDOG_USEC": "2500000"}) == 2.5
    assert sdk.watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}) == 2.5
    assert sdk.watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "1"}) is None  # not ours
    assert sdk.watchdog_interval({}) is None
    assert sdk.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert sdk.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
