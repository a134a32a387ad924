"""A Streamlit app under systemd: the same unit, sandbox and limits as a service app, its log in
logs/<id>/app.log, served through the proxy."""

from __future__ import annotations

import pytest
import trio

from homehelper.actors.streamlit_spec import streamlit_spec, ui_prefix, wait_ready
from homehelper.backends.units import unit_name
from homehelper.manifest import load_manifest
from homehelper.messages import GetApp, GetSlots, StopApp
from tests.fixtures.streamlit import make_app, streamlit_config
from tests.web.test_proxy import enter_app, logged_in, open_app, rerun_until_text, ws_base, ws_connect, ws_headers

pytestmark = pytest.mark.systemd

SOURCE = """\
import os
import pathlib
import streamlit as st

home = pathlib.Path(os.environ["HOME"])
(home / "written.txt").write_text("ok")  # HOME is the app's data folder: writable under the walls
print("stdout of walled", flush=True)
st.title("Hello from walled")
"""


async def test_a_streamlit_app_runs_as_a_sandboxed_unit_with_its_limits_and_logs(
        make_tree, systemd_backend, systemd_user, state_root):
    walled = ("walled", SOURCE, {"resources": {"memory_mb": 384, "tasks": 48}})
    async with make_tree(apps=(walled, "plain"), web=True, backend=systemd_backend) as tree:  # plain: no resources
        client = await logged_in(tree)
        reply = await open_app(client, "walled")
        assert reply["state"] == "running"
        unit = unit_name("walled", systemd_backend.prefix)
        shown = systemd_user.systemctl("show", "-p", "MemoryMax,ProtectSystem,TasksMax,ActiveState,MainPID",
                                       unit).stdout
        props = dict(line.split("=", 1) for line in shown.split())
        assert props["MemoryMax"] == str(384 * 1024 * 1024) and props["ProtectSystem"] == "strict"
        assert props["TasksMax"] == "48" and props["ActiveState"] == "active"
        snap = await tree.apps.ref("walled").ask(GetApp("walled"))
        assert snap["pid"] == int(props["MainPID"]) and snap["sandbox"] == "sandboxed"
        assert snap["backend"] == "systemd" and snap["memory_mb"] == 384
        # it renders through the proxy
        appc = await enter_app(client, "walled")
        page = await appc.get("/apps/walled/ui/")
        assert page.status_code == 200
        async with ws_connect(ws_base(appc) + "/apps/walled/ui/_stcore/stream", ws_headers(appc),
                              ["streamlit"]) as ws:
            await rerun_until_text(ws, "Hello from walled")
        assert (state_root / "data" / "walled" / "written.txt").read_text() == "ok"
        # its output is the app's log: the dashboard's Logs button shows it
        r = await client.get("/api/apps/walled/logs?lines=200")
        assert r.status_code == 200
        lines = r.json()["lines"]
        assert any("stdout of walled" in line for line in lines), lines
        assert any("Local URL" in line or "You can now view" in line for line in lines), lines
        # no resources in its manifest: 512 MB, not the service default
        assert (await open_app(client, "plain"))["state"] == "running"
        shown = systemd_user.systemctl("show", "-p", "MemoryMax", unit_name("plain", systemd_backend.prefix)).stdout
        assert shown.strip() == f"MemoryMax={512 * 1024 * 1024}"
        await tree.apps.ref("walled").ask(StopApp("walled"), timeout=30)
        assert systemd_user.systemctl("is-active", unit).stdout.strip() in ("inactive", "failed")
        await appc.aclose()
        await client.aclose()


async def test_a_unit_left_running_by_a_killed_homehelper_is_adopted_not_started_again(
        make_tree, systemd_backend, systemd_user, state_root):
    config = streamlit_config(state_root)
    manifest = load_manifest(make_app(config.apps_dir, "kept"))
    await systemd_backend.prepare(streamlit_spec(config, manifest, 8577))  # what the killed HomeHelper started
    await systemd_backend.start("kept")
    before = await systemd_backend.status("kept")
    assert before.running

    async def no_exit() -> int | None:
        return None

    # it had answered before its HomeHelper died
    await wait_ready(8577, ui_prefix("kept"), config.logs_dir("kept") / "app.log", 0, 30, trio.Event(), no_exit)
    async with make_tree(apps=("kept",), web=True, backend=systemd_backend) as tree:
        app = tree.apps.ref("kept")
        snap = await app.ask(GetApp("kept"))
        assert snap["state"] == "running" and snap["pid"] == before.pid and snap["port"] == 8577
        assert list(await tree.slots.ask(GetSlots())) == ["kept"]
        client = await logged_in(tree)
        assert (await open_app(client, "kept"))["state"] == "running"
        appc = await enter_app(client, "kept")
        assert (await appc.get("/apps/kept/ui/_stcore/health")).text == "ok"  # the proxy finds its port
        assert (await systemd_backend.status("kept")).pid == before.pid  # one process, never a second
        assert [k for k in tree.kinds("kept") if k[0] == "app_started"] == []
        await appc.aclose()
        await client.aclose()
