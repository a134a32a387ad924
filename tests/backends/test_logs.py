"""Log tail, follow and rotation on real files."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import trio

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

    async def reader() -> None:
        async with aclosing(logs.follow(path, lines=1, poll=0.01)) as lines:
            async for line in lines:
                seen.append(line)
                if line == "after truncate":
                    return

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(0.05)
            _append(path, "new 1\nnew ")
            await trio.sleep(0.05)
            _append(path, "2\n")
            await trio.sleep(0.05)
            path.write_text("")
            await trio.sleep(0.05)
            _append(path, "after truncate\n")
    assert seen == ["old 2", "new 1", "new 2", "after truncate"]


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
