"""The backup actor in a real supervisor on a real broadcast: scheduled runs on a MockClock with
rotation, a failure that reaches a real webhook receiver, and an app stopped (and its pre/post
commands run) around the copy of its data."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.backup import BackupActor, list_archives
from homehelper.actors.notifier import Notifier
from homehelper.backup.archive import backup_folder
from homehelper.config import BackupConfig, NotifyConfig
from homehelper.messages import (
    AppStarted,
    AppStopped,
    BackupCompleted,
    BackupFailed,
    GetApp,
    RestoreAppData,
    RunBackup,
    StartApp,
)
from tests.backup.helpers import make_root
from tests.web.conftest import build_tree

HOUR = 3600.0
BASE = 1_800_000_000.0  # the wall clock at the MockClock's zero


async def test_scheduled_backups_run_on_time_and_only_the_newest_are_kept(
        nursery: trio.Nursery, state_root: Path, autojump_clock: trio.testing.MockClock) -> None:
    config = attrs.evolve(make_root(state_root / "src"), backup=BackupConfig(schedule="every 6h", keep=2))
    broadcast = Broadcast()
    sup = Supervisor("root", emit=broadcast.publish)
    await nursery.start(sup.run)
    done: list[tuple[float, BackupCompleted]] = []
    with broadcast.subscribe(accept=lambda e: isinstance(e, (BackupCompleted, BackupFailed))) as sub:
        sup.start_child(ChildSpec("backup", lambda: BackupActor(config, broadcast.publish,
                                                                wall=lambda: BASE + trio.current_time())))
        async for event in sub:
            assert isinstance(event, BackupCompleted), event
            done.append((trio.current_time(), event))
            if len(done) == 4:
                break
    assert [round(t / HOUR) for t, _ in done] == [6, 12, 18, 24]
    assert [len(e.removed) for _, e in done] == [0, 0, 1, 1]  # keep=2: the third and fourth rotate one out each
    kept = [a["name"] for a in list_archives(backup_folder(config))]
    assert kept == [Path(e.path).name for _, e in reversed(done[2:])]  # the two newest, newest first


async def test_a_failed_scheduled_backup_notifies_through_a_real_receiver(
        nursery: trio.Nursery, state_root: Path, receiver: Any, autojump_clock: trio.testing.MockClock) -> None:
    unmounted = state_root / "usb-stick"  # configured, but not there: never made on the SD card below it
    config = attrs.evolve(make_root(state_root / "src"),
                          backup=BackupConfig(dir=str(unmounted), schedule="daily 03:00"))
    broadcast = Broadcast()
    sup = Supervisor("root", emit=broadcast.publish)
    await nursery.start(sup.run)
    notifier = Notifier(NotifyConfig(urls=(receiver.url(),)), broadcast)
    sup.start_child(ChildSpec("notifier", lambda: notifier))
    with broadcast.subscribe(accept=lambda e: isinstance(e, BackupFailed)) as sub:
        sup.start_child(ChildSpec("backup", lambda: BackupActor(config, broadcast.publish,
                                                                wall=lambda: BASE + trio.current_time())))
        failed = await sub.receive()
    assert "does not exist (is the disk mounted?)" in failed.error and failed.reason == "scheduled"
    assert 0 < trio.current_time() <= 24 * HOUR
    # the clock runs on meanwhile (later days fail too): the first message is the one to read
    body = (await receiver.wait(1))[0][1]
    assert "backup failed" in body["title"].lower()
    assert "usb-stick" in body["message"] and "does not exist" in body["message"]
    assert not unmounted.exists()


async def test_an_app_declaring_stop_is_stopped_for_the_copy_and_its_commands_run(
        nursery: trio.Nursery, state_root: Path) -> None:
    tree = await build_tree(nursery, state_root, 2, sensors=False)
    app = "app-00"
    await tree.apps.ref(app).ask(StartApp(app), timeout=30)
    manifest_file = tree.config.apps_dir / app / "homehelper.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["backup"] = {"stop": True, "pre": ['echo pre >> "$HH_DATA_DIR/hooks.txt"'],
                          "post": ['echo post >> "$HH_DATA_DIR/hooks.txt"']}
    manifest_file.write_text(json.dumps(manifest))
    tree.config.data_dir(app).mkdir(parents=True, exist_ok=True)
    sup = Supervisor("backups", emit=tree.broadcast.publish)
    await nursery.start(sup.run)
    ref = sup.start_child(ChildSpec("backup", lambda: BackupActor(tree.config, tree.broadcast.publish, tree.apps)))
    with tree.broadcast.subscribe(accept=lambda e: isinstance(e, (AppStopped, AppStarted, BackupCompleted))) as sub:
        with trio.fail_after(60):
            summary = await ref.ask(RunBackup(), timeout=60)
        seen = [type(e).__name__ for e in [await sub.receive() for _ in range(3)]]
    assert seen == ["AppStopped", "AppStarted", "BackupCompleted"]
    assert (await tree.apps.ref(app).ask(GetApp(app)))["state"] == "running"
    with tarfile.open(summary["path"]) as tar:
        copied = tar.extractfile(f"state/data/{app}/hooks.txt").read()  # type: ignore[union-attr]
    assert copied == b"pre\n"  # pre ran before the copy, post after it
    assert (tree.config.data_dir(app) / "hooks.txt").read_text() == "pre\npost\n"


async def test_a_failing_pre_command_fails_the_backup_and_starts_the_app_again(
        nursery: trio.Nursery, state_root: Path) -> None:
    tree = await build_tree(nursery, state_root, 1, sensors=False)
    app = "app-00"
    await tree.apps.ref(app).ask(StartApp(app), timeout=30)
    manifest_file = tree.config.apps_dir / app / "homehelper.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["backup"] = {"stop": True, "pre": ["exit 7"]}
    manifest_file.write_text(json.dumps(manifest))
    tree.config.data_dir(app).mkdir(parents=True, exist_ok=True)
    sup = Supervisor("backups", emit=tree.broadcast.publish)
    await nursery.start(sup.run)
    ref = sup.start_child(ChildSpec("backup", lambda: BackupActor(tree.config, tree.broadcast.publish, tree.apps)))
    with tree.broadcast.subscribe(accept=lambda e: isinstance(e, BackupFailed)) as sub:
        try:
            await ref.ask(RunBackup(), timeout=60)
            raise AssertionError("the backup should have failed")
        except Exception as exc:
            assert "exit status 7" in str(exc)
        failed = await sub.receive()
    assert "app-00" in failed.error and "backup pre command 1" in failed.error
    assert (await tree.apps.ref(app).ask(GetApp(app)))["state"] == "running"
    assert list_archives(backup_folder(tree.config)) == []  # no partial archive left behind
    assert not any(p.name.endswith(".partial") for p in backup_folder(tree.config).iterdir())


async def test_the_archive_is_written_and_read_off_the_trio_thread(
        nursery: trio.Nursery, state_root: Path, monkeypatch: Any) -> None:
    import threading

    from homehelper.backup import archive, restore

    threads: list[threading.Thread] = []
    real_add, real_read = archive.Writer.add_file, restore.read_archive

    def add_file(self: Any, src: Path, name: str) -> None:
        threads.append(threading.current_thread())
        real_add(self, src, name)

    def read_archive(*args: Any, **kw: Any) -> Any:
        threads.append(threading.current_thread())
        return real_read(*args, **kw)

    monkeypatch.setattr(archive.Writer, "add_file", add_file)
    monkeypatch.setattr(restore, "read_archive", read_archive)
    tree = await build_tree(nursery, state_root, 1, sensors=False)
    (tree.config.data_dir("app-00")).mkdir(parents=True, exist_ok=True)
    (tree.config.data_dir("app-00") / "a.txt").write_text("a")
    sup = Supervisor("backups", emit=tree.broadcast.publish)
    await nursery.start(sup.run)
    ref = sup.start_child(ChildSpec("backup", lambda: BackupActor(tree.config, tree.broadcast.publish, tree.apps)))
    summary = await ref.ask(RunBackup(), timeout=60)
    await ref.ask(RestoreAppData("app-00", summary["name"]), timeout=60)
    loop = threading.current_thread()
    assert len(threads) >= 3 and loop not in threads
