"""StreamlitApp with real streamlit processes: open, single flight, idle TTL, lifetime, stop, crash."""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
import trio

from homehelper.manifest import load_manifest
from homehelper.messages import ApplyManifest, GetApp, GetDeadlines, KeepAlive, OpenUI, StopApp
from tests.fixtures.streamlit import streamlit_pids


def recorded_pid(tree, app_id: str) -> int | None:
    """The pid in the process backend's record (what a restarted HomeHelper adopts)."""
    return json.loads((tree.config.run_dir / "procs" / f"{app_id}.json").read_text()).get("pid")


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.get(url)


async def test_open_starts_streamlit_and_replies_when_ready(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("hello")
        reply = await app.ask(OpenUI("hello"), timeout=30)
        assert reply["url"] == "/apps/hello/ui/"
        assert reply["state"] == "running"
        assert 299 <= reply["ttl_left"] <= 300
        assert reply["max_lifetime_left"] > 4 * 3600 - 5
        snap = await app.ask(GetApp("hello"))
        port, pid = snap["port"], snap["pid"]
        assert 8520 <= port <= 8579
        resp = await get(f"http://127.0.0.1:{port}/apps/hello/ui/_stcore/health")
        assert resp.status_code == 200  # ready means ready: no retry needed
        assert streamlit_pids(str(state_root)) == [pid]
        assert os.getpgid(pid) == pid  # its own process group, for the stop
        assert (state_root / "logs" / "hello" / "app.log").read_text().count("Uvicorn server started") == 1
        assert recorded_pid(tree, "hello") == pid
        assert ("app_started", "user") in tree.kinds("hello")
        assert [e.pid for e in tree.events if e.kind == "app_process_changed"] == [pid]
        # a second open while running: same process, no new start
        again = await app.ask(OpenUI("hello"), timeout=30)
        assert again["state"] == "running"
        assert streamlit_pids(str(state_root)) == [pid]


async def test_concurrent_opens_start_one_process(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("twice")
        replies = []

        async def open_one() -> None:
            replies.append(await app.ask(OpenUI("twice"), timeout=30))

        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(open_one)
        assert [r["state"] for r in replies] == ["running"] * 5
        assert len(streamlit_pids(str(state_root))) == 1
        assert [k for k in tree.kinds("twice") if k[0] == "app_started"] == [("app_started", "user")]


async def test_idle_ttl_stops_it_and_a_second_open_starts_it_again(make_tree, state_root):
    async with make_tree(ttl=1.5) as tree:
        app = tree.add_app("idle")
        first = await app.ask(OpenUI("idle"), timeout=30)
        assert first["ttl_left"] <= 1.5
        pid = (await app.ask(GetApp("idle")))["pid"]
        await tree.wait_event("app_state_changed", "idle", state="stopped")
        assert ("app_stopped", "idle_ttl") in tree.kinds("idle")
        assert streamlit_pids(str(state_root)) == []
        assert recorded_pid(tree, "idle") is None
        second = await app.ask(OpenUI("idle"), timeout=30)
        assert second["state"] == "running"
        assert streamlit_pids(str(state_root)) not in ([], [pid])


async def test_keep_alive_pushes_the_idle_deadline_back(make_tree, state_root):
    async with make_tree(ttl=1.0) as tree:
        app = tree.add_app("busy")
        await app.ask(OpenUI("busy"), timeout=30)
        start = trio.current_time()
        while trio.current_time() - start < 3.0:  # three TTLs of activity
            await app.tell(KeepAlive("busy"))
            await trio.sleep(0.25)
            assert (await app.ask(GetApp("busy")))["state"] == "running"
        await tree.wait_event("app_state_changed", "busy", timeout=5, state="stopped")
        assert ("app_stopped", "idle_ttl") in tree.kinds("busy")


async def test_max_lifetime_applies_even_while_active(make_tree, state_root):
    async with make_tree(ttl=60.0, max_lifetime=1.5) as tree:
        app = tree.add_app("long")
        await app.ask(OpenUI("long"), timeout=30)

        async def busy() -> None:  # a person using it all along
            while True:
                await app.tell(KeepAlive("long"))
                await trio.sleep(0.2)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            await tree.wait_event("app_stopped", "long", timeout=10, reason="max_lifetime")
            nursery.cancel_scope.cancel()
        assert streamlit_pids(str(state_root)) == []


async def test_user_stop_terminates_the_process_group(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("stopme")
        await app.ask(OpenUI("stopme"), timeout=30)
        pid = (await app.ask(GetApp("stopme")))["pid"]
        reply = await app.ask(StopApp("stopme"), timeout=15)
        assert reply["state"] == "stopped"
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
        stopped = [e for e in tree.events if e.kind == "app_stopped"]
        assert [(e.reason, e.exit_status) for e in stopped] == [("user", 0)]
        assert tree.events[-1].kind == "app_state_changed" and tree.events[-1].state == "stopped"
        # stopping a stopped app is harmless
        assert (await app.ask(StopApp("stopme")))["state"] == "stopped"


async def test_a_process_that_dies_is_reported_crashed(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("fragile")
        await app.ask(OpenUI("fragile"), timeout=30)
        pid = (await app.ask(GetApp("fragile")))["pid"]
        os.kill(pid, signal.SIGKILL)
        await tree.wait_event("app_state_changed", "fragile", timeout=5, state="stopped")
        crashed = [e for e in tree.events if e.kind == "app_stopped"]
        assert [(e.reason, e.exit_status) for e in crashed] == [("crashed", -9)]
        assert (await app.ask(GetApp("fragile")))["last_error"] == "Streamlit exited with status -9"
        assert (await app.ask(OpenUI("fragile"), timeout=30))["state"] == "running"


async def test_a_new_manifest_ttl_applies_to_the_running_app(make_tree, state_root):
    async with make_tree(ttl=1.5) as tree:  # the configured TTL, for manifests that set none
        app = tree.add_app("retune", ttl=20)
        assert (await app.ask(OpenUI("retune"), timeout=30))["ttl_left"] > 19
        folder = tree.config.apps_dir / "retune"
        (folder / "homehelper.json").write_text(json.dumps({"id": "retune", "type": "streamlit"}))
        await app.ask(ApplyManifest(load_manifest(folder)))  # its ttl removed: 1.5 s from now on
        snap = await app.ask(GetApp("retune"))
        assert snap["ttl"] == 1.5 and snap["ttl_left"] <= 1.5
        assert (await tree.ttl.ask(GetDeadlines()))["ui:retune:idle"] <= 1.5
        await tree.wait_event("app_stopped", "retune", timeout=5, reason="idle_ttl")  # fired at the new time
