"""Service apps under systemd log to a real journald: stamped by it, searched, followed and
downloaded through journalctl; a crash report's tail comes from it; an app cannot write into
another app's log by borrowing its identifier."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trio

from homehelper.backends import SystemdBackend, app_spec
from homehelper.backends.journal import Journal, run_output
from homehelper.backends.logsearch import Query, stamp_of
from homehelper.web import logs as web_logs

from .apps import make_config, wait_until, write_app

pytestmark = pytest.mark.systemd

TALKER = """
import sys, time
print("hello journal", flush=True)
print("2020-01-02T03:04:05+00:00 stamped by the app", flush=True)
print("an ERROR to find", file=sys.stderr, flush=True)
time.sleep(3600)
"""


async def _lines(backend: SystemdBackend, app_id: str, query: Query | None = None, n: int = 100) -> list[str]:
    unit = backend.journal_unit(app_id)
    assert unit is not None
    return await trio.to_thread.run_sync(backend.journal.search, unit, query or Query(), n)


async def _started(backend: SystemdBackend, state_root: Path, app_id: str, code: str):  # type: ignore[no-untyped-def]
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, app_id, code)
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    await backend.start(app_id)
    return config


async def test_a_service_app_logs_to_journald_with_its_identifier_and_times(journal_backend, state_root) -> None:
    backend = journal_backend
    before = datetime.now().astimezone() - timedelta(seconds=2)
    config = await _started(backend, state_root, "talker", TALKER)
    try:
        unit_text = (backend.unit_dir / backend.unit("talker")).read_text()
        assert "StandardOutput=journal" in unit_text
        assert f"SyslogIdentifier={backend.unit('talker').removesuffix('.service')}" in unit_text
        lines = await wait_until(lambda: _enough(backend, "talker", 3))
        assert [line.split(" ", 1)[1] for line in lines if "hello" in line or "ERROR" in line] == [
            "hello journal", "an ERROR to find"]
        assert "2020-01-02T03:04:05+00:00 stamped by the app" in lines  # the app's own stamp is kept
        hello = next(line for line in lines if "hello" in line)
        assert before <= stamp_of(hello) <= datetime.now().astimezone()  # type: ignore[operator]
        assert not (config.logs_dir("talker") / "app.log").exists() or \
            (config.logs_dir("talker") / "app.log").stat().st_size == 0  # the journal, not the file
    finally:
        await backend.stop("talker")


async def _enough(backend: SystemdBackend, app_id: str, n: int) -> list[str] | None:
    lines = await _lines(backend, app_id)
    return lines if len(lines) >= n else None


async def test_search_follow_and_download_go_through_the_journal(journal_backend, state_root) -> None:
    backend = journal_backend
    config = await _started(backend, state_root, "talker", TALKER)
    sources = web_logs.log_sources(backend)
    try:
        await wait_until(lambda: _enough(backend, "talker", 3))
        found = await web_logs.tail(config, "talker", 10, Query(grep="ERROR"), sources)
        assert [line.split(" ", 1)[1] for line in found] == ["an ERROR to find"]
        future = await web_logs.tail(config, "talker", 10, Query(since=datetime.now().astimezone()
                                                                 + timedelta(hours=1)), sources)
        assert future == []
        got: list[list[str]] = []

        async def deliver(batch: list[str]) -> None:
            got.append(batch)

        async with trio.open_nursery() as nursery:
            await nursery.start(web_logs.follow, config, "talker", deliver, "marker", sources)
            # a second run of the app writes more: the follow sees its lines, filtered
            await backend.stop("talker")
            write_app(config.apps_dir, "talker", 'print("new marker line", flush=True)\nprint("other", flush=True)\n'
                      'import time; time.sleep(3600)\n')
            await backend.start("talker")
            await wait_until(lambda: got)
            nursery.cancel_scope.cancel()
        assert [line.split(" ", 1)[1] for line in got[0]] == ["new marker line"]
        chunks = [c async for c in web_logs.download(config, "talker", sources)]
        text = b"".join(chunks).decode()
        assert text.index("hello journal") < text.index("new marker line")
    finally:
        await backend.stop("talker")


async def test_a_crash_report_tail_comes_from_the_journal(journal_backend, state_root) -> None:
    backend = journal_backend
    since = time.time()
    config = await _started(backend, state_root, "crashy",
                            'import sys\nprint("about to fail", flush=True)\nsys.exit("bad config: no sensor")\n')
    status = await wait_until(lambda: _ended(backend, "crashy"))
    assert status.result == "exit-code"
    tail = await wait_until(lambda: _tail_with(backend, config, since, "no sensor"))
    assert "about to fail" in tail


async def _ended(backend: SystemdBackend, app_id: str):  # type: ignore[no-untyped-def]
    st = await backend.status(app_id)
    return st if st.active == "failed" else None


async def _tail_with(backend: SystemdBackend, config, since: float, text: str) -> str | None:  # type: ignore[no-untyped-def]
    out = await run_output(backend, "crashy", config.logs_dir("crashy") / "app.log", 0, since)
    return out if text in out else None


async def test_an_app_cannot_write_into_another_apps_log(journal_backend, state_root) -> None:
    backend = journal_backend
    config = await _started(backend, state_root, "victim", TALKER)
    victim_ident = backend.unit("victim").removesuffix(".service")
    forger = f"""
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/systemd/journal/stdout")
s.sendall(b"{victim_ident}\\n\\n6\\n0\\n0\\n0\\n0\\n")  # journald's stream header: identifier first
s.sendall(b"FORGED line\\n")
print("forger done", flush=True)
time.sleep(3600)
"""
    manifest = write_app(config.apps_dir, "forger", forger)
    await backend.prepare(app_spec(manifest, config, config.service_ports[0] + 1, Path(sys.executable)))
    try:
        await backend.start("forger")
        await wait_until(lambda: _has(backend, "forger", "forger done"))
        # journald took the forged line, under the victim's identifier...
        everything = await trio.to_thread.run_sync(_by_identifier, backend.journal, victim_ident)
        assert any("FORGED" in line for line in everything)
        # ...but the victim's log is what its own unit wrote
        assert not [line for line in await _lines(backend, "victim") if "FORGED" in line]
    finally:
        await backend.stop("forger")
        await backend.stop("victim")


async def _has(backend: SystemdBackend, app_id: str, text: str) -> bool:
    return any(text in line for line in await _lines(backend, app_id))


def _by_identifier(journal: Journal, ident: str) -> list[str]:
    import subprocess

    cmd = ["journalctl", "--no-pager", "-q", "-o", "cat", "-D", str(journal.directory), f"SYSLOG_IDENTIFIER={ident}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()


async def test_without_journald_units_keep_their_log_file_stamped(systemd_backend, state_root) -> None:
    backend = systemd_backend
    backend.journal = Journal("user", sock=state_root / "no-journald-here")
    config = await _started(backend, state_root, "filed", TALKER)
    try:
        assert "StandardOutput=append:" in (backend.unit_dir / backend.unit("filed")).read_text()
        assert backend.journal_unit("filed") is None
        log = config.logs_dir("filed") / "app.log"
        await wait_until(lambda: log.exists() and "hello journal" in log.read_text())
        (hello,) = await web_logs.tail(config, "filed", 5, Query(grep="hello"), web_logs.log_sources(backend))
        assert hello.endswith(" hello journal") and stamp_of(hello) is not None  # stamped as it was written
        lines = log.read_text().splitlines()
        assert "2020-01-02T03:04:05+00:00 stamped by the app" in lines  # the app's own stamp is kept
        # the stamper runs beside the app; the unit's main process is the app itself
        status = await backend.status("filed")
        cmdline = await trio.Path(f"/proc/{status.pid}/cmdline").read_bytes()
        assert cmdline.split(b"\0")[1].endswith(b"main.py")
    finally:
        await backend.stop("filed")
