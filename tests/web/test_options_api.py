"""Options through the API on real service apps (process backend): a good change is saved and
restarts the app, which reads the new value; a bad one is refused naming the option and the
running app is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from homehelper.messages import Rescan
from tests.backends.apps import wait_until

from .conftest import Live
from .test_options_secrets import OPTIONS, READER, _seen


async def _setup(live: Live, client: httpx.AsyncClient) -> tuple[dict[str, str], Path]:
    folder = live.tree.config.apps_dir / "weather"
    folder.mkdir()
    (folder / "main.py").write_text(READER)
    (folder / "homehelper.json").write_text(json.dumps({"id": "weather", "type": "service", "options": OPTIONS}))
    await live.tree.deps.scanner.ask(Rescan())
    return {"X-CSRF-Token": await live.login(client)}, live.tree.config.data_dir("weather")


async def test_a_change_restarts_the_app_which_reads_it_and_a_bad_one_changes_nothing(live_services: Live) -> None:
    live = live_services
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        h, data = await _setup(live, client)
        got = (await client.get("/api/apps/weather/options")).json()
        assert [o["name"] for o in got["options"]] == ["interval", "api_key"]
        assert got["values"] == {"interval": 5} and got["secrets"] == {"api_key": "not set"}
        assert (await client.post("/api/apps/weather/start", headers=h)).status_code == 200
        first = await wait_until(lambda: _seen(data), timeout=60)
        assert first["options"] == {"interval": 5} and first["secret"] is None

        r = await client.put("/api/apps/weather/options", json={"interval": 9000, "api_key": 5}, headers=h)
        assert r.status_code == 400
        assert r.json()["detail"]["errors"] == ["interval: must be from 1 to 3600, got 9000",
                                                "api_key: must be a string"]
        r = await client.put("/api/apps/weather/options", json={"colour": "red"}, headers=h)
        assert r.status_code == 400 and "colour: unknown option" in r.json()["message"]
        for body in ("[1]", '"x"', "{", '{"interval": ' + "9" * 5000 + "}", "[" * 30000 + "]" * 30000):
            r = await client.put("/api/apps/weather/options", content=body,
                                 headers={**h, "Content-Type": "application/json"})
            assert r.status_code == 400
        assert (await client.get("/api/apps/weather")).json()["state"] == "running"
        assert _seen(data)["pid"] == first["pid"]  # untouched: not restarted
        assert not (live.tree.config.root / "options" / "weather.json").exists()

        r = await client.put("/api/apps/weather/options", json={"interval": 42}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["restarted"] is True and r.json()["values"] == {"interval": 42}
        again = await wait_until(lambda: (s := _seen(data)) and s["pid"] != first["pid"] and s, timeout=60)
        assert again["options"] == {"interval": 42}
        assert json.loads((live.tree.config.root / "options" / "weather.json").read_text()) == {"interval": 42}
        events = (await client.get("/api/events")).json()
        changed = [e for e in events if e["kind"] == "app_options_changed"]
        assert changed and changed[-1]["names"] == ["interval"] and changed[-1]["restarted"] is True

        # null: back to the default; without CSRF: refused
        assert (await client.put("/api/apps/weather/options", json={"interval": None})).status_code == 403
        r = await client.put("/api/apps/weather/options", json={"interval": None}, headers=h)
        assert r.json()["values"] == {"interval": 5}
        assert (await client.get("/api/apps/ghost/options")).status_code == 404

        # A damaged values file: set aside, said as an event, the defaults shown; a secret stays apart.
        values = live.tree.config.root / "options" / "weather.json"
        values.write_text("{garbage")
        r = await client.get("/api/apps/weather/options")
        assert r.status_code == 200 and r.json()["values"] == {"interval": 5}
        assert list(values.parent.glob("weather.json.corrupt-*"))
        events = (await client.get("/api/events")).json()
        assert any(e["kind"] == "state_file_damaged" and e["path"] == str(values) for e in events)
        await client.post("/api/apps/weather/stop", headers=h)
