"""The cap on running Streamlit apps: LRU eviction of idle apps, a clear refusal, low memory."""

from __future__ import annotations

import pytest
import trio

from homehelper.errors import Unavailable
from homehelper.messages import GetApp, GetSlots, KeepAlive, OpenUI
from tests.fixtures.streamlit import streamlit_pids


async def test_the_cap_evicts_the_least_recently_used_idle_app(make_tree, state_root):
    async with make_tree(max_running=2, busy_window=0.0) as tree:
        a, b, c = (tree.add_app(x) for x in ("a", "b", "c"))
        await a.ask(OpenUI("a"), timeout=30)
        await b.ask(OpenUI("b"), timeout=30)
        await trio.sleep(0.05)
        await a.ask(KeepAlive("a"))  # a used after b: b is the least recently used
        await c.ask(OpenUI("c"), timeout=30)
        assert (await b.ask(GetApp("b")))["state"] == "stopped"
        assert (await a.ask(GetApp("a")))["state"] == "running"
        assert (await c.ask(GetApp("c")))["state"] == "running"
        assert ("app_stopped", "evicted") in tree.kinds("b")
        assert sorted(await tree.slots.ask(GetSlots())) == ["a", "c"]
        assert len(streamlit_pids(str(state_root))) == 2
        # opening the evicted one again evicts the next least recently used (a, used before c)
        await b.ask(OpenUI("b"), timeout=30)
        assert (await a.ask(GetApp("a")))["state"] == "stopped"
        assert ("app_stopped", "evicted") in tree.kinds("a")


async def test_when_every_app_is_in_use_the_open_is_refused_with_a_reason(make_tree, state_root):
    async with make_tree(max_running=1, busy_window=600.0) as tree:
        a, b = tree.add_app("a"), tree.add_app("b")
        await a.ask(OpenUI("a"), timeout=30)
        with pytest.raises(Unavailable) as err:
            await b.ask(OpenUI("b"), timeout=30)
        assert "1 Streamlit apps are running (a)" in err.value.message
        assert "streamlit.max_running" in err.value.message
        assert err.value.status == 503
        assert (await a.ask(GetApp("a")))["state"] == "running"  # nothing lost
        assert (await b.ask(GetApp("b")))["state"] == "stopped"
        assert len(streamlit_pids(str(state_root))) == 1
        assert sorted(await tree.slots.ask(GetSlots())) == ["a"]


async def test_low_memory_evicts_idle_apps_and_refuses_new_ones(make_tree, state_root):
    # A Pi short of memory cannot be made on this machine: the reading is the one stand-in here.
    free_mb = [4096.0]
    async with make_tree(max_running=3, busy_window=0.0, min_available_mb=256, memory=lambda: free_mb[0]) as tree:
        a, b, c = (tree.add_app(x) for x in ("a", "b", "c"))
        await a.ask(OpenUI("a"), timeout=30)
        await b.ask(OpenUI("b"), timeout=30)
        await trio.sleep(0.05)
        await b.ask(KeepAlive("b"))
        free_mb[0] = 100.0  # below the floor: idle apps go, least recently used first, until none is left
        with pytest.raises(Unavailable) as err:
            await c.ask(OpenUI("c"), timeout=30)
        assert "only 100 MB of memory available" in err.value.message
        assert [k for k in tree.kinds() if k == ("app_stopped", "evicted")] == [("app_stopped", "evicted")] * 2
        stopped = [e.app_id for e in tree.events if e.kind == "app_stopped"]
        assert stopped == ["a", "b"]
        assert streamlit_pids(str(state_root)) == []
        free_mb[0] = 4096.0  # memory back: opens work again
        assert (await c.ask(OpenUI("c"), timeout=30))["state"] == "running"


async def test_while_apps_run_memory_is_watched_and_idle_apps_are_evicted(make_tree, state_root):
    free_mb = [4096.0]
    reads, checked = [0], trio.Event()

    def memory() -> float:  # the manager's reading; the test knows when the watcher has looked
        reads[0] += 1
        if reads[0] >= 2:
            checked.set()
        return free_mb[0]

    async with make_tree(busy_window=0.0, memory=memory, memory_check=0.2) as tree:
        a = tree.add_app("a")
        await a.ask(OpenUI("a"), timeout=30)
        reads[0] = 0
        with trio.fail_after(5):
            await checked.wait()  # two checks pass: plenty of memory
        assert (await a.ask(GetApp("a")))["state"] == "running"
        free_mb[0] = 10.0  # no open needed: the watcher finds it
        await tree.wait_event("app_stopped", "a", timeout=5, reason="evicted")
        assert streamlit_pids(str(state_root)) == []
        assert await tree.slots.ask(GetSlots()) == {}


async def test_an_open_told_at_the_cap_is_an_event_and_the_app_actor_lives_on(make_tree, state_root):
    # The proxy tells OpenUI (nobody waits for the answer): a refusal must not crash the app's actor.
    async with make_tree(max_running=1, busy_window=600.0) as tree:
        a, b = tree.add_app("a"), tree.add_app("b")
        await a.ask(OpenUI("a"), timeout=30)
        await b.tell(OpenUI("b"))
        failed = await tree.wait_event("command_failed", "b", timeout=30)
        assert failed.command == "OpenUI" and "streamlit.max_running" in failed.error
        assert (await b.ask(GetApp("b")))["state"] == "stopped"
        assert tree.apps.children()["b"]["starts"] == 1  # never crashed, never restarted
        assert not [e for e in tree.events if e.kind == "child_crashed"]
