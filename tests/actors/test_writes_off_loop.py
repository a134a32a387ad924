"""Starting and stopping an app writes its state files on worker threads, never on the trio thread,
and neither searches every process nor waits for the kernel there."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from homehelper import storage
from homehelper.backends import logs, proctree
from homehelper.messages import StartApp, StopApp
from tests.actors.test_stop_sticks import config, reaches, saved, tree  # noqa: F401 - the fixture
from tests.backends.apps import HEALTHY_APP, wait_until, write_app


async def test_the_start_path_writes_registry_ports_and_process_records_off_the_trio_thread(
        config: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    writes: list[tuple[Path, threading.Thread]] = []
    real = storage.atomic_write_bytes

    def recording(path: Path, data: bytes, mode: int = 0o644) -> None:
        writes.append((path, threading.current_thread()))
        real(path, data, mode)

    monkeypatch.setattr(storage, "atomic_write_bytes", recording)
    searches: list[str] = []  # a search reads every process's environment: never for a start of ours
    real_find = proctree.find_leader
    monkeypatch.setattr(proctree, "find_leader", lambda token: searches.append(token) or real_find(token))
    closes: list[threading.Thread] = []  # closing an inotify descriptor waits for the kernel
    real_close = logs._Inotify.close
    monkeypatch.setattr(logs._Inotify, "close", lambda self: closes.append(threading.current_thread())
                        or real_close(self))
    write_app(config.apps_dir, "web", HEALTHY_APP)
    async with tree(config) as (rt, events):
        loop_thread = threading.current_thread()
        await rt.apps.ref("web").ask(StartApp("web"), timeout=60)
        await reaches(events, "web", "running")
        await wait_until(lambda: saved(config, "web")["desired"] == "running")
        await rt.apps.ref("web").ask(StopApp("web"), timeout=60)
        await wait_until(lambda: saved(config, "web")["desired"] == "stopped")
    written = {p.name for p, _ in writes}
    assert {"apps.json", "ports.json", "web.json"} <= written, written
    on_loop = [str(p) for p, t in writes if t is loop_thread]
    assert on_loop == []
    assert searches == []
    assert closes and loop_thread not in closes


async def test_a_burst_of_changes_costs_at_most_two_writes_and_the_last_value_wins(tmp_path: Path) -> None:
    import trio

    path = tmp_path / "f.json"
    threads: list[threading.Thread] = []

    def write(p: Path, data: Any) -> None:
        threads.append(threading.current_thread())
        storage.atomic_write_json(p, data)

    writer = storage.LatestWriter(path, write)
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        for i in range(50):
            writer.submit({"n": i})
        await writer.flush()
        n.cancel_scope.cancel()
    assert storage.read_json(path) == {"n": 49}
    assert 1 <= writer.writes <= 2
    assert threading.main_thread() not in threads


def test_outside_a_running_writer_a_submit_writes_at_once(tmp_path: Path) -> None:
    writer = storage.LatestWriter(tmp_path / "f.json")
    writer.submit([1, 2])
    assert storage.read_json(tmp_path / "f.json") == [1, 2] and writer.writes == 1
