"""Capture-time timestamps: the stamper between an app and its log file, on real pipes and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from homehelper.backends import ProcessBackend, app_spec
from homehelper.backends.logsearch import stamp_of
from homehelper.backends.stamp import STAMP, Lines, copy
from homehelper.backends.stamping import STAMPER

from .apps import make_config, wait_until, write_app


def _run_copy(data: list[bytes], pause: float = 0.0) -> bytes:
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(out_r, 65536):
            chunks.append(chunk)

    threads = [threading.Thread(target=lambda: (copy(r, out_w), os.close(out_w))), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    for piece in data:
        os.write(w, piece)
        if pause:
            time.sleep(pause)  # the writer's own pace: the stamper must wait for a line's start
    os.close(w)
    for t in threads:
        t.join(timeout=30)
    os.close(r)
    os.close(out_r)
    return b"".join(chunks)


def test_each_line_without_a_stamp_gets_one_and_the_apps_own_are_kept() -> None:
    before = datetime.now().astimezone() - timedelta(seconds=1)
    out = _run_copy([b"plain line\n[2026-11-28 10:00:01,250] logging's own\n2026-11-28T10:00:02Z iso\nlast"])
    lines = out.decode().split("\n")
    assert len(lines) == 4
    assert lines[0].endswith(" plain line") and stamp_of(lines[0]) is not None
    assert before <= stamp_of(lines[0]) <= datetime.now().astimezone()  # type: ignore[operator]
    assert lines[1] == "[2026-11-28 10:00:01,250] logging's own"  # not stamped twice
    assert lines[2] == "2026-11-28T10:00:02Z iso"
    assert lines[3].endswith(" last") and STAMP.match(lines[3].encode())  # an unfinished last line too


def test_a_line_that_arrives_in_pieces_is_stamped_once_when_it_began() -> None:
    out = _run_copy([b"pa", b"rt", b"ial and more than forty bytes in all, written slowly\n", b"next\n"], 0.08)
    lines = out.decode().splitlines()
    assert len(lines) == 2 and lines[0].endswith(" partial and more than forty bytes in all, written slowly")
    assert lines[0].count("T") >= 1 and lines[0].index("partial") < 40
    assert stamp_of(lines[0]) <= stamp_of(lines[1])  # type: ignore[operator]


def test_a_streams_lines_hold_a_lone_line_start_until_its_deadline() -> None:
    """The per-stream line logic both modes share: a short start without a newline waits (for HEAD
    bytes or HEAD_WAIT), and is stamped with the time it came, not when it was decided."""
    stamps = iter([b"S1 ", b"S2 ", b"S3 "])
    lines = Lines(lambda: next(stamps))
    assert lines.feed(b"pa") == b"" and lines.deadline is not None  # held back, its stamp taken now
    assert lines.feed(b"rt") == b""
    assert lines.expire() == b"S1 part" and lines.deadline is None  # nothing more came: decided
    assert lines.feed(b" one\n2026-11-28T10:00:00Z own\nnext") == b" one\n2026-11-28T10:00:00Z own\n"
    assert lines.eof() == b"S3 next"  # an unfinished last line, stamped when it began
    assert lines.eof() == b""


def test_binary_and_long_lines_pass_through(state_root: Path) -> None:
    blob = bytes(range(256)).replace(b"\n", b"") * 1000
    out = _run_copy([blob + b"\n"])
    assert out.endswith(blob + b"\n") and STAMP.match(out)


def test_the_stamper_script_runs_alone_and_exits_at_end_of_input(state_root: Path) -> None:
    log = state_root / "app.log"
    log.write_bytes(b"earlier\n")
    proc = subprocess.run([sys.executable, "-I", "-S", str(STAMPER), str(log)], input=b"one\ntwo\n",
                          timeout=30, check=True)
    assert proc.returncode == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier" and all(stamp_of(x) for x in lines[1:]) and lines[2].endswith(" two")


async def test_process_backend_lines_carry_the_time_they_were_written(state_root: Path) -> None:
    config = make_config(state_root)
    code = """
