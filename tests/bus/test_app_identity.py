"""A service app started by its actor gets its own Redis user, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis as redis_py
import trio

from homehelper.backends import SystemdBackend
from homehelper.backends.process import _reap
from homehelper.bus.acl import AppIdentities
from homehelper.messages import AppStarted, StartApp, StopApp
from tests.actors.test_service import _fresh, harness
from tests.backends.apps import make_config, wait_until, write_app

# What an app can do with the URL it was given: the SDK works, speaking for another app does not.
PROBE = """
import json, os, time
import redis
from homehelper.sdk import Bus, settings
s = settings()
out = {"url": s.redis_url}
with Bus(s) as bus:
    out["own"] = bus.status("ok")
    try:
        bus.client.publish("homehelper:main:apps:other:pub:t", "spoofed")
        out["other"] = "allowed"
    except redis.exceptions.NoPermissionError:
        out["other"] = "NOPERM"
    try:
        bus.client.get("homehelper:main:health:other")
        out["key"] = "allowed"
    except redis.exceptions.NoPermissionError:
        out["key"] = "NOPERM"
with open(os.path.join(os.environ["HH_DATA_DIR"], "probe.json"), "w") as f:
    json.dump(out, f)
time.sleep(120)
"""


@pytest.mark.redis
async def test_a_started_app_has_its_own_redis_user(any_backend: Any, state_root: Path, clean_users: Any) -> None:
    redis = clean_users
    config = make_config(state_root, redis_url=redis.url)
    manifest = write_app(config.apps_dir, "probe", PROBE, health={"type": "process"})
    async with harness(config, any_backend) as h:
        h.ctx.identities = AppIdentities(redis.url, config.node_id)
        ref = h.add(manifest)
        await ref.ask(StartApp("probe"), timeout=60)
        result = config.data_dir("probe") / "probe.json"
        await wait_until(lambda: result.exists() and result.stat().st_size > 0, timeout=30)
        out = json.loads(result.read_text())
        url = urlsplit(out["url"])
        assert url.username == "hh-app.main.probe" and url.password and len(url.password) >= 24
        assert (out["other"], out["key"]) == ("NOPERM", "NOPERM")
        if isinstance(any_backend, SystemdBackend):
            shown = (await any_backend.systemctl("show", any_backend.unit("probe"))).stdout.decode()
            assert "HH_APP_ID=probe" in shown and url.password not in shown and "HH_REDIS_URL" not in shown
        await ref.ask(StopApp("probe"), timeout=30)



def _can_ping(url: str) -> bool:
    client = redis_py.Redis.from_url(url)
    try:
        return bool(client.ping())
    except (redis_py.AuthenticationError, redis_py.ConnectionError):
        return False
    finally:
        client.close()


@pytest.mark.redis
async def test_an_adopted_app_gets_its_user_back_after_redis_lost_it(any_backend: Any, state_root: Path,
                                                                      clean_users: Any) -> None:
    redis = clean_users
    config = make_config(state_root, redis_url=redis.url)
    manifest = write_app(config.apps_dir, "probe", PROBE, health={"type": "process"})
    async with harness(config, any_backend) as h:
        h.ctx.identities = AppIdentities(redis.url, config.node_id)
        await h.add(manifest).ask(StartApp("probe"), timeout=60)
        result = config.data_dir("probe") / "probe.json"
        await wait_until(lambda: result.exists() and result.stat().st_size > 0, timeout=30)
    url = json.loads(result.read_text())["url"]
    redis.kill()
    redis.start()  # as after a reboot: the app runs on (enabled, or outlived HomeHelper), its user is gone
    assert not _can_ping(url)
    async with harness(config, _fresh(any_backend)) as h2:
        h2.ctx.identities = AppIdentities(redis.url, config.node_id)  # a new run: knows no password
        ref = h2.add(manifest)
        # in a thread: a walled app's URL goes through the relay, which runs on this trio thread
        await wait_until(lambda: trio.to_thread.run_sync(_can_ping, url), timeout=15)
        assert not h2.of(AppStarted, "probe")  # adopted, not restarted
        await ref.ask(StopApp("probe"), timeout=30)
    # Both "HomeHelpers" were this one process: the first one's child is reaped here (a real
    # restart leaves no such zombie behind).
    _reap()


def test_a_streamlit_app_gets_its_secrets_and_not_homehelpers_own_url(state_root: Path, monkeypatch) -> None:
    from homehelper.actors.streamlit_spec import streamlit_spec

    config = make_config(state_root, redis_url="redis://hh:own-pw@127.0.0.1:6379/0")
    manifest = write_app(config.apps_dir, "dash", "pass\n")
    monkeypatch.setenv("HH_REDIS_URL", "redis://hh:own-pw@127.0.0.1:6379/0")  # HomeHelper's own environment
    spec = streamlit_spec(config, manifest, 8501, secrets=(("HH_REDIS_URL", "redis://u:p@h:1/0"),))
    assert dict(spec.secrets) == {"HH_REDIS_URL": "redis://u:p@h:1/0"} and "own-pw" not in str(spec)
    assert "HH_REDIS_URL" not in dict(streamlit_spec(config, manifest, 8501).env)
    assert streamlit_spec(config, manifest, 8501).secrets == ()


def test_redis_acl_is_a_checked_config_key(state_root: Path) -> None:
    from homehelper.config import load_config
    from homehelper.errors import ConfigError

    assert load_config(state_root, environ={}).redis_acl == "auto"
    assert load_config(state_root, environ={"HOMEHELPER_REDIS_ACL": "off"}).redis_acl == "off"
    with pytest.raises(ConfigError, match="redis_acl"):
        load_config(state_root, environ={"HOMEHELPER_REDIS_ACL": "maybe"})


@pytest.mark.redis
async def test_a_streamlit_app_runs_with_its_own_redis_user(make_tree: Any, clean_users: Any) -> None:
    from homehelper.messages import GetApp, OpenUI
    from tests.streamlit.test_streamlit_spec import environ_of

    async with make_tree() as tree:
        tree.ctx.identities = AppIdentities(clean_users.url)
        app = tree.add_app("dash")
        await app.ask(OpenUI("dash"), timeout=60)
        url = environ_of((await app.ask(GetApp("dash")))["pid"])["HH_REDIS_URL"]
        assert urlsplit(url).username == "hh-app.main.dash" and _can_ping(url)
        client = redis_py.Redis.from_url(url)
        try:
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                client.publish("homehelper:main:events:app_started", "{}")
        finally:
            client.close()
