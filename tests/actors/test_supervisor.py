"""Supervision: restart types, backoff, intensity, quarantine, shutdown."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from homehelper.actors import (
    Actor,
    Broadcast,
    ChildQuarantined,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    ChildStopped,
    Restart,
    RestartPolicy,
    Supervisor,
)


class Crasher(Actor):
    """Crashes `after` seconds after it starts; returns normally if `after` is None."""

    def __init__(self, after: float | None, log: list[float]) -> None:
        self.after = after
        self.log = log

    async def on_start(self, nursery: trio.Nursery) -> None:
        self.log.append(trio.current_time())
        if self.after is None:
            raise _Return
        await trio.sleep(self.after)
        raise RuntimeError("crash")

    async def handle(self, msg: Any) -> Any:
        return msg


class _Return(Exception):
    pass


class Returner(Actor):
    def __init__(self, log: list[float]) -> None:
        self.log = log

    async def run(self, inbox: Any) -> None:
        self.log.append(trio.current_time())


async def run_child(spec: ChildSpec, policy: RestartPolicy, seconds: float) -> tuple[Supervisor, list[Any]]:
    broadcast = Broadcast()
    seen: list[Any] = []
    sub = broadcast.subscribe()
    sup = Supervisor("t", policy, emit=broadcast.publish)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        sup.start_child(spec)
        await trio.sleep(seconds)
        n.cancel_scope.cancel()
    while sub.pending():
        seen.append(await sub.receive())
    return sup, seen


async def test_permanent_child_restarts_with_doubling_backoff(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    policy = RestartPolicy(intensity=100, period=1000, backoff_initial=1, backoff_max=8)
    _, events = await run_child(ChildSpec("c", lambda: Crasher(0, starts)), policy, 40)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    assert gaps[:6] == [1, 2, 4, 8, 8, 8]  # 1 s doubling, capped
    delays = [e.delay for e in events if isinstance(e, ChildRestarting)]
    assert delays[:5] == [1, 2, 4, 8, 8]


async def test_backoff_resets_after_a_stable_run(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    policy = RestartPolicy(intensity=100, period=1000, backoff_initial=1, backoff_max=300, stable_after=60)
    # runs 100 s each time (longer than stable_after): every restart waits the initial delay
    _, _ = await run_child(ChildSpec("c", lambda: Crasher(100, starts)), policy, 500)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    assert gaps and all(g == 101 for g in gaps)


async def test_transient_child_is_not_restarted_after_a_normal_exit(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    sup, _events = await run_child(ChildSpec("c", lambda: Returner(starts), Restart.TRANSIENT), RestartPolicy(), 30)
    assert len(starts) == 1
    assert sup.children()["c"]["state"] == "exited"


async def test_transient_child_is_restarted_after_a_crash(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    await run_child(ChildSpec("c", lambda: Crasher(0, starts), Restart.TRANSIENT), RestartPolicy(), 10)
    assert len(starts) > 1


async def test_permanent_child_is_restarted_even_after_a_normal_exit(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    await run_child(ChildSpec("c", lambda: Returner(starts), Restart.PERMANENT), RestartPolicy(), 10)
    assert len(starts) > 1


async def test_temporary_child_is_never_restarted(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []
    await run_child(ChildSpec("c", lambda: Crasher(0, starts), Restart.TEMPORARY), RestartPolicy(), 30)
    assert len(starts) == 1


async def test_past_the_intensity_the_child_is_quarantined_and_retried_slowly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    policy = RestartPolicy(intensity=3, period=60, backoff_initial=1, backoff_max=300, quarantine_retry=600)
    _sup, events = await run_child(ChildSpec("c", lambda: Crasher(0, starts)), policy, 1000)
    q = [e for e in events if isinstance(e, ChildQuarantined)]
    assert q, "a crash loop must end in quarantine"
    assert q[0].restarts == 4 and q[0].retry_in == 600 and "crash" in (q[0].error or "")
    # after the quarantine pause it is tried again, not left dead
    assert any(s >= 600 for s in starts)
    assert len(starts) < 15


async def test_root_outlives_a_crashing_child_and_siblings_keep_working(autojump_clock: trio.testing.MockClock) -> None:
    class Steady(Actor):
        async def handle(self, msg: Any) -> Any:
            return msg * 2

    sup = Supervisor("root", RestartPolicy(intensity=1, period=10, quarantine_retry=50))
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        sup.start_child(ChildSpec("bad", lambda: Crasher(0, [])))
        good = sup.start_child(ChildSpec("good", Steady))
        await trio.sleep(100)
        assert await good.ask(21) == 42
        assert sup.children()["bad"]["starts"] > 2
        n.cancel_scope.cancel()


async def test_shutdown_runs_on_stop_and_reports_stopped() -> None:
    stopped = trio.Event()

    class Tidy(Actor):
        async def handle(self, msg: Any) -> Any:
            return msg

        async def on_stop(self) -> None:
            await trio.sleep(0.01)  # cleanup may await, even while cancelled (shielded)
            stopped.set()

    broadcast = Broadcast()
    sub = broadcast.subscribe()
    sup = Supervisor("t", emit=broadcast.publish)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        sup.start_child(ChildSpec("tidy", Tidy))
        await trio.testing.wait_all_tasks_blocked()  # started, waiting for mail
        n.cancel_scope.cancel()
    assert stopped.is_set()
    kinds = []
    while sub.pending():
        kinds.append(type(await sub.receive()))
    assert kinds == [ChildStarted, ChildStopped]


async def test_stop_child_waits_a_bounded_time(autojump_clock: trio.testing.MockClock) -> None:
    class Stubborn(Actor):
        async def handle(self, msg: Any) -> Any:
            return msg

        async def on_stop(self) -> None:
            await trio.sleep(1000)  # on_stop gets 2 s at most

    sup = Supervisor("t")
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        sup.start_child(ChildSpec("s", Stubborn))
        await trio.sleep(0.1)
        t0 = trio.current_time()
        await sup.stop_child("s", timeout=5)
        assert trio.current_time() - t0 <= 5
        assert "s" not in sup
        n.cancel_scope.cancel()


def test_duplicate_child_names_are_refused() -> None:
    async def main() -> None:
        sup = Supervisor("t")
        async with trio.open_nursery() as n:
            await n.start(sup.run)
            sup.start_child(ChildSpec("a", lambda: Crasher(None, [])))
            with pytest.raises(ValueError, match="already exists"):
                sup.start_child(ChildSpec("a", lambda: Crasher(None, [])))
            n.cancel_scope.cancel()

    trio.run(main)
