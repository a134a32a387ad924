"""Nodes of a fleet for the tests: `homehelper serve` in this process (own root, port, node id) or as a
real child process (so a test can `kill -9` it), all over the test's one redis-server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from homehelper.actors import Broadcast
from homehelper.actors.ports import port_is_free
from homehelper.config import Config, load_config
from homehelper.messages import FleetJoined, ScanApplied
from homehelper.serve import Overrides, Runtime, serve
from tests.fixtures.common import end_process
from tests.fixtures.redis import free_port
from tests.fixtures.tree import Recorder, wait_until

REPO = Path(__file__).resolve().parents[2]
# Real time, kept short: a refresh every 0.2 s, offline 1.5 s after the last one.
FAST = {"interval": 0.2, "ttl": 1.5, "command_timeout": 20}


def _port_block() -> int:
    lo = random.randrange(20000, 29000, 100)
    while not all(port_is_free(p) for p in range(lo, lo + 10)):
        lo = random.randrange(20000, 29000, 100)
    return lo


def node_settings(root: Path, node: str, redis_url: str | None, **fleet: Any) -> dict[str, Any]:
    lo = _port_block()
    return {"port": free_port(), "backend": "process", "redis_url": redis_url, "node_id": node,
            "service_ports": [lo, lo + 99], "auth": {"loopback_without_login": True}, "fleet": {**FAST, **fleet}}


def node_config(root: Path, node: str, redis_url: str | None, **fleet: Any) -> Config:
    return load_config(root, overrides=node_settings(root, node, redis_url, **fleet), environ={})


@attrs.define
class Node:
    rt: Runtime
    recorder: Recorder
    config: Config

    @property
    def url(self) -> str:
        return self.rt.url


@asynccontextmanager
async def open_node(config: Config, join: bool = True) -> AsyncIterator[Node]:
    """`homehelper serve` in this process, once its first scan is applied and it joined the fleet."""
    broadcast = Broadcast()
    recorder = Recorder(broadcast)
    async with trio.open_nursery() as nursery:
        rt = await nursery.start(partial(serve, config, overrides=Overrides(broadcast=broadcast)))
        await recorder.wait(ScanApplied)
        if config.redis_url and join:
            await recorder.wait(FleetJoined)
        yield Node(rt, recorder, config)
        nursery.cancel_scope.cancel()


class ChildNode:
    """`homehelper serve` as a child process on its own state root."""

    def __init__(self, root: Path, node: str, redis_url: str) -> None:
        self.root, self.node = root, node
        settings = node_settings(root, node, redis_url)
        (root / "config").mkdir(parents=True, exist_ok=True)
        (root / "config" / "config.json").write_text(json.dumps(settings))
        self.url = f"http://127.0.0.1:{settings['port']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        env = {**os.environ, "HOMEHELPER_ROOT": str(self.root), "PYTHONPATH": str(REPO)}
        with open(self.root / "serve.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "homehelper", "serve"], env=env, cwd=REPO,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        await trio.to_thread.run_sync(self._spawn)

        async def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{self.url}/api/health", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(up, timeout=60, every=0.1)

    def log(self) -> str:
        return (self.root / "serve.log").read_text()[-3000:]

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, 30)


async def get_fleet(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{url}/api/fleet", timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())


def statuses(fleet: dict[str, Any]) -> dict[str, str]:
    return {n["node"]: n["status"] for n in fleet["nodes"]}
