"""An app added from a local git repository (made here) through the API: previewed before anything is
installed, installed, run; an update to a commit that fails its health check rolls back to the
previous version with the app's data as it was. On both backends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import trio

from homehelper.messages import AppAdded, AppCrashed, AppHealthChanged, AppUpdated, AppUpdateFailed
from homehelper.sources.versions import current_version, read_sources
from tests.fixtures.tree import wait_until
from tests.sources.helpers import BAD_MAIN, GOOD_MAIN, commit, manifest
from tests.web.conftest import start_live


async def test_added_from_git_runs_and_a_failing_update_rolls_back_with_data(
        nursery: trio.Nursery, state_root: Path, any_backend: Any) -> None:
    # under systemd too: apps/<id> is a symlink into apps/.versions, which the unit's walls hide
    live = await start_live(nursery, state_root, n_apps=0, backend=any_backend)
    config, rec = live.tree.config, live.tree.recorder
    assert live.tree.deps.auth is not None
    token = live.tree.deps.auth.create_token("test")["token"]
    repo = state_root / "repo"
    v1 = commit(repo, {"homehelper.json": manifest(), "main.py": GOOD_MAIN}, "v1")

    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=120) as c:
        r = await c.post("/api/apps/add", json={"source": str(repo)})
        assert r.status_code == 200, r.text
        preview = r.json()["preview"]
        assert (preview["app_id"], preview["type"], preview["commit"], preview["kind"]) == ("notes", "service", v1,
                                                                                            "git")
        assert preview["permissions"] == [] and preview["devices"] == []
        assert not (config.apps_dir / "notes").exists()  # a preview installs nothing

        r = await c.post("/api/apps/add", json={"token": preview["token"]})
        assert r.status_code == 200, r.text
        assert r.json()["added"] == {"app_id": "notes", "version": v1}
        await rec.wait(AppAdded, "notes")
        assert current_version(config, "notes") == v1
        assert (await c.get("/api/apps/notes")).json()["state"] == "stopped"

        assert (await c.post("/api/apps/notes/start")).status_code == 200
        await rec.wait(AppHealthChanged, "notes", healthy=True, timeout=60)
        notes = config.data_dir("notes") / "notes.txt"
        assert await wait_until(lambda: notes.exists() and notes.read_text() == "written by v1\n")

        r = await c.post("/api/apps/notes/check-update")
        assert r.json() == {"app_id": "notes", "current": v1, "latest": v1, "update_available": False}
        v2 = commit(repo, {"main.py": BAD_MAIN}, "v2 breaks")
        r = await c.post("/api/apps/notes/check-update")
        assert r.json()["update_available"] is True and r.json()["latest"] == v2

        mark = len(rec.events)
        r = await c.post("/api/apps/notes/update")
        assert r.status_code == 409, r.text
        assert r.json()["detail"]["rolled_back_to"] == v1
        failed = await rec.wait_after(mark, AppUpdateFailed, "notes")
        assert failed.version == v2 and failed.rolled_back_to == v1 and "crashed" in failed.error
        assert rec.of(lambda e: isinstance(e, AppCrashed) and e.app_id == "notes")  # v2 did run, and fail
        assert current_version(config, "notes") == v1
        assert notes.read_text() == "written by v1\n"  # what v2 wrote is gone: the data copy is back
        await rec.wait_after(mark, lambda e: isinstance(e, AppHealthChanged) and e.app_id == "notes"
                             and e.healthy and rec.events.index(e) > rec.events.index(failed) - 20, timeout=60)
        assert (await c.get("/api/apps/notes")).json()["state"] == "running"

        src = (await c.get("/api/apps/notes/source")).json()
        assert src["source"]["version"] == v1 and src["source"]["url"] == str(repo)
        assert {v["version"] for v in src["versions"]} == {v1, v2}  # the failed one stays selectable

        # a good v3 updates for real; then the previous version is one switch away
        v3 = commit(repo, {"main.py": GOOD_MAIN.replace("v1 up", "v3 up")}, "v3")
        r = await c.post("/api/apps/notes/update")
        assert r.status_code == 200, r.text
        assert r.json() == {"app_id": "notes", "updated": True, "version": v3, "previous": v1}
        await rec.wait(AppUpdated, "notes", version=v3)
        r = await c.post("/api/apps/notes/update", json={"to": v1})
        assert r.status_code == 200 and r.json()["version"] == v1, r.text
        assert current_version(config, "notes") == v1
        saved = read_sources(config)["notes"]
        assert (saved["version"], saved["previous"]) == (v1, v3)
        assert os.stat(config.registry_dir / "sources.json").st_mode & 0o077 == 0