import sys, time
print("first", flush=True)
print("2020-01-01T00:00:00+00:00 stamped by the app", flush=True)
print("to stderr", file=sys.stderr, flush=True)
time.sleep(60)
"""
    manifest = write_app(config.apps_dir, "stamped", code)
    backend = ProcessBackend(state_root / "run" / "procs")
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    log = config.logs_dir("stamped") / "app.log"
    try:
        await backend.start("stamped")
        await wait_until(lambda: "to stderr" in log.read_text())
    finally:
        await backend.stop("stamped")
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(" first") and stamp_of(lines[0]) is not None
    assert lines[1] == "2020-01-01T00:00:00+00:00 stamped by the app"
    assert lines[2].endswith(" to stderr") and stamp_of(lines[2]) is not None


def test_exec_mode_becomes_the_app_and_stamps_its_output_from_a_side_process(state_root: Path) -> None:
    """`stamp.py --exec` as a unit's ExecStart: the process is the app (same PID, its exit status),
    and its output reaches the file stamped, even what it writes just before it exits."""
    log = state_root / "app.log"
    app = "import os, sys; print('pid', os.getpid(), flush=True); print('bye', file=sys.stderr); sys.exit(7)"
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(STAMPER), "--exec", str(log), "--",
                             sys.executable, "-c", app], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.wait(timeout=30) == 7  # the app's own exit status
    assert proc.stderr is not None and proc.stdout is not None
    assert proc.stderr.read() == b""  # its stderr went to the stamper too
    # The stamper keeps the unit's own stdout (here this pipe) until it has drained and exited.
    assert proc.stdout.read() == b""
    proc.stdout.close()
    proc.stderr.close()
    first, second = log.read_text().splitlines()
    assert first.endswith(f" pid {proc.pid}") and stamp_of(first) is not None  # the app ran in the same PID
    assert second.endswith(" bye") and stamp_of(second) is not None


def test_exec_mode_without_a_writable_log_still_runs_the_app(state_root: Path) -> None:
    out = subprocess.run([sys.executable, "-I", "-S", str(STAMPER), "--exec", str(state_root / "no" / "app.log"),
                          "--", sys.executable, "-c", "print('still here')"], capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == b"still here\n" and b"not timestamped" in out.stderr


async def test_a_crash_tail_waits_for_the_last_lines_of_a_dead_app(any_backend, state_root: Path) -> None:
    """The stamper writes asynchronously: a crash report read as the app dies still gets its last line."""
    from homehelper.backends.journal import run_output

    config = make_config(state_root)
    code = ("import sys\nfor i in range(20000):\n    print('filler', i)\n"
            "print('FATAL: last words', flush=True)\nsys.exit(3)\n")
    manifest = write_app(config.apps_dir, "dying", code)
    backend = any_backend
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    since = time.time()
    await backend.start("dying")
    status = await backend.status("dying")
    if status.pid is not None:
        await backend.wait_exit(status)
    tail = await run_output(backend, "dying", config.logs_dir("dying") / "app.log", 0, since)
    assert tail.rstrip().endswith("FATAL: last words"), tail[-300:]


async def test_a_crash_tail_waits_for_a_stamper_that_lags(state_root: Path) -> None:
    """Deterministic form of the above on the process backend: the stamper is held (SIGSTOP) while
    the app dies, and let go only once the crash report is being read."""
    import signal

    import trio

    from homehelper.backends.journal import run_output

    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "dying", "import sys\nprint('FATAL: last words', flush=True)\n"
                         "sys.exit(3)\n")
    backend = ProcessBackend(state_root / "run" / "procs")
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    log = config.logs_dir("dying") / "app.log"
    since = time.time()
    await backend.start("dying")
    stamper = backend.stamper.pid
    assert stamper is not None
    os.kill(stamper, signal.SIGSTOP)  # whatever the app writes now waits in the pipe
    status = await backend.status("dying")
    assert status.pid is not None
    await backend.wait_exit(status)  # it printed its last words and exited
    assert "last words" not in log.read_text()

    async with trio.open_nursery() as nursery:
        async def let_go() -> None:
            await trio.testing.wait_all_tasks_blocked()  # the report is waiting for the stamper
            os.kill(stamper, signal.SIGCONT)

        nursery.start_soon(let_go)
        tail = await run_output(backend, "dying", log, 0, since)
    assert "FATAL: last words" in tail
