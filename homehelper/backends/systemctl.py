"""Talking to systemctl: `systemctl show` read into a UnitStatus, and the commands of many app
actors arriving together coalesced into one call per verb (`systemctl start a b c`), so starting
twenty apps costs about what one `systemctl start` of twenty units costs."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import trio

from ..errors import BackendError
from .base import UnitStatus

SHOW_PROPS = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainCode",
              "ExecMainStatus", "Result", "ControlGroup", "UnitFileState")
VERBS = ("start", "stop", "show")  # the calls worth batching; the rest are rare and go alone
COALESCE_QUIET = 0.002  # gather requests of one verb until none came for this long...
COALESCE_MAX = 0.02  # ...or this long at most: small beside one systemctl call


def cgroup_root() -> Path:
    """Where the unified (v2) cgroup hierarchy is mounted: /sys/fs/cgroup on a Pi."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return Path(parts[1])
    except OSError:
        pass
    return Path("/sys/fs/cgroup")


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show` of several units: blocks of Key=Value separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def to_status(props: Mapping[str, str], cgroot: Path | None = None) -> UnitStatus:
    pid = int(props.get("MainPID") or 0) or None
    code = props.get("ExecMainCode", "0")  # 1 exited (status = exit code), 2 killed, 3 dumped (status = signal)
    cg = props.get("ControlGroup") or None
    return UnitStatus(
        active=props.get("ActiveState", "inactive"),
        sub=props.get("SubState", "dead"),
        pid=pid,
        restarts=int(props.get("NRestarts") or 0),
        exit_status=int(props.get("ExecMainStatus") or 0) if code != "0" else None,
        result=props.get("Result", "success"),
        cgroup=str((cgroot or cgroup_root()) / cg.lstrip("/")) if cg else None,
        loaded=props.get("LoadState") == "loaded",
        enabled=props.get("UnitFileState") in ("enabled", "enabled-runtime", "linked", "alias"),
    )


class Batch:
    """Requests for one systemctl verb, gathered while the previous call runs."""

    def __init__(self) -> None:
        self.units: list[str] = []
        self.done = trio.Event()
        self.error: dict[str, str] = {}
        self.output = ""


class Coalescer:
    """Calls of one verb gathered while the previous call of that verb runs."""

    def __init__(self, systemctl: Callable[..., Awaitable[subprocess.CompletedProcess[bytes]]]) -> None:
        self._systemctl = systemctl  # SystemdBackend.systemctl(*args, check=...)
        self._pending: dict[str, Batch] = {}
        self._wakes = {verb: trio.Event() for verb in VERBS}
        self.running = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One worker per verb: a `stop` never waits behind a slow `show`, and requests of one
        verb that arrive while its call runs go together in the next call."""
        self.running = True
        try:
            async with trio.open_nursery() as nursery:
                for verb in VERBS:
                    nursery.start_soon(self._worker, verb)
                task_status.started()
        finally:
            self.running = False

    async def _worker(self, verb: str) -> None:
        wake = self._wakes[verb]
        while True:
            await wake.wait()
            # Apps asked together arrive a few scheduler rounds apart: wait for the burst to end.
            deadline = trio.current_time() + COALESCE_MAX
            seen = 0
            while len(self._pending[verb].units) > seen and trio.current_time() < deadline:
                seen = len(self._pending[verb].units)
                await trio.sleep(COALESCE_QUIET)
            wake = self._wakes[verb] = trio.Event()
            batch = self._pending.pop(verb)
            await self._run_batch(verb, batch)

    async def _run_batch(self, verb: str, batch: Batch) -> None:
        try:
            args = ("show", "-p", ",".join(SHOW_PROPS)) if verb == "show" else (verb,)
            proc = await self._systemctl(*args, *batch.units, check=False)
            batch.output = proc.stdout.decode(errors="replace")
            if proc.returncode != 0 and verb != "show":
                # Find out which unit failed: one call each, so each gets its own error.
                for unit in batch.units:
                    one = await self._systemctl(verb, unit, check=False)
                    if one.returncode != 0:
                        batch.error[unit] = one.stderr.decode(errors="replace").strip()
        except BaseException as exc:
            for unit in batch.units:
                batch.error[unit] = repr(exc)
            raise
        finally:
            batch.done.set()

    async def do(self, verb: str, unit: str) -> Batch:
        """`systemctl <verb> <unit>`, in one call with the other units asked meanwhile; BackendError
        names this unit when its part failed."""
        if not self.running:  # no run() task (a one-off CLI call): just call systemctl
            batch = Batch()
            batch.units.append(unit)
            await self._run_batch(verb, batch)
        else:
            batch = self._pending.setdefault(verb, Batch())
            batch.units.append(unit)
            self._wakes[verb].set()
            await batch.done.wait()
        if unit in batch.error:
            err = batch.error[unit]
            raise BackendError(f"systemctl {verb} {unit} failed: {err[-500:]}", output_tail=err[-2000:])
        return batch
