"""`homehelper config APP [key=value ...]` as a real subprocess against a real `homehelper serve`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_approve import serving
from tests.cli.test_cli import hh
from tests.fixtures.redis import free_port

OPTIONS = {"interval": {"type": "int", "default": 5, "min": 1, "max": 3600, "description": "seconds"},
           "rooms": {"type": "list", "default": []},
           "api_key": {"type": "password"}}


def test_config_shows_sets_and_refuses_naming_the_option(tmp_path: Path) -> None:
    apps, root, port = tmp_path / "apps", tmp_path / "state", free_port()
    (apps / "weather").mkdir(parents=True)
    (apps / "weather" / "main.py").write_text("import time\ntime.sleep(60)\n")
    (apps / "weather" / "homehelper.json").write_text(json.dumps({"id": "weather", "type": "service",
                                                                  "options": OPTIONS}))

    def run(*args: str, **kw: object):
        return hh("config", *args, "--port", str(port), root=root, **kw)

    with serving(root, apps, port):
        shown = run("weather")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == ["interval (int) = 5  seconds", "rooms (list) = []",
                                             "api_key (password) = not set"]
        out = run("weather", "interval=30", "rooms=kitchen,hall")
        assert out.returncode == 0 and out.stdout.strip() == "weather: set interval, rooms", out.stderr
        out = run("weather", "api_key=-", input="hunter2-secret\n")
        assert out.returncode == 0, out.stderr
        shown = run("weather", "--json")
        data = json.loads(shown.stdout)
        assert data["values"] == {"interval": 30, "rooms": ["kitchen", "hall"]}
        assert data["secrets"] == {"api_key": "set"} and "hunter2" not in shown.stdout
        assert "api_key (password) = set" in run("weather").stdout

        bad = run("weather", "interval=9000")
        assert bad.returncode == 1 and "interval: must be from 1 to 3600" in bad.stderr
        assert run("weather", "interval=soon").returncode == 2
        unknown = run("weather", "colour=red")
        assert unknown.returncode == 2 and "colour: unknown option" in unknown.stderr
        assert run("ghost").returncode == 1
        assert json.loads(run("weather", "--json").stdout)["values"]["interval"] == 30  # nothing changed
    assert run("weather").returncode == 3  # the server is gone
