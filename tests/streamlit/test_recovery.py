"""Restart recovery: Streamlit processes a killed HomeHelper left behind are ended at the next start."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from functools import partial

import psutil
import trio

from homehelper.actors import ChildSpec
from homehelper.messages import GetApp, GetUISlots, OpenUI
from homehelper.ui import UIManager, state
from homehelper.ui.launcher import streamlit_argv
from tests.fixtures.common import REPO
from tests.fixtures.streamlit import make_app, streamlit_pids


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_killed_homehelper_leaves_no_streamlit_behind_after_the_next_start(make_tree, state_root):
    host = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.streamlit._host", str(state_root), "orphan"], cwd=REPO,
        stdout=subprocess.PIPE, start_new_session=True)
    assert host.stdout is not None
    with trio.fail_after(60):
        line = b""
        while not line.endswith(b"\n"):
            chunk = await host.stdout.receive_some(256)
            assert chunk, "the host ended before the app was ready"
            line += chunk
    assert line.startswith(b"READY ")
    pid = int(line.split()[1])
    host.send_signal(signal.SIGKILL)  # no clean-up at all
    await host.wait()
    await host.stdout.aclose()
    assert alive(pid)  # left behind, as a real kill -9 leaves it
    assert streamlit_pids(str(state_root)) == [pid]
    async with make_tree() as tree:  # the next start: its UI manager reaps before it answers anything
        assert await tree.ui.ask(GetUISlots()) == {}
        assert not alive(pid)
        assert streamlit_pids(str(state_root)) == []
        assert state.read_all(tree.config.run_dir) == []


async def test_only_processes_that_still_match_their_record_are_ended(state_root):
    run_dir = state_root / "run"
    folder = make_app(state_root / "apps", "left")
    prefix = "/apps/left/ui"
    spawn = partial(trio.lowlevel.open_process, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
    # a leftover is nobody's child (its HomeHelper died): started through a shell that exits at once
    argv = " ".join(shlex.quote(a) for a in streamlit_argv(sys.executable, folder / "app.py", 8577, prefix))
    out = await trio.run_process(["sh", "-c", f"setsid {argv} >/dev/null 2>&1 & echo $!"], capture_stdout=True,
                                 start_new_session=True)
    leftover_pid = int(out.stdout)
    # a process whose pid was reused by something else: same pid file, different start time
    stranger = await spawn([sys.executable, "-c", "import time; time.sleep(60)", "streamlit", prefix])
    other = await spawn(["sleep", "60"])  # not streamlit at all
    try:
        state.record(run_dir, "left", leftover_pid, 8577, prefix)
        state.record(run_dir, "stranger", stranger.pid, 8578, prefix)
        data = (state.state_dir(run_dir) / "stranger.json").read_text().replace('"create_time": ', '"create_time": 1')
        (state.state_dir(run_dir) / "stranger.json").write_text(data)
        state.record(run_dir, "other", other.pid, 8579, "/apps/other/ui")
        (state.state_dir(run_dir) / "broken.json").write_text("{not json")
        start = time.monotonic()
        ended = await state.reap_leftovers(run_dir, grace=5.0)
        assert [e["app_id"] for e in ended] == ["left"]
        assert not alive(leftover_pid)
        assert time.monotonic() - start < 5.0  # SIGTERM was enough: no wait for the grace period
        assert stranger.poll() is None and other.poll() is None
        assert state.read_all(run_dir) == []  # every record is gone, matched or not
    finally:
        if alive(leftover_pid):
            os.kill(leftover_pid, signal.SIGKILL)
        for p in (stranger, other):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                await p.wait()


async def test_a_restarted_ui_manager_leaves_the_apps_of_this_run_alone(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("mine")
        await app.ask(OpenUI("mine"), timeout=30)
        pid = (await app.ask(GetApp("mine")))["pid"]
        await tree.root.stop_child("ui")
        fresh = tree.root.start_child(ChildSpec("ui", lambda: UIManager(tree.config, apps=tree.apps)))
        assert list(await fresh.ask(GetUISlots())) == ["mine"]  # reaping done; the running app keeps its slot
        assert alive(pid)
        assert (await app.ask(GetApp("mine")))["state"] == "running"
        assert [e and e["app_id"] for _, e in state.read_all(tree.config.run_dir)] == ["mine"]
