"""Helpers for the bus tests: a bridge under a real supervisor, and waiting on events."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import redis as redis_py
import trio

from homehelper.actors import Broadcast, ChildSpec, Subscription, Supervisor
from homehelper.actors.bridge import RedisBridge
from homehelper.actors.eventlog import EventLog
from tests.fixtures.tree import Recorder
from tests.fixtures.tree import next_event as next_event  # re-exported for the bus tests
from tests.fixtures.tree import wait_until as wait_until  # the one poller (for conditions in Redis), re-exported

FAST = (0.05, 0.2)  # reconnect backoff for tests: real time, kept short


@attrs.define
class Tree:
    broadcast: Broadcast
    root: Supervisor
    bridge: Any  # ActorRef
    events: Subscription  # everything published on the bus since the tree started
    recorder: Recorder  # the same, recorded: wait on it without consuming (recorder.wait)


@asynccontextmanager
async def bridge_tree(url: str | None, **kw: Any) -> AsyncIterator[Tree]:
    broadcast = Broadcast()
    events = broadcast.subscribe(10_000)
    recorder = Recorder(broadcast)
    kw.setdefault("backoff", FAST)
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=broadcast.publish)
        await nursery.start(root.run)
        ref = root.start_child(ChildSpec("bridge", lambda: RedisBridge(broadcast, url, **kw)))
        root.start_child(ChildSpec("eventlog", lambda: EventLog(broadcast, 100)))
        yield Tree(broadcast, root, ref, events, recorder)
        nursery.cancel_scope.cancel()


def client(url: str) -> redis_py.Redis:
    return redis_py.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def rc(redis: Any) -> Iterator[redis_py.Redis]:
    """A plain redis-py client on the test's server, as an app or a person would use."""
    r = client(redis.url)
    yield r
    r.close()


@pytest.fixture
def clean_users(redis: Any) -> Iterator[Any]:
    """The session's server, with no ACL users left behind by the test (FLUSHALL keeps users)."""
    yield redis
    if redis.running:
        r = client(redis.url)
        for user in r.acl_users():
            if user != "default":
                r.acl_deluser(user)
        r.close()


class SecuredRedis:
    """A redis-server of its own that wants a password, with two users for HomeHelper:
    `hh` may manage users, `hh-plain` may do everything but ACL."""

    ADMIN = "admin-pw"
    USERS = {"hh": ("hh-pw", "+@all"), "hh-plain": ("plain-pw", "+@all -acl")}

    def __init__(self, workdir: str, scheme: str = "redis") -> None:
        from tests.fixtures.redis import free_port

        self.port = free_port()
        self.query = ""
        listen = ["--port", str(self.port)]
        tls_client: dict[str, Any] = {}
        tls = scheme == "rediss"
        if tls:  # a self-signed certificate for 127.0.0.1, trusted by naming it as the CA
            cert, key = f"{workdir}/cert.pem", f"{workdir}/key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key,
                      "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]
            self.query = f"?ssl_ca_certs={cert}"
            tls_client = {"ssl": True, "ssl_ca_certs": cert}
        self.scheme = scheme
        self.socket = f"{workdir}/redis.sock"
        if scheme == "unix":
            listen = ["--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700"]
            tls_client = {"unix_socket_path": self.socket}
        self.proc = subprocess.Popen(
            ["redis-server", *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", workdir, "--requirepass", self.ADMIN, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = redis_py.Redis(host="127.0.0.1", port=self.port, password=self.ADMIN, decode_responses=True,
                               **tls_client)
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis_py.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    self.proc.wait()
                    raise
                time.sleep(0.01)
        for user, (password, commands) in self.USERS.items():
            admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", *commands.split())
        self.admin = admin

    def url(self, user: str | None = None) -> str:
        auth = "" if user is None else f"{user}:{self.USERS[user][0]}@"
        if self.scheme == "unix":
            return f"unix://{auth}{self.socket}?db=0"
        return f"{self.scheme}://{auth}127.0.0.1:{self.port}/0{self.query}"

    def stop(self) -> None:
        self.admin.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(params=["redis", "rediss", "unix"])
def secured_redis(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[SecuredRedis]:
    """Each test runs over plain TCP, TLS (rediss://) and a Unix socket (unix://)."""
    server = SecuredRedis(str(tmp_path), request.param)
    yield server
    server.stop()
