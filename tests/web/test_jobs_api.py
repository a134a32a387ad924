"""Job apps through the real server (`homehelper.serve`, process backend): the app list shows the job's
schedule, next and last run; `POST /api/apps/<id>/run` and the websocket's action `run` ("run now") run
it; `homehelper start JOB` (the CLI, over the websocket's action) arms the schedule and runs it now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.actors.test_job import write_job
from tests.backends.apps import HEALTHY_APP, wait_until, write_app
from tests.cli.test_cli import hh
from tests.web.test_approval import app, config_for, running
from tests.web.wsclient import WSClient


async def last_run(client: httpx.AsyncClient, app_id: str, count_before: float | None = None) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        a = await app(client, app_id)
        last = (a.get("job") or {}).get("last_run")
        return a if last and last["started"] != count_before and a["state"] != "running" else None
    return await wait_until(done, 60)


async def test_run_now_from_the_api_and_start_from_the_cli(state_root: Path) -> None:
    config = config_for(state_root)
    write_job(config.apps_dir, "nightly", "daily", timeout=60)
    write_job(config.apps_dir, "broken", "daily", env={"FAIL": "2"})
    write_app(config.apps_dir, "svc", HEALTHY_APP)
    async with running(config) as (rt, client):
        a = await app(client, "nightly")
        assert a["type"] == "job" and a["job"]["schedule"] == "daily" and a["job"]["timeout"] == 60
        assert a["state"] == "stopped" and a["job"].get("next_run") is None

        r = await client.post("/api/apps/nightly/run")
        assert r.status_code == 200, r.text
        assert r.json()["app"]["state"] == "running" and r.json()["app"]["job"]["armed"] is False
        a = await last_run(client, "nightly")
        assert a["job"]["last_run"]["result"] == "success" and a["state"] == "stopped"
        assert (config.data_dir("nightly") / "runs").read_text().count("\n") == 1

        # The CLI's start: the schedule is armed (next run: the coming midnight) and it runs now.
        out = await trio.to_thread.run_sync(lambda: hh("start", "nightly", "--port", str(config.port),
                                                       root=config.root, timeout=120))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "nightly: running"
        a = await last_run(client, "nightly", a["job"]["last_run"]["started"])
        assert a["state"] == "scheduled" and a["job"]["next_run"] % 3600 == 0  # 00:00 local (UTC+0 or whole hours)
        assert (config.data_dir("nightly") / "runs").read_text().count("\n") == 2
        saved = json.loads((config.registry_dir / "apps.json").read_text())
        assert saved["nightly"]["desired"] == "running"  # armed again after a restart of HomeHelper

        # "Run now" on the dashboard: the websocket's action `run`
        async with await WSClient.connect(rt.url.replace("http://", "ws://") + "/ws", [("Origin", rt.url)]) as ws:
            await ws.send(json.dumps({"type": "action", "id": 7, "app": "broken", "action": "run"}))
            while (reply := json.loads(await ws.recv())).get("type") == "progress":
                pass
        assert reply["type"] == "reply" and reply["id"] == 7, reply
        assert reply["data"]["app"]["state"] == "running" and reply["data"]["app"]["job"]["running"] is True
        a = await last_run(client, "broken")
        assert a["job"]["last_run"]["result"] == "exit-code" and a["job"]["last_run"]["exit_status"] == 2
        assert a["last_error"] == "exited with status 2"
        events = (await client.get("/api/events")).json()
        assert any(e["kind"] == "job_failed" and e["app_id"] == "broken" for e in events)

        # a service app cannot be "run": a clear 409, not a crash; an unknown action names "run" among the known
        r = await client.post("/api/apps/svc/run")
        assert r.status_code == 409 and "RunJob" in r.json()["message"]
        r = await client.post("/api/apps/nightly/frobnicate")
        assert r.status_code == 400 and "run" in r.json()["message"]
