"""Log tail, follow and rotation on real files."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
from contextlib import aclosing
from pathlib import Path

import trio
import trio.testing

from homehelper.backends import logs


def test_tail_reads_the_last_lines_across_blocks(state_root: Path) -> None:
    path = state_root / "app.log"
    path.write_text("".join(f"line {i} " + "x" * 100 + "\n" for i in range(2000)))
    last = logs.tail(path, 300)
    assert len(last) == 300 and last[0].startswith("line 1700 ") and last[-1].startswith("line 1999 ")
    assert logs.tail(state_root / "missing.log", 10) == []
    assert logs.tail(path, 0) == []


def test_tail_is_bounded(state_root: Path) -> None:
    path = state_root / "app.log"
    path.write_text("a\n" * (logs.MAX_LINES * 2))
    assert len(logs.tail(path, 10**9)) == logs.MAX_LINES


def test_rotation_caps_disk_use(state_root: Path) -> None:
    path = state_root / "app.log"
    with open(path, "ab") as writer:  # the app's descriptor, opened once with O_APPEND as systemd does
        for round_ in range(5):
            writer.write(f"round {round_}\n".encode() + b"y" * 2000 + b"\n")
            writer.flush()
            assert logs.rotate_if_needed(path, max_bytes=1000, keep=2)
        writer.write(b"after rotation\n")
        writer.flush()
    assert path.read_text() == "after rotation\n"  # the next write lands at the new start, no hole
    assert sorted(p.name for p in state_root.iterdir()) == ["app.log", "app.log.1", "app.log.2"]
    assert "round 4" in (state_root / "app.log.1").read_text()
    assert "round 3" in (state_root / "app.log.2").read_text()
    assert logs.log_bytes(state_root) < 3 * 3000
    assert not logs.rotate_if_needed(path, max_bytes=1000)


async def test_follow_yields_new_lines_and_survives_truncation(state_root: Path) -> None:
    path = state_root / "app.log"
    path.write_text("old 1\nold 2\n")
    seen: list[str] = []
    line_read = trio.Event()

    async def reader() -> None:
        nonlocal line_read
        async with aclosing(logs.follow(path, lines=1, poll=0.01)) as lines:
            async for line in lines:
                seen.append(line)
                line_read.set()
                if line == "after truncate":
                    return

    async def read(line: str) -> None:
        nonlocal line_read
        while seen[-1:] != [line]:
            line_read = trio.Event()
            await line_read.wait()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await read("old 2")  # following from the last line
            _append(path, "new 1\nnew ")
            await read("new 1")  # a half-written line waits for its end
            _append(path, "2\n")
            await read("new 2")
            path.write_text("")
            _append(path, "after truncate\n")
    assert seen == ["old 2", "new 1", "new 2", "after truncate"]


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


class _CountingReader(io.FileIO):
    """A real file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_tail_of_a_big_log_of_long_lines_reads_only_what_it_returns(state_root: Path) -> None:
    path = state_root / "app.log"
    line = 20_000
    with open(path, "wb") as f:  # 40 MB: 2000 lines of 20 kB
        for i in range(2000):
            head = f"line {i} ".encode()
            f.write(head + b"x" * (line - len(head) - 1) + b"\n")
    tracemalloc.start()
    try:
        with _CountingReader(path) as f:
            last = logs.tail_of(f, 100)
            read = f.read_bytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [x.split(" ")[1] for x in last] == [str(i) for i in range(1900, 2000)]
    assert all(len(x) == logs.MAX_LINE_BYTES for x in last)  # cut, the start kept
    assert read <= 100 * line + 2 * 64 * 1024  # from the end back to the oldest line returned, once
    assert peak < 2 * 100 * logs.MAX_LINE_BYTES + 1024 * 1024  # the lines kept, then decoded


def test_tail_of_one_huge_line_holds_only_its_start(state_root: Path) -> None:
    path = state_root / "app.log"
    with open(path, "wb") as f:
        f.write(b"first\nSTART" + b"y" * (40 * 1024 * 1024) + b"\n")
    tracemalloc.start()
    try:
        with _CountingReader(path) as f:
            last = logs.tail_of(f, 2)
            read = f.read_bytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert last[0] == "first" and last[1].startswith("STARTyyy") and len(last[1]) == logs.MAX_LINE_BYTES
    assert read == path.stat().st_size  # each byte once: linear, not quadratic
    assert peak < 1024 * 1024


def test_tail_keeps_lines_without_a_final_newline_and_blank_lines(state_root: Path) -> None:
    path = state_root / "app.log"
    path.write_bytes(b"a\n\nb\r\nc")
    assert logs.tail(path, 10) == ["a", "", "b", "c"]
    path.write_bytes(b"\n")
    assert logs.tail(path, 10) == [""]
    path.write_bytes(b"")
    assert logs.tail(path, 10) == []


async def test_a_fast_writer_stays_within_the_cap(state_root: Path) -> None:
    """60 MB a minute (1 MB/s) against a 1 MB file cap: disk use stays within 10 % of 3 MB."""
    path = state_root / "app.log"
    max_bytes, keep = 1024 * 1024, 2
    cap = max_bytes * (keep + 1)
    rotations = 0

    def rotated() -> None:
        nonlocal rotations
        rotations += 1

    def write(seconds: float) -> int:
        names = [path, path.with_name("app.log.1"), path.with_name("app.log.2")]
        worst = 0
        chunk = b"z" * 4095 + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # as the backends open it
        try:
            start = time.monotonic()
            written = 0
            while (elapsed := time.monotonic() - start) < seconds:
                if written > elapsed * 1024 * 1024:
                    time.sleep(0.002)  # the app's pace: 1 MB/s
                    continue
                written += os.write(fd, chunk)
                worst = max(worst, sum(n.stat().st_size for n in names if n.exists()))
        finally:
            os.close(fd)
        return worst

    async with trio.open_nursery() as nursery:
        nursery.start_soon(logs.keep_capped, path, max_bytes, keep, rotated)
        await trio.lowlevel.checkpoint()
        worst = await trio.to_thread.run_sync(write, 5.0)
        nursery.cancel_scope.cancel()
    assert rotations >= 3
    assert worst <= cap * 1.1, f"{worst} bytes on disk against a cap of {cap}"


async def test_follow_is_woken_by_writes_not_a_timer(state_root: Path) -> None:
    path = state_root / "app.log"
    path.write_text("before\n")
    got: list[str] = []
    async with aclosing(logs.follow(path, poll=3600)) as lines:  # a poll would take an hour
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def reader() -> None:
                    got.append(await lines.__anext__())

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()  # the reader waits on inotify now
                await trio.to_thread.run_sync(_append, path, "written\n")
    assert got == ["written"]
