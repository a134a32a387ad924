"""The real processes a scenario runs: redis-server, `homehelper serve`, and a sampler of the latter."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_range(size: int, lo: int = 20000, hi: int = 32768) -> tuple[int, int]:
    """A block of `size` ports none of which is bound now (other benchmarks and tests share the machine),
    below the kernel's ephemeral range (32768 up): a port in it may be the local end of an outgoing
    connection (health checks open hundreds) at the moment an app binds it, and that app dies."""
    import random

    for _ in range(50):
        start = random.randrange(lo, hi - size)
        ok = True
        for port in range(start, start + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, start + size - 1
    raise RuntimeError("no free port range found")


class RedisProc:
    """redis-server on a free port, nothing on disk (--save '' --appendonly no)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                client.ping()
                client.close()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class ServeProc:
    """A real `homehelper serve` subprocess; its output is kept in a bounded ring (no log file: the
    benchmark counts HomeHelper's own disk writes)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, cwd: Path) -> None:
        self.argv, self.env, self.port, self.cwd = argv, env, port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=300)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> float:
        """Start it and wait for /api/health; returns the seconds that took."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"homehelper serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"homehelper serve did not answer within {timeout} s:\n{self.tail()}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.output.append(raw.decode(errors="replace").rstrip())

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.output)[-n:])

    def stop(self, timeout: float = 10.0) -> float | None:
        """SIGTERM, as systemd stops it; returns how long it took to exit (None: it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            took: float | None = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            took = None
        if self._reader is not None:
            self._reader.join(2)
        return took


def kill_leftovers(marker: str) -> int:
    """Kill processes whose command line or cwd names `marker` (the generated apps folder): the apps
    the process backend started, which outlive HomeHelper by design."""
    me = os.getpid()
    victims: list[psutil.Process] = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if p.info["pid"] == me:
            continue
        cmd = " ".join(p.info.get("cmdline") or ())
        cwd = p.info.get("cwd") or ""
        if marker in cmd or cwd.startswith(marker):
            victims.append(p)
    for p in victims:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(victims, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(victims)


class Sampler:
    """Samples one pid (HomeHelper itself, not its children) from a thread: CPU %, RSS, disk writes."""

    def __init__(self, pid: int, interval: float = 0.5, limit: int = 20_000) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: collections.deque[dict[str, float]] = collections.deque(maxlen=limit)
        self.marks: list[tuple[str, float]] = []
        self.points: dict[str, dict[str, float]] = {}  # a reading taken at each mark
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)

    def mark(self, label: str) -> float:
        """Note a phase boundary, with a reading taken right now; returns its time."""
        point = self.read()
        t = point["t"] if point is not None else time.monotonic() - self.t0
        if point is not None:
            self.points[label] = point
        self.marks.append((label, round(t, 2)))
        return t

    def read(self) -> dict[str, float] | None:
        try:
            with self.proc.oneshot():
                cpu = self.proc.cpu_times()
                mem = self.proc.memory_info()
                io = _io(self.proc.pid)
                threads = self.proc.num_threads()
        except psutil.Error:
            return None
        return {"t": time.monotonic() - self.t0, "cpu_s": cpu.user + cpu.system, "rss": float(mem.rss),
                "write_bytes": float(io.get("write_bytes", 0)), "wchar": float(io.get("wchar", 0)),
                "threads": float(threads)}

    def _run(self) -> None:
        prev = self.read()
        if prev is not None:
            prev["cpu_pct"] = 0.0
            self.samples.append(prev)
        while not self._halt.wait(self.interval):
            cur = self.read()
            if cur is None:
                return
            if prev is not None:
                dt = cur["t"] - prev["t"]
                cur["cpu_pct"] = 100.0 * (cur["cpu_s"] - prev["cpu_s"]) / dt if dt > 0 else 0.0
            self.samples.append(cur)
            prev = cur

    def window(self, start: str, end: str) -> dict[str, Any]:
        """CPU % of one core, RSS and disk writes between two marks."""
        a0, b0 = self.points.get(start), self.points.get(end)
        if a0 is None or b0 is None:
            return {"seconds": 0.0, "samples": 0}
        pts = [a0, *(s for s in self.samples if a0["t"] < s["t"] < b0["t"]), b0]
        if len(pts) < 2:
            return {"seconds": 0.0, "samples": len(pts)}
        a, b = pts[0], pts[-1]
        secs = b["t"] - a["t"]
        return {
            "seconds": round(secs, 2),
            "samples": len(pts),
            "cpu_s": round(b["cpu_s"] - a["cpu_s"], 3),
            "cpu_pct": round(100.0 * (b["cpu_s"] - a["cpu_s"]) / secs, 3),
            "cpu_pct_max": round(max(p.get("cpu_pct", 0.0) for p in pts[1:]), 2),
            "rss_mb_max": round(max(p["rss"] for p in pts) / 2**20, 1),
            "rss_mb_end": round(b["rss"] / 2**20, 1),
            "write_bytes": int(b["write_bytes"] - a["write_bytes"]),
            "write_kb_per_min": round((b["write_bytes"] - a["write_bytes"]) / 1024 / secs * 60, 2),
        }

    def series(self, max_points: int = 400) -> list[dict[str, float]]:
        """The samples for the plots, thinned to at most `max_points`."""
        pts = list(self.samples)
        step = max(1, len(pts) // max_points)
        return [{"t": round(p["t"], 2), "cpu_pct": round(p.get("cpu_pct", 0.0), 2),
                 "rss_mb": round(p["rss"] / 2**20, 2)} for p in pts[::step]]


def _io(pid: int) -> dict[str, int]:
    """/proc/<pid>/io: write_bytes is what reached the block layer (SD-card wear); wchar counts sockets too."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return out


