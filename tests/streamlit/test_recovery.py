"""Restart recovery: a Streamlit app that outlived its HomeHelper is the backend's, and the next
HomeHelper adopts it (never a second process); a restarted UI manager gives running apps their slots back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil
import trio

from homehelper.actors import ChildSpec
from homehelper.actors.streamlit_slots import StreamlitSlots
from homehelper.backends import AppSpec, ProcessBackend
from homehelper.messages import GetApp, GetSlots, OpenUI
from tests.fixtures.common import REPO
from tests.fixtures.streamlit import make_app, streamlit_config, streamlit_pids


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def killed_host(state_root, app_id: str) -> int:
    """A HomeHelper (tests.streamlit._host) that opens `app_id`, then is killed with SIGKILL: the pid it ran."""
    host = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.streamlit._host", str(state_root), app_id], cwd=REPO,
        stdout=subprocess.PIPE, start_new_session=True)
    assert host.stdout is not None
    with trio.fail_after(60):
        line = b""
        while not line.endswith(b"\n"):
            chunk = await host.stdout.receive_some(256)
            assert chunk, "the host ended before the app was ready"
            line += chunk
    assert line.startswith(b"READY ")
    host.send_signal(signal.SIGKILL)  # no clean-up at all
    await host.wait()
    await host.stdout.aclose()
    return int(line.split()[1])


async def test_a_homehelper_restarted_while_an_app_runs_adopts_it_and_its_idle_ttl_ends_it(make_tree, state_root):
    pid = await killed_host(state_root, "orphan")
    assert alive(pid)  # left running, as a unit outlives a HomeHelper restart
    assert streamlit_pids(str(state_root)) == [pid]
    async with make_tree(apps=("orphan",), ttl=3.0) as tree:  # the next start: its scan finds the app
        app = tree.apps.ref("orphan")
        snap = await app.ask(GetApp("orphan"))
        assert snap["state"] == "running" and snap["pid"] == pid and 8520 <= snap["port"] <= 8579
        assert list(await tree.slots.ask(GetSlots())) == ["orphan"]  # it counts against the cap
        reply = await app.ask(OpenUI("orphan"), timeout=30)
        assert reply["state"] == "running"
        assert streamlit_pids(str(state_root)) == [pid]  # adopted, not duplicated
        assert [k for k in tree.kinds("orphan") if k[0] == "app_started"] == []
        await tree.wait_event("app_stopped", "orphan", timeout=15, reason="idle_ttl")  # its deadlines hold too
        assert not alive(pid)
        assert streamlit_pids(str(state_root)) == []
        assert await tree.slots.ask(GetSlots()) == {}


async def test_a_restarted_ui_manager_leaves_the_apps_of_this_run_alone(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("mine")
        await app.ask(OpenUI("mine"), timeout=30)
        pid = (await app.ask(GetApp("mine")))["pid"]
        await tree.root.stop_child("slots")
        fresh = tree.root.start_child(ChildSpec("slots", lambda: StreamlitSlots(tree.config, apps=tree.apps)))
        assert list(await fresh.ask(GetSlots())) == ["mine"]  # the running app keeps its slot
        assert alive(pid)
        assert (await app.ask(GetApp("mine")))["state"] == "running"
        assert json.loads((tree.config.run_dir / "procs" / "mine.json").read_text())["pid"] == pid


async def test_a_found_process_whose_port_cannot_be_read_is_stopped_not_adopted(make_tree, state_root):
    # a damaged or hand-made record: what runs under the app's name is no Streamlit HomeHelper started
    config = streamlit_config(state_root)
    backend = ProcessBackend(config.run_dir / "procs")
    folder = make_app(config.apps_dir, "odd")
    await backend.prepare(AppSpec(app_id="odd", argv=("/bin/sleep", "60"), cwd=folder, env=(),
                                  data_dir=config.data_dir("odd"), log_dir=config.logs_dir("odd")))
    await backend.start("odd")
    pid = (await backend.status("odd")).pid
    assert pid is not None and alive(pid)
    async with make_tree(apps=("odd",)) as tree:
        app = tree.apps.ref("odd")
        snap = await app.ask(GetApp("odd"))
        assert snap["state"] == "stopped" and snap["pid"] is None
        assert not alive(pid)
        assert await tree.slots.ask(GetSlots()) == {}
