"""Tell throughput and ask round trips through the actor runtime, each beside a
raw trio memory channel doing the same work in the same run.

    python benchmarks/actors.py [--quick]

Baselines: tell, a bare trio memory channel to one consumer task; ask, the same channel carrying
a one-shot reply: the asker parks itself and the server reschedules it (trio.lowlevel), the
cheapest correct one-shot there is (a trio.Event one, slower, is shown for context).
Rates are per second of the trio thread's CPU time (a loaded machine's other work does not count).
Targets: runtime tell >= 0.7x the raw channel; ask >= 0.8x the raw one-shot ask (issue 17).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homehelper.actors import Actor, ChildSpec, Supervisor

MAILBOX = 256
BASELINE = ("tell: a bare trio memory channel to one consumer task; ask: the same channel carrying a one-shot "
            "reply, the asker parked and rescheduled by the server (trio.lowlevel; no actor, no timeout)")
ASK_TARGET = 0.8
# CPU time of the one thread that runs trio, not wall time: on a shared machine another process
# taking the core would count against whichever side happened to be running.
CLOCK = time.thread_time


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
        t0 = CLOCK()
        for i in range(n):
            await send.send(i)
        await done.wait()
        elapsed = CLOCK() - t0
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
        t0 = CLOCK()
        for i in range(n):
            await ref.tell(i)
        await ref.ask("flush")  # every tell before it has been handled
        elapsed = CLOCK() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


class _Reply:
    """A one-shot reply slot: a value and the Event that says it is there."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None


async def event_ask(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](MAILBOX)

    async def server() -> None:
        async for req, reply in recv:
            reply.value = req
            reply.event.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        t0 = CLOCK()
        for i in range(n):
            reply = _Reply()
            await send.send((i, reply))
            await reply.event.wait()
        elapsed = CLOCK() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


class _Slot:
    """A one-shot reply slot: the parked asker and the value."""

    __slots__ = ("task", "value")

    def __init__(self) -> None:
        self.task: Any = None
        self.value: Any = None


def _abort(_raise_cancel: Any) -> Abort:
    return Abort.SUCCEEDED


async def raw_ask(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](MAILBOX)

    async def server() -> None:
        async for req, slot in recv:
            slot.value = req
            reschedule(slot.task)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        t0 = CLOCK()
        for i in range(n):
            slot = _Slot()
            send.send_nowait((i, slot))
            slot.task = current_task()
            await wait_task_rescheduled(_abort)
        elapsed = CLOCK() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


async def runtime_ask(n: int) -> float:
    sup = Supervisor("bench")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        ref = sup.start_child(ChildSpec("sink", Sink, mailbox_size=MAILBOX))
        await ref.ask("warm")
        t0 = CLOCK()
        for i in range(n):
            await ref.ask(i)
        elapsed = CLOCK() - t0
        nursery.cancel_scope.cancel()
    return n / elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = p.parse_args(argv)
    n_tell, n_ask, rounds = (20_000, 8_000, 9) if args.quick else (100_000, 40_000, 11)
    rates: dict[str, list[float]] = {k: [] for k in ("raw_tell", "tell", "raw_ask", "event_ask", "ask")}
    for _ in range(rounds):  # interleave so drift hits both sides alike
        rates["raw_tell"].append(trio.run(raw_tell, n_tell))
        rates["tell"].append(trio.run(runtime_tell, n_tell))
        rates["raw_ask"].append(trio.run(raw_ask, n_ask))
        rates["event_ask"].append(trio.run(event_ask, n_ask))
        rates["ask"].append(trio.run(runtime_ask, n_ask))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "tell_per_s": round(med["tell"]),
        "raw_tell_per_s": round(med["raw_tell"]),
        "tell_ratio": round(med["tell"] / med["raw_tell"], 3),
        "ask_per_s": round(med["ask"]),
        "raw_ask_per_s": round(med["raw_ask"]),
        "ask_ratio": round(med["ask"] / med["raw_ask"], 3),
        "event_ask_per_s": round(med["event_ask"]),
        "ask_vs_event_ratio": round(med["ask"] / med["event_ask"], 3),
        "baseline": BASELINE,
        "targets": [
            {"name": "actor tell vs a bare memory channel", "value": round(med["tell"] / med["raw_tell"], 3),
             "unit": "x", "target": ">= 0.7", "pass": med["tell"] / med["raw_tell"] >= 0.7},
            {"name": "actor ask vs a bare one-shot reply", "value": round(med["ask"] / med["raw_ask"], 3),
             "unit": "x", "target": f">= {ASK_TARGET}", "pass": med["ask"] / med["raw_ask"] >= ASK_TARGET,
             "issue": 17, "note": f"{round(med['ask']):,}/s vs {round(med['raw_ask']):,}/s; "
                                  f"vs a trio.Event one-shot {med['ask'] / med['event_ask']:.2f}x"},
        ],
    }
    print(f"actors: baseline: {BASELINE}")
    print(f"actors: tell {result['tell_per_s']:>9,}/s  raw channel {result['raw_tell_per_s']:>9,}/s  "
          f"ratio {result['tell_ratio']:.2f}x (target >= 0.70) {'PASS' if result['tell_ratio'] >= 0.7 else 'MISS'}")
    print(f"actors: ask  {result['ask_per_s']:>9,}/s  raw one-shot {result['raw_ask_per_s']:>8,}/s  "
          f"ratio {result['ask_ratio']:.2f}x (target >= {ASK_TARGET:.2f}) "
          f"{'PASS' if result['ask_ratio'] >= ASK_TARGET else 'MISS'}  (trio.Event one-shot "
          f"{result['event_ask_per_s']:,}/s: {result['ask_vs_event_ratio']:.2f}x)")
    return result


if __name__ == "__main__":
    main()
