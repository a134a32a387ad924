"""Tell throughput and ask round trips through the actor runtime, each beside a
raw trio memory channel doing the same work in the same run.

    python benchmarks/actors.py [--quick]

Baselines: tell, a bare trio memory channel to one consumer task; ask, the same channel carrying
a one-shot reply slot woken by a trio.Event (what the runtime's ask does, minus the actor).
Targets: runtime tell >= 0.7x the raw channel; ask >= 0.6x the raw one-shot ask.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homehelper.actors import Actor, ChildSpec, Supervisor

MAILBOX = 256
BASELINE = ("tell: a bare trio memory channel to one consumer task; ask: the same channel carrying a one-shot "
            "reply slot woken by a trio.Event (no actor, no timeout)")


class Sink(Actor):
    name = "sink"

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, msg: Any) -> Any:
        self.count += 1
        return msg


async def raw_tell(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](MAILBOX)
    done = trio.Event()

    async def consumer() -> None:
        count = 0
        async for _ in recv:
            count += 1
            if count == n:
                done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        t0 = time.perf_counter()
        for i in range(n):
            await send.send(i)
        await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


async def runtime_tell(n: int) -> float:
    sup = Supervisor("bench")
    sink = Sink()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("sink", lambda: sink, mailbox_size=MAILBOX))
        await ref.ask("warm")
        sink.count = 0
        t0 = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        await ref.ask("flush")  # every tell before it has been handled
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


class _Reply:
    """A one-shot reply slot: a value and the Event that says it is there."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None


async def raw_ask(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](MAILBOX)

    async def server() -> None:
        async for req, reply in recv:
            reply.value = req
            reply.event.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        t0 = time.perf_counter()
        for i in range(n):
            reply = _Reply()
            await send.send((i, reply))
            await reply.event.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


async def runtime_ask(n: int) -> float:
    sup = Supervisor("bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("sink", Sink, mailbox_size=MAILBOX))
        await ref.ask("warm")
        t0 = time.perf_counter()
        for i in range(n):
            await ref.ask(i)
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = p.parse_args(argv)
    n_tell, n_ask, rounds = (50_000, 20_000, 3) if args.quick else (200_000, 50_000, 5)
    rates: dict[str, list[float]] = {k: [] for k in ("raw_tell", "tell", "raw_ask", "ask")}
    for _ in range(rounds):  # interleave so drift hits both sides alike
        rates["raw_tell"].append(trio.run(raw_tell, n_tell))
        rates["tell"].append(trio.run(runtime_tell, n_tell))
        rates["raw_ask"].append(trio.run(raw_ask, n_ask))
        rates["ask"].append(trio.run(runtime_ask, n_ask))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "tell_per_s": round(med["tell"]),
        "raw_tell_per_s": round(med["raw_tell"]),
        "tell_ratio": round(med["tell"] / med["raw_tell"], 3),
        "ask_per_s": round(med["ask"]),
        "raw_ask_per_s": round(med["raw_ask"]),
        "ask_ratio": round(med["ask"] / med["raw_ask"], 3),
        "baseline": BASELINE,
        "targets": [
            {"name": "actor tell vs a bare memory channel", "value": round(med["tell"] / med["raw_tell"], 3),
             "unit": "x", "target": ">= 0.7", "pass": med["tell"] / med["raw_tell"] >= 0.7},
            {"name": "actor ask vs an Event-based one-shot reply", "value": round(med["ask"] / med["raw_ask"], 3),
             "unit": "x", "target": ">= 0.6", "pass": med["ask"] / med["raw_ask"] >= 0.6},
        ],
    }
    print(f"actors: baseline: {BASELINE}")
    print(f"actors: tell {result['tell_per_s']:>9,}/s  raw channel {result['raw_tell_per_s']:>9,}/s  "
          f"ratio {result['tell_ratio']:.2f}x (target >= 0.70) {'PASS' if result['tell_ratio'] >= 0.7 else 'MISS'}")
    print(f"actors: ask  {result['ask_per_s']:>9,}/s  raw one-shot {result['raw_ask_per_s']:>8,}/s  "
          f"ratio {result['ask_ratio']:.2f}x (target >= 0.60) {'PASS' if result['ask_ratio'] >= 0.6 else 'MISS'}")
    return result


if __name__ == "__main__":
    main()
