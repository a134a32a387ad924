"""Disk writes of the metrics history while HomeHelper is idle, against the 100 KB/min budget.

The history file is the one thing an idle HomeHelper writes. This runs the real HistoryStore
on a file grown to its steady size (24 h of 30 s points and 30 days of 10 min points for the
machine, Redis and 20 apps), then plays an hour of samples at 30 s into it, written as the
history actor writes them (one transaction every 5 minutes), and counts what reached the disk
layer: /proc/self/io `write_bytes` (bytes dirtied in the page cache of a real filesystem,
journal files included) and `wchar` (bytes passed to write calls). Each of SQLite's journal
modes is measured, so the choice in homehelper/monitor/history.py (JOURNAL) stays a measured one.
Simulated time: the hour takes a few seconds.

    python benchmarks/diskwrites.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homehelper.monitor.history import JOURNAL, HistoryStore, mean_rows  # noqa: E402

BUDGET = 100 * 1024  # bytes per minute, idle
APPS = 20
STEP, COARSE_STEP, FLUSH = 30, 600, 300
MODES = ("truncate", "delete", "persist", "wal")


def io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def series_rows(at: int, rng: random.Random) -> list[tuple[int, str, dict[str, Any]]]:
    """One sample's rows, with the figures an idle Pi shows (values as the sensor rounds them)."""
    rows: list[tuple[int, str, dict[str, Any]]] = [
        (at, "machine", {"cpu": round(rng.uniform(1, 9), 1), "memory": round(rng.uniform(30, 32), 1), "swap": 0.0,
                         "disk": 41.3, "temperature": round(rng.uniform(48, 52), 1), "load": round(rng.random(), 2),
                         "recv_per_s": round(rng.uniform(100, 900), 1), "sent_per_s": round(rng.uniform(50, 400), 1)}),
        (at, "redis", {"memory_mb": 1.2, "memory": None, "ops": rng.randint(0, 9), "clients": 3 + APPS,
                       "channels": 1, "patterns": 3, "stream": 1000, "evicted": 0, "p50": 0.41, "p99": 1.3,
                       "buffered": 0, "dropped": 0, "reconnects": 0})]
    rows += [(at, f"app:app-{i:02d}", {"cpu": round(rng.uniform(0, 2), 1), "memory": rng.randint(20, 60) * 1048576})
             for i in range(APPS)]
    return rows


def prefill(store: HistoryStore, now: int, days: float, rng: random.Random) -> None:
    """The file at its steady size: fine rows for the last 24 h, coarse rows for `days`."""
    db = store.db
    assert db is not None
    db.execute("BEGIN")
    first = now - int(days * 86400)
    for b in range(first - first % COARSE_STEP, now, COARSE_STEP):
        means = mean_rows((s, d) for _, s, d in series_rows(b, rng))
        db.executemany("INSERT OR REPLACE INTO samples VALUES (1, ?, ?, ?)",
                       [(b, s, json.dumps(m, separators=(",", ":"))) for s, m in means.items()])
    for at in range(now - store.keep_fine, now, STEP):
        db.executemany("INSERT OR REPLACE INTO samples VALUES (0, ?, ?, ?)",
                       [(a, s, json.dumps(d, separators=(",", ":"))) for a, s, d in series_rows(at, rng)])
    db.execute("COMMIT")
    if store.journal == "wal":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def measure(mode: str, minutes: int, days: float, folder: Path) -> dict[str, Any]:
    rng = random.Random(7)
    path = folder / f"history-{mode}.sqlite"
    store = HistoryStore(path, step=STEP, coarse_step=COARSE_STEP, journal=mode)
    store.open()
    now = int(time.time())
    now -= now % COARSE_STEP
    prefill(store, now, days, rng)
    size_before = store.size()
    os.sync()
    start = io()
    flushes = 0
    pending: list[tuple[int, str, dict[str, Any]]] = []
    for at in range(now, now + minutes * 60, STEP):
        pending += series_rows(at, rng)
        if (at + STEP - now) % FLUSH == 0:
            store.write(pending, now=at)
            pending, flushes = [], flushes + 1
    if mode == "wal":  # what the log holds goes to the file too (SQLite does it every 1000 pages, or at close)
        assert store.db is not None
        store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    end = io()
    size_after = store.size()
    store.close()
    written = end["write_bytes"] - start["write_bytes"]
    return {"mode": mode, "minutes": minutes, "flushes": flushes,
            "write_bytes_per_min": round(written / minutes),
            "wchar_per_min": round((end["wchar"] - start["wchar"]) / minutes),
            "write_bytes_per_flush": round(written / max(flushes, 1)),
            "file_mb": round(size_after / 1048576, 2), "growth_kb": round((size_after - size_before) / 1024, 1)}


