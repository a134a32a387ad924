"""Config: file < environment < flags, and errors that name the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from homehelper.config import EDITABLE, change_config, default_root, load_config
from homehelper.errors import ConfigError


def write(root: Path, data: object) -> None:
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "config.json").write_text(json.dumps(data) if not isinstance(data, str) else data)


def test_layers_override_in_order(tmp_path: Path) -> None:
    write(tmp_path, {"port": 8001, "streamlit": {"ttl": 120, "max_running": 2}, "redis_url": "redis://x:1"})
    c = load_config(tmp_path, {"port": 9000}, environ={"HOMEHELPER_STREAMLIT__TTL": "60"})
    assert (c.port, c.streamlit.ttl, c.streamlit.max_running, c.redis_url) == (9000, 60.0, 2, "redis://x:1")
    assert c.data_dir("a") == tmp_path.resolve() / "data" / "a"
    assert c.apps_dir == tmp_path.resolve() / "apps"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"port": "eighty"}, "port"),
        ({"port": 70000}, "port"),
        ({"streamlit": {"ttl": -1}}, "streamlit.ttl"),
        ({"monitor": {"cpu": [90, 80, 70]}}, "monitor.cpu"),
        ({"backend": "docker"}, "backend"),
        ({"colour": "red"}, "colour"),
        ({"auth": {"loopback_without_login": "perhaps"}}, "auth.loopback_without_login"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, data: dict, key: str) -> None:
    write(tmp_path, data)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(tmp_path, environ={})


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "{nope")
    with pytest.raises(ConfigError, match=r"config\.json is not valid JSON"):
        load_config(tmp_path, environ={})


def test_run_time_changes_are_checked(tmp_path: Path) -> None:
    c = load_config(tmp_path, environ={})
    assert change_config(c, {"streamlit": {"ttl": 90}}).streamlit.ttl == 90
    with pytest.raises(ConfigError, match="cannot be changed while running"):
        change_config(c, {"port": 1234})


NONSENSE = [
    ({"service_ports": [0, 0]}, "service_ports[0]", "HOMEHELPER_SERVICE_PORTS", "0,0"),
    ({"streamlit": {"max_running": 0}}, "streamlit.max_running", "HOMEHELPER_STREAMLIT__MAX_RUNNING", "0"),
    ({"redis_url": "notaurl"}, "redis_url", "HOMEHELPER_REDIS_URL", "notaurl"),
    ({"event_history": 10**12}, "event_history", "HOMEHELPER_EVENT_HISTORY", str(10**12)),
    ({"app_nice": 20}, "app_nice", "HOMEHELPER_APP_NICE", "-5"),  # no app above HomeHelper
    ({"monitor": {"interval": "nan"}}, "monitor.interval", "HOMEHELPER_MONITOR__INTERVAL", "inf"),
    ({"monitor": {"cpu": [50, 90, 101]}}, "monitor.cpu[2]", "HOMEHELPER_MONITOR__CPU", "50,90,101"),
    ({"node_id": "a b/c"}, "node_id", "HOMEHELPER_NODE_ID", "a b/c"),
    ({"streamlit_ports": [8150, 8160]}, "service_ports", "HOMEHELPER_STREAMLIT_PORTS", "8150,8160"),
    ({"service_ports": [7900, 8100]}, "service_ports", "HOMEHELPER_SERVICE_PORTS", "7900-8100"),
]


@pytest.mark.parametrize(("data", "key", "env", "raw"), NONSENSE)
def test_nonsense_is_refused_by_name_from_file_environment_and_api(tmp_path: Path, data: dict, key: str,
                                                                   env: str, raw: str) -> None:
    write(tmp_path, data)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        load_config(tmp_path, environ={})
    (tmp_path / "config" / "config.json").unlink()
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        load_config(tmp_path, environ={env: raw})
    top = next(iter(data))
    if top in EDITABLE:  # the API shares the conversion
        with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
            change_config(load_config(tmp_path, environ={}), data)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://pi.local:6380/1",
                                 "redis://hh:s3cr%40t@127.0.0.1:6379/0", "redis://:pw@localhost",
                                 "unix:///run/redis/redis.sock?db=2", "unix://hh:pw@/run/redis.sock"])
def test_redis_urls_of_every_kind_are_accepted(tmp_path: Path, url: str) -> None:
    assert load_config(tmp_path, environ={"HOMEHELPER_REDIS_URL": url}).redis_url == url
    assert change_config(load_config(tmp_path, environ={}), {"redis_url": url}).redis_url == url


@pytest.mark.parametrize("url", ["none", "", None])
def test_no_redis_is_spelt_none_empty_or_null(tmp_path: Path, url: str | None) -> None:
    write(tmp_path, {"redis_url": url})
    assert load_config(tmp_path, environ={}).redis_url is None


def test_keys_a_running_server_does_not_follow_are_refused_at_run_time(tmp_path: Path) -> None:
    c = load_config(tmp_path, environ={})
    for change in ({"event_history": 10}, {"node_id": "b"}, {"service_ports": [9000, 9010]}):
        with pytest.raises(ConfigError, match=f"'{next(iter(change))}' cannot be changed while running"):
            change_config(c, change)


@pytest.mark.parametrize("raw", [b"\xff\xfe{\x00", b'{"port": 8001}{"port": 8002}', b"[1, 2]", b"[" * 100_000])
def test_a_damaged_file_is_named_as_damaged(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_bytes(raw)
    with pytest.raises(ConfigError, match=r"config\.json") as exc:
        load_config(tmp_path, environ={})
    assert exc.value.detail["damaged"]


def test_default_root_inside_a_checkout_for_root_and_for_a_user(tmp_path: Path, monkeypatch) -> None:
    import homehelper.config as cfg

    assert default_root() == cfg.PACKAGE_DIR.parent / "state"  # these tests run in a checkout
    monkeypatch.setattr(cfg, "CHECKOUT", None)
    assert default_root({}, euid=0) == Path("/var/lib/homehelper")
    assert default_root({"HOME": "/home/pi"}, euid=1000) == Path("/home/pi/.local/state/homehelper")
    assert default_root({"HOME": "/home/pi", "XDG_STATE_HOME": "/srv/st"}, euid=1000) == Path("/srv/st/homehelper")
    assert default_root({"HOME": "/home/pi", "XDG_STATE_HOME": "rel"}, euid=1000) == \
        Path("/home/pi/.local/state/homehelper")  # XDG: a relative path is to be ignored
