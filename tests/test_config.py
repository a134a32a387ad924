"""Config: file < environment < flags, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homehelper.config import change_config, load_config
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
