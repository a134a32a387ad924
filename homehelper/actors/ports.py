"""The port allocator: service apps 8100-8199, Streamlit apps 8501+.

An app keeps its port across restarts (of the app and of HomeHelper): the map
is persisted under registry/. A port that something else holds is skipped
after a real bind test.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from ..errors import BadRequest, PortsExhausted
from ..messages import AllocatePort, PortAssigned, ReleasePort
from ..storage import atomic_write_json, read_json
from . import Actor

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


class PortAllocator(Actor):
    name = "ports"

    def __init__(self, ranges: dict[str, tuple[int, int]], state_file: Path | None, emit: Any = None) -> None:
        self.ranges = ranges
        self.state_file = state_file
        self.emit = emit or (lambda e: None)
        saved = read_json(state_file, {}) if state_file else {}
        self.assigned: dict[str, int] = {k: v for k, v in saved.items() if isinstance(v, int)}

    async def handle(self, msg: Any) -> Any:
        match msg:
            case AllocatePort(app_id, kind, avoid):
                return self.allocate(app_id, kind, set(avoid))
            case ReleasePort(app_id):
                if self.assigned.pop(app_id, None) is not None:
                    self._save()
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
        if self.state_file is not None:
            atomic_write_json(self.state_file, self.assigned)