SERVE = """
import sys, trio
from pathlib import Path
from homehelper.config import load_config
from homehelper.serve import serve
cfg = load_config(Path(sys.argv[1]), environ={}, overrides={"port": int(sys.argv[2]), "monitor": {"interval": 3},
                  "history": {"step": 3, "coarse_step": 60, "flush_every": 30}})
async def main():
    async with trio.open_nursery() as n:
        await n.start(serve, cfg)
        print("ready", flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


def real_server(seconds: float, folder: Path) -> dict[str, Any]:
    """A real `serve` (no apps, no Redis), its whole process's writes, with time run 10x faster:
    a sample every 3 s into 3 s points, a write every 30 s (the defaults are 30 s and 300 s)."""
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(folder / "root"), str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(5)  # past the start's own writes (registry, ports, auth)

        def written() -> int:
            with open(f"/proc/{proc.pid}/io") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))

        start = written()
        time.sleep(seconds)
        per_min = (written() - start) / (seconds / 60)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return {"seconds": seconds, "write_bytes_per_min_fast": round(per_min),
            "write_bytes_per_min_equivalent": round(per_min / 10)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 simulated minutes on a 3-day file")
    args = parser.parse_args(argv)
    minutes, days = (30, 3.0) if args.quick else (60, 30.0)
    base = Path(os.environ.get("HH_BENCH_DIR") or REPO / "state")  # a real disk, not a tmpfs /tmp
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hh-diskwrites-", dir=base) as tmp:
        results = [measure(mode, minutes, days, Path(tmp)) for mode in MODES]
        real = real_server(35.0 if args.quick else 65.0, Path(tmp))
    chosen = next(r for r in results if r["mode"] == JOURNAL)
    best = min(results, key=lambda r: r["write_bytes_per_min"])
    out = {"apps": APPS, "budget_bytes_per_min": BUDGET, "chosen_mode": JOURNAL,
           "idle_write_bytes_per_min": chosen["write_bytes_per_min"],
           "budget_ratio": round(chosen["write_bytes_per_min"] / BUDGET, 3),
           "least_writing_mode": best["mode"], "modes": results, "real_server": real}
    for r in results:
        print(f"{r['mode']:>8}: {r['write_bytes_per_min'] / 1024:7.1f} KB/min to disk "
              f"({r['write_bytes_per_flush'] / 1024:.1f} KB per 5-min batch, {r['wchar_per_min'] / 1024:.1f} KB/min "
              f"written by SQLite), file {r['file_mb']} MB")
    print(f"history on, idle, {APPS} apps + Redis: {chosen['write_bytes_per_min'] / 1024:.1f} KB/min "
          f"({JOURNAL}), budget 100 KB/min: {out['budget_ratio']:.0%} of it")
    print(f"a real idle serve (no apps, time 10x faster): {real['write_bytes_per_min_fast'] / 1024:.1f} KB/min, "
          f"i.e. {real['write_bytes_per_min_equivalent'] / 1024:.1f} KB per minute at the default settings")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
