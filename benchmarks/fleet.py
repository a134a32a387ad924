"""A fleet of HomeHelpers over one Redis: N `homehelper serve` processes on this machine, one redis-server.

    python benchmarks/fleet.py [--quick] [--nodes 1,5,20] [--idle 10] [--repeat 5]

For each N: every node (its own root, port and node id, 3 service apps) joins; then, idle, Redis's
memory and commands per second are read over a window (per node: the growth over an empty Redis,
divided by N); then the time from a click (POST) on node A to an app running on node B is measured
beside the same action on node A's own app (start, then stop, `--repeat` times; medians). The
commands/s of an idle node come from its presence refresh (fleet.interval, 5 s by default), its
blocking command read (5 s) and the bridge; the numbers say how far one Redis carries a fleet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import redis

from tests.fixtures.redis import free_port  # a port whose next one is free too: a node serves app pages there

REPO = Path(__file__).resolve().parents[1]
APP = "import time\nwhile True:\n    time.sleep(3600)\n"


class NotAvailable(Exception):
    """No redis-server here: the runner skips this benchmark."""


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise NotAvailable("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def figures(self) -> tuple[int, int]:
        info = self.client.info()
        return int(info["used_memory"]), int(info["total_commands_processed"])

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Node:
    def __init__(self, base: Path, node: str, redis_url: str, ports: int) -> None:
        self.root = base / node
        self.node = node
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.root / "config").mkdir(parents=True)
        (self.root / "config" / "config.json").write_text(json.dumps({
            "port": self.port, "backend": "process", "redis_url": redis_url, "node_id": node,
            "service_ports": [ports, ports + 49], "auth": {"loopback_without_login": True},
            "monitor": {"interval": 0}, "history": {"enabled": False}}))
        for i in range(3):
            app = self.root / "apps" / f"app-{i}"
            app.mkdir(parents=True)
            (app / "main.py").write_text(APP)
            (app / "homehelper.json").write_text(json.dumps({"id": f"app-{i}", "name": f"App {i}", "type": "service"}))
        env = {**os.environ, "HOMEHELPER_ROOT": str(self.root), "PYTHONPATH": str(REPO)}
        with open(self.root / "serve.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "homehelper", "serve"], env=env, cwd=REPO,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_online(url: str, n: int, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            fleet = httpx.get(f"{url}/api/fleet", timeout=5).json()
            if sum(1 for x in fleet.get("nodes", []) if x["status"] == "online") >= n:
                return time.monotonic() - began
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{n} nodes not online within {timeout} s")


def timed(method: str, url: str) -> float:
    began = time.perf_counter()
    r = httpx.request(method, url, timeout=120)
    took = time.perf_counter() - began
    body = r.json()
    if r.status_code != 200 or body.get("ok") is False:
        raise RuntimeError(f"{url}: {r.status_code} {str(body)[:300]}")
    return took


def actions(a: Node, b: Node, repeat: int) -> dict[str, Any]:
    local, cross = [], []
    for _ in range(repeat):
        local.append(timed("POST", f"{a.url}/api/apps/app-0/start"))
        timed("POST", f"{a.url}/api/apps/app-0/stop")
        cross.append(timed("POST", f"{a.url}/api/fleet/{b.node}/apps/app-0/start"))
        timed("POST", f"{a.url}/api/fleet/{b.node}/apps/app-0/stop")
    lm, cm = statistics.median(local) * 1000, statistics.median(cross) * 1000
    return {"local_start_ms": round(lm, 1), "cross_start_ms": round(cm, 1), "ratio": round(cm / lm, 2),
            "local_all_ms": [round(x * 1000, 1) for x in local], "cross_all_ms": [round(x * 1000, 1) for x in cross]}


def run(n: int, idle: float, repeat: int, base: Path) -> dict[str, Any]:
    server = RedisServer(base)
    empty_mem, _ = server.figures()
    nodes: list[Node] = []
    try:
        for i in range(n):
            nodes.append(Node(base / f"n{n}", f"node-{i}", server.url, 20000 + 100 * i))
        joined = wait_online(nodes[0].url, n, 60 + 10 * n)
        time.sleep(6.0)  # every node past its first presence write and scan
        _, cmds0 = server.figures()
        began = time.monotonic()
        time.sleep(idle)
        mem1, cmds1 = server.figures()
        span = time.monotonic() - began
        out: dict[str, Any] = {
            "nodes": n, "joined_s": round(joined, 1), "redis_memory_kb": round(mem1 / 1024, 1),
            "memory_per_node_kb": round((mem1 - empty_mem) / 1024 / n, 1),
            "commands_per_s": round((cmds1 - cmds0) / span, 1),
            "commands_per_s_per_node": round((cmds1 - cmds0) / span / n, 2)}
        if n >= 2:
            out.update(actions(nodes[0], nodes[-1], repeat))
        return out
    finally:
        for node in nodes:
            node.stop()
        server.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 3; a 5 s idle window; 3 repeats")
    parser.add_argument("--nodes", help="comma-separated N (default 1,5,20)")
    parser.add_argument("--idle", type=float, help="seconds of the idle window (default 10)")
    parser.add_argument("--repeat", type=int, help="start/stop pairs per side (default 5)")
    args = parser.parse_args(argv)
    counts = [int(x) for x in (args.nodes or ("1,3" if args.quick else "1,5,20")).split(",")]
    idle = args.idle or (5.0 if args.quick else 10.0)
    repeat = args.repeat or (3 if args.quick else 5)
    results = []
    with tempfile.TemporaryDirectory(prefix="hh-bench-fleet-", dir=os.environ.get("HH_BENCH_DIR")) as tmp:
        for n in counts:
            r = run(n, idle, repeat, Path(tmp))
            results.append(r)
            cross = (f"; start on another node {r['cross_start_ms']} ms vs own {r['local_start_ms']} ms "
                     f"(x{r['ratio']})") if "ratio" in r else ""
            print(f"N={n:>3}: joined in {r['joined_s']} s; idle Redis {r['redis_memory_kb']} KB "
                  f"({r['memory_per_node_kb']} KB/node), {r['commands_per_s']} cmd/s "
                  f"({r['commands_per_s_per_node']}/node){cross}", flush=True)
    out = {"runs": results}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
