"""The settings actor: the one owner of the live config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from homehelper.actors import Broadcast, open_mailbox
from homehelper.actors.settings import Settings
from homehelper.config import Config, load_config
from homehelper.errors import ConfigError, Unavailable
from homehelper.messages import ChangeConfig, ConfigChanged, GetConfig


async def test_changes_sent_at_once_are_applied_one_after_the_other(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(json.dumps({"port": 8023, "node_id": "kitchen"}))
    config = load_config(tmp_path, environ={})
    broadcast = Broadcast()
    settings = Settings(config, broadcast.publish)
    seen: list[tuple[float, float]] = []

    async def follower(old: Config, new: Config) -> None:
        await trio.lowlevel.checkpoint()  # a follower may wait: the next change still waits for it
        seen.append((old.streamlit.ttl, new.streamlit.ttl))

    settings.follow(follower)
    ref, inbox = open_mailbox("settings")
    with broadcast.subscribe() as sub:
        async with trio.open_nursery() as n:
            n.start_soon(settings.run, inbox)
            async with trio.open_nursery() as clients:
                for ttl in range(10, 60):
                    clients.start_soon(ref.ask, ChangeConfig({"streamlit": {"ttl": ttl}, "monitor": {"history": ttl}}))
            current = await ref.ask(GetConfig())
            n.cancel_scope.cancel()
        announced = [e for e in await sub.receive_batch() if isinstance(e, ConfigChanged)]
    assert len(seen) == 50 and all(old != new for old, new in seen)
    assert [new for _, new in seen][-1] == current.streamlit.ttl == settings.current.streamlit.ttl
    assert [old for old, _ in seen[1:]] == [new for _, new in seen[:-1]]  # each saw the one before
    assert len(announced) == 50
    saved = json.loads(config.config_file.read_text())
    assert saved == {"port": 8023, "node_id": "kitchen", "streamlit": {"ttl": current.streamlit.ttl},
                     "monitor": {"history": current.streamlit.ttl}}


async def test_a_refused_or_unsaved_change_changes_nothing(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    settings = Settings(config, Broadcast().publish)
    with pytest.raises(ConfigError, match=r"'streamlit\.max_running'"):
        await settings.change({"streamlit": {"max_running": 0}})
    (tmp_path / "config").write_text("a file where the folder should be")
    with pytest.raises(Unavailable, match="could not save"):
        await settings.change({"log_level": "DEBUG"})
    assert settings.current is config


async def test_a_file_damaged_while_running_is_set_aside_not_overwritten(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    settings = Settings(config, Broadcast().publish)
    config.config_file.parent.mkdir(parents=True)
    config.config_file.write_bytes(b"\x00\x01 not json")
    await settings.change({"log_level": "DEBUG"})
    assert json.loads(config.config_file.read_text()) == {"log_level": "DEBUG"}
    (aside,) = config.config_file.parent.glob("config.json.corrupt-*")
    assert aside.read_bytes() == b"\x00\x01 not json"


async def test_a_follower_that_fails_does_not_keep_the_change_from_the_others(tmp_path: Path, caplog) -> None:
    broadcast = Broadcast()
    settings = Settings(load_config(tmp_path, environ={}), broadcast.publish)
    got: list[str] = []

    def broken(old: Config, new: Config) -> None:
        raise RuntimeError("boom")

    settings.follow(broken)
    settings.follow(lambda old, new: got.append(new.log_level))
    with broadcast.subscribe() as sub:
        await settings.change({"log_level": "ERROR"})
        assert [type(e) for e in await sub.receive_batch()] == [ConfigChanged]
    assert got == ["ERROR"] and settings.current.log_level == "ERROR"
    assert "a follower of the change failed" in caplog.text
