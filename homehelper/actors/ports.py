"""The port allocator: service apps 8100-8199, Streamlit apps 8501+.

An app keeps its port across restarts (of the app and of HomeHelper): the map
is persisted under registry/. A port that something else holds is skipped
after a real bind test.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import trio

from ..errors import BadRequest, PortsExhausted
from ..messages import AllocatePort, PortAssigned, StateFileDamaged
from ..storage import LatestWriter
from . import Actor
from .registry import check_saved
from .statefile import check_mapping, is_port, peek_state, read_state

log = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on `port` (a real bind, as the app will do)."""
    for family, addr in ((socket.AF_INET, host), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def _check_ports(value: Any) -> tuple[dict[str, int], list[str]]:
    good, problems = check_mapping(value, lambda app_id, port: None if is_port(port) else
                                   f"must be a port number, found {json.dumps(port)[:40]}")
    owner: dict[int, str] = {}
    for app_id, port in sorted(good.items()):
        if port in owner:
            problems.append(f"{app_id!r}: port {port} is {owner[port]!r}'s too")
        else:
            owner[port] = app_id
    return {a: p for p, a in owner.items()}, problems


def load_ports(state_file: Path) -> tuple[dict[str, int], StateFileDamaged | None]:
    """The saved port map. A damaged one is set aside and rebuilt from the ports the registry
    (apps.json beside it) last saw, so apps keep their ports where those are still free."""
    assigned, damaged = read_state(state_file, _check_ports, {},
                                   "ports rebuilt from the registry; each app keeps its port where still free")
    if damaged is not None:
        # only a peek: a damaged registry is the registry's to report and set aside
        saved = peek_state(state_file.with_name("apps.json"), check_saved, {})
        for app_id, rec in sorted(saved.items()):
            port = rec.get("port")
            if port is not None and app_id not in assigned and port not in assigned.values():
                assigned[app_id] = port
    return assigned, damaged


class PortAllocator(Actor):
    name = "ports"

    def __init__(self, ranges: dict[str, tuple[int, int]], state_file: Path | None, emit: Any = None) -> None:
        self.ranges = ranges
        self.state_file = state_file
        self.emit = emit or (lambda e: None)
        self.assigned: dict[str, int] = {}
        # written on a worker thread once the actor runs; 20 apps starting at once cost a write or two
        self.writer = LatestWriter(state_file) if state_file is not None else None
        self._rebuilt = False
        if state_file is not None:  # a small file, read once per (re)start of the actor
            self.assigned, damaged = load_ports(state_file)
            if damaged is not None:
                self.emit(damaged)
                self._rebuilt = True  # written in on_start, so the next start has it

    async def on_start(self, nursery: trio.Nursery) -> None:
        if self.writer is not None:
            await nursery.start(self.writer.run)
            if self._rebuilt:
                self._save()

    async def on_stop(self) -> None:
        if self.writer is not None:
            await self.writer.flush()

    async def handle(self, msg: Any) -> Any:
        match msg:
            case AllocatePort(app_id, kind, avoid):
                return self.allocate(app_id, kind, set(avoid))
            case "snapshot":
                return dict(self.assigned)
            case _:
                raise BadRequest(f"ports: unknown message {type(msg).__name__}")

    def allocate(self, app_id: str, kind: str, avoid: set[int]) -> int:
        if kind not in self.ranges:
            raise BadRequest(f"unknown port kind {kind!r}")
        lo, hi = self.ranges[kind]
        current = self.assigned.get(app_id)
        if current is not None and lo <= current <= hi and current not in avoid and port_is_free(current):
            return current
        taken = {p for a, p in self.assigned.items() if a != app_id} | avoid
        for port in range(lo, hi + 1):
            if port not in taken and port_is_free(port):
                self.assigned[app_id] = port
                self._save()
                self.emit(PortAssigned(app_id, port))
                return port
        raise PortsExhausted(f"no free {kind} port in {lo}-{hi} for {app_id!r}", kind=kind, range=[lo, hi])

    def _save(self) -> None:
        if self.writer is not None:
            self.writer.submit(dict(self.assigned))
