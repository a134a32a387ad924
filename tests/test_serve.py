"""The composition root: a config change made through the API reaches the running tree."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import trio

from homehelper.actors.settings import dotted as _dotted
from homehelper.config import EDITABLE, Config, load_config
from homehelper.errors import DiskFull
from homehelper.messages import GetHistory, GetHistoryState
from homehelper.serve import Runtime, serve
from tests.fixtures.redis import free_port


async def test_a_config_change_is_validated_persisted_applied_and_announced(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    level = logging.getLogger().level
    try:
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(serve, config)
            async with httpx.AsyncClient(base_url=rt.url) as c:
                bad = await c.patch("/api/config", json={"port": 1234})
                assert bad.status_code == 400 and "cannot be changed while running" in bad.json()["message"]
                bad = await c.patch("/api/config", json={"streamlit": {"ttl": "soon"}})
                assert bad.status_code == 400 and "'streamlit.ttl'" in bad.json()["message"]
                assert rt.ctx.config.streamlit.ttl == 300  # a refused change changes nothing
                ok = await c.patch("/api/config", json={"streamlit": {"ttl": 60, "max_running": 1},
                                                         "log_level": "WARNING"})
                assert ok.status_code == 200, ok.text
                assert ok.json()["streamlit"]["ttl"] == 60
                kinds = [e["kind"] for e in (await c.get("/api/events")).json()]
            assert rt.ctx.config.streamlit.ttl == 60  # what app actors and the Streamlit slots read
            assert rt.ctx.config.streamlit.max_running == 1
            assert logging.getLogger().level == logging.WARNING
            assert "config_changed" in kinds
            saved = json.loads(config.config_file.read_text())
            assert saved == {"streamlit": {"ttl": 60, "max_running": 1}, "log_level": "WARNING"}
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().setLevel(level)
    assert load_config(state_root, environ={}).streamlit.ttl == 60  # and it survives a restart


# One distinct value for each editable key: sent all at once, each must land.
CHANGES: list[dict] = [
    {"log_level": "DEBUG"},
    {"redis_url": "redis://127.0.0.1:1/3"},
    {"streamlit": {"ttl": 61}}, {"streamlit": {"max_lifetime": 7201}}, {"streamlit": {"max_running": 2}},
    {"streamlit": {"min_available_mb": 128}}, {"streamlit": {"start_timeout": 31}}, {"streamlit": {"stop_grace": 4}},
    {"streamlit": {"busy_window": 29}},
    {"monitor": {"interval": 45}}, {"monitor": {"history": 100}}, {"monitor": {"min_duration": 61}},
    {"monitor": {"cpu": [60, 70, 80]}}, {"monitor": {"memory": [51, 71, 91]}}, {"monitor": {"swap": [52, 72, 92]}},
    {"monitor": {"disk": [53, 73, 93]}}, {"monitor": {"temperature": [46, 66, 81]}},
    {"monitor": {"hysteresis": 4}}, {"monitor": {"min_free_disk_mb": 1024}},
    {"monitor": {"redis_memory": [71, 86, 96]}}, {"monitor": {"redis_latency_ms": [40, 150, 900]}},
    {"monitor": {"redis_drops": [2, 3, 500]}},
    {"auth": {"session_hours": 13}},
]


def leaf(change: dict) -> tuple[str, object]:
    ((key, value),) = _dotted(change).items()
    return key, value


def read(config: Config, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


async def test_twenty_concurrent_changes_are_all_applied_saved_and_seen_after_a_restart(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    level = logging.getLogger().level
    statuses: list[int] = []
    try:
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(serve, config)
            async with httpx.AsyncClient(base_url=rt.url, timeout=60) as c:

                async def patch(change: dict) -> None:
                    statuses.append((await c.patch("/api/config", json=change)).status_code)

                async with trio.open_nursery() as clients:
                    for change in CHANGES:
                        clients.start_soon(patch, change)
                shown = rt.settings.current
                got = (await c.get("/api/config")).json()
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().setLevel(level)
    assert statuses == [200] * len(CHANGES)
    saved = json.loads(config.config_file.read_text())  # valid JSON, every change in it
    restarted = load_config(state_root, environ={})
    for change in CHANGES:
        key, value = leaf(change)
        assert read(shown, key) == value, key
        assert _dotted(got)[key] == value, key
        assert _dotted(saved)[key] == value, key
        assert read(restarted, key) == value, key
    assert not list(config.config_file.parent.glob(".*.tmp"))


async def _settled(rt: Runtime) -> None:
    """The sensor actor has handled what it was told (its mailbox is first in, first out)."""
    await rt.refs["sensors"].ask(GetHistory(), timeout=10)
    await rt.refs["history"].ask(GetHistoryState(), timeout=10)


def observe(rt: Runtime, key: str) -> list[object]:
    """The value each follower of `key` now uses (not what the settings actor holds)."""
    section, _, name = key.partition(".")
    if key == "log_level":
        return [logging.getLevelName(logging.getLogger().level)]
    if key == "redis_url":
        return [rt.instances["bridge"].url, rt.ctx.config.redis_url]  # the bridge; apps at their next start
    if section == "streamlit":  # the Streamlit slots and the Streamlit app actors (through ctx.config)
        return [getattr(rt.instances["slots"].cfg, name), getattr(rt.ctx.config.streamlit, name)]
    if section == "monitor":
        sensors = rt.instances["sensors"]
        seen = [getattr(sensors.monitor, name), getattr(sensors.health.config, name)]
        if name == "min_free_disk_mb":
            seen.append(rt.ctx.installer.config.monitor.min_free_disk_mb)
        if name.startswith("redis_"):  # the history actor's Redis alert levels
            seen.append(getattr(rt.instances["history"].redis.config, name))
        return [list(v) if isinstance(v, tuple) else v for v in seen]
    if key == "auth.session_hours":
        assert rt.deps is not None and rt.deps.auth is not None
        return [rt.deps.auth.session_seconds / 3600.0]
    if key == "auth.loopback_without_login":
        assert rt.deps is not None
        return [rt.deps.config.auth.loopback_without_login]
    raise AssertionError(f"no follower known for {key}")


def editable_leaves(config: Config) -> set[str]:
    return {k for k in _dotted(config.to_json()) if k.split(".")[0] in EDITABLE}


async def test_every_editable_key_reaches_the_part_that_uses_it(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    cases = [leaf(change) for change in CHANGES] + [("auth.loopback_without_login", False)]
    assert {k for k, _ in cases} == editable_leaves(config)  # a new editable key needs a follower and a case here
    level = logging.getLogger().level
    try:
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(serve, config)
            async with httpx.AsyncClient(base_url=rt.url) as c:
                for key, value in cases:
                    before = observe(rt, key)
                    assert all(v != value for v in before), key
                    section, _, name = key.partition(".")
                    r = await c.patch("/api/config", json={section: {name: value}} if name else {key: value})
                    assert r.status_code == 200, (key, r.text)
                    await _settled(rt)
                    assert observe(rt, key) == [value] * len(before), key
                assert (await c.get("/api/apps")).status_code == 401  # loopback now needs a login
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().setLevel(level)


async def test_keys_nobody_follows_are_refused_and_nonsense_is_refused_by_name(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=rt.url) as c:
            for body, key in (({"event_history": 10}, "event_history"), ({"service_ports": [0, 0]}, "service_ports"),
                              ({"streamlit": {"max_running": 0}}, "streamlit.max_running"),
                              ({"redis_url": "notaurl"}, "redis_url"),
                              ({"monitor": {"history": 10**12}}, "monitor.history")):
                r = await c.patch("/api/config", json=body)
                assert r.status_code == 400 and f"'{key}" in r.json()["message"], (body, r.text)
            r = await c.patch("/api/config", json={"monitor": {"min_free_disk_mb": 2**30}})
            assert r.status_code == 200
            # it used to be accepted and ignored: now an install is refused before it starts
            with pytest.raises(DiskFull, match="min_free_disk_mb"):
                rt.ctx.installer.check_disk()
        nursery.cancel_scope.cancel()
    assert json.loads(config.config_file.read_text()) == {"monitor": {"min_free_disk_mb": 2**30}}


async def test_a_redis_password_reaches_the_bridge_but_never_the_event_log(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    url = "redis://homehelper:s3cret@127.0.0.1:1/0"
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(serve, config)
        async with httpx.AsyncClient(base_url=rt.url) as c:
            assert (await c.patch("/api/config", json={"redis_url": url})).status_code == 200
            events = (await c.get("/api/events")).json()
        nursery.cancel_scope.cancel()
    assert rt.instances["bridge"].url == url
    (changed,) = [e for e in events if e["kind"] == "config_changed"]
    assert changed["changes"] == {"redis_url": "redis://homehelper:***@127.0.0.1:1/0"}
    assert "s3cret" not in json.dumps(events)
