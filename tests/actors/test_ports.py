"""The port allocator on real sockets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from homehelper.actors import ChildSpec, Supervisor
from homehelper.actors.ports import PortAllocator, port_is_free
from homehelper.errors import PortsExhausted
from homehelper.messages import AllocatePort


def free_block(size: int) -> int:
    """The start of `size` consecutive free ports, far from the real ranges."""
    for start in range(30000, 60000, size):
        if all(port_is_free(p) for p in range(start, start + size)):
            return start
    raise RuntimeError("no free block")


async def test_fifty_concurrent_asks_get_fifty_distinct_free_ports(tmp_path: Path) -> None:
    lo = free_block(60)
    sup = Supervisor("t")
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        ports = sup.start_child(ChildSpec("ports", lambda: PortAllocator({"service": (lo, lo + 59)},
                                                                         tmp_path / "ports.json")))
        got: dict[str, int] = {}

        async def ask(i: int) -> None:
            got[f"app{i}"] = await ports.ask(AllocatePort(f"app{i}", "service"))

        async with trio.open_nursery() as asks:
            for i in range(50):
                asks.start_soon(ask, i)
        n.cancel_scope.cancel()
    assert len(set(got.values())) == 50
    assert all(lo <= p <= lo + 59 for p in got.values())


def test_a_port_held_by_another_program_is_skipped(tmp_path: Path) -> None:
    lo = free_block(5)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", lo))
        holder.listen()
        alloc = PortAllocator({"service": (lo, lo + 4)}, tmp_path / "ports.json")
        assert alloc.allocate("a", "service", set()) == lo + 1


def test_an_app_keeps_its_port_across_restarts(tmp_path: Path) -> None:
    lo = free_block(5)
    state = tmp_path / "ports.json"
    first = PortAllocator({"service": (lo, lo + 4)}, state)
    a = first.allocate("a", "service", set())
    b = first.allocate("b", "service", set())
    again = PortAllocator({"service": (lo, lo + 4)}, state)  # HomeHelper restarted
    assert again.allocate("b", "service", set()) == b
    assert again.allocate("a", "service", set()) == a


def test_exhausted_range_is_a_clear_error(tmp_path: Path) -> None:
    lo = free_block(2)
    alloc = PortAllocator({"streamlit": (lo, lo + 1)}, None)
    alloc.allocate("a", "streamlit", set())
    alloc.allocate("b", "streamlit", set())
    with pytest.raises(PortsExhausted, match=f"no free streamlit port in {lo}-{lo + 1}"):
        alloc.allocate("c", "streamlit", set())


async def test_avoid_skips_one(tmp_path: Path) -> None:
    lo = free_block(3)
    alloc = PortAllocator({"service": (lo, lo + 2)}, tmp_path / "p.json")
    assert await alloc.handle(AllocatePort("a", "service")) == lo
    assert await alloc.handle(AllocatePort("a", "service", avoid=(lo,))) == lo + 1
    assert await alloc.handle(AllocatePort("b", "service")) == lo  # a's old port, free again
