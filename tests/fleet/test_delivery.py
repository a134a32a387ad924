"""Commands across nodes through Redis failures: a crash after taking a command, a Redis restart."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_py
import trio

from homehelper.bus import commands
from homehelper.messages import AppStateChanged, FleetCommandHandled, FleetJoined
from tests.backends.apps import HEALTHY_APP, write_app
from tests.fixtures.redis import RedisServer, free_port

from .conftest import node_config, open_node

pytestmark = pytest.mark.redis


class DurableRedis(RedisServer):
    """A redis-server that writes every command to its append-only file before answering."""

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", self.workdir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ping():
            assert self.proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[DurableRedis]:
    server = DurableRedis(free_port(), str(tmp_path))
    server.start()
    yield server
    server.kill()


def command(node: str, app: str, action: str) -> commands.FleetCommand:
    return commands.FleetCommand(uuid.uuid4().hex, node, app, action, "asker", "tester", time.time() + 60)


async def reply(rc: redis_py.Redis, cmd: commands.FleetCommand) -> dict:
    got = await trio.to_thread.run_sync(commands.wait_reply, rc, "asker", cmd.id, 60)
    assert got is not None, "no reply"
    return got


async def test_a_command_taken_but_not_finished_is_acted_on_at_the_next_start(state_root, redis):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    rc = redis_py.Redis.from_url(redis.url, decode_responses=True)
    commands.ensure_group(rc, "b")
    cmd = command("b", "lamp", "start")
    commands.send(rc, cmd)
    # Node b took it and died before answering: the entry is pending for consumer "b".
    taken = commands.read(rc, "b", pending=False, block_ms=1000)
    assert [text for _, text in taken] and rc.xpending(commands.stream_key("b"), commands.GROUP)["pending"] == 1
    async with open_node(node_config(state_root / "b", "b", redis.url)) as b:
        got = await reply(rc, cmd)
        assert got["ok"] is True and got["app"]["state"] in ("starting", "running")
        await b.recorder.wait(FleetCommandHandled, "lamp")  # published once the reply is out
        assert len(b.recorder.of(FleetCommandHandled, "lamp")) == 1
        assert rc.xpending(commands.stream_key("b"), commands.GROUP)["pending"] == 0
        await b.recorder.wait(AppStateChanged, "lamp", state="running", timeout=60)
        async with httpx.AsyncClient() as c:
            assert (await c.post(f"{b.url}/api/apps/lamp/stop", timeout=60)).status_code == 200
    rc.close()


async def test_a_redis_restart_loses_no_acknowledged_command_and_repeats_none(state_root, durable):
    write_app(state_root / "b" / "apps", "lamp", HEALTHY_APP)
    rc = redis_py.Redis.from_url(durable.url, decode_responses=True)
    async with open_node(node_config(state_root / "b", "b", durable.url)) as b:
        first = command("b", "lamp", "start")
        commands.send(rc, first)
        assert (await reply(rc, first))["ok"] is True
        await b.recorder.wait(AppStateChanged, "lamp", state="running", timeout=60)
        mark = len(b.recorder.events)
        durable.kill()  # SIGKILL: no goodbye, the append-only file has everything acknowledged
        durable.start()
        await b.recorder.wait_after(mark, FleetJoined, timeout=60)
        # What was acknowledged stays so: not read again, not acted on again, its result kept.
        assert rc.xpending(commands.stream_key("b"), commands.GROUP)["pending"] == 0
        assert commands.already(rc, "b", first.id) is not None
        second = command("b", "lamp", "stop")  # and the stream works on after the restart
        commands.send(rc, second)
        assert (await reply(rc, second))["ok"] is True
        handled = [e.command_id for e in await b.recorder.wait(FleetCommandHandled, "lamp", count=2)]
        assert handled == [first.id, second.id]
        assert len(b.recorder.of(AppStateChanged, "lamp", state="starting")) == 1
    rc.close()
